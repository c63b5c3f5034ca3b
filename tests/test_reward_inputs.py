"""Differentiable reward inputs vs the HF processor: pixels (exact / resized within a tested tolerance), token ids,
image order; and the same input-building code on the real Qwen2.5-VL-7B-Instruct config (meta device, shapes)."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from onereward.reward.inputs import PixelSpec, QueryTokenizer, pair_pixel_values, pixel_values
from onereward.reward.model import rope_positions
from onereward.reward.processor import ImageOnlyQwen2_5_VLProcessor
from onereward.reward.templates import query_messages
from onereward.reward.tiny import QWEN2_VL_CHAT_TEMPLATE, build_tokenizer, qwen25_vl_7b_config

FILL_DIMS = ["text_alignment", "consistency", "structure", "aesthetics"]


@pytest.fixture(scope="module")
def proc(tiny_rm_dir):
    return ImageOnlyQwen2_5_VLProcessor.from_pretrained(tiny_rm_dir)


def noise(rng, h, w):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def smooth(h, w, phase=0.0):
    """A smooth colour field, like a fill model's output at the patch scale."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.5 + 0.4 * np.sin(6 * x + c + phase) * np.cos(4 * y - c) for c in range(3)], -1)
    return (img * 255).round().astype(np.uint8)


def to_torch(*arrays):
    """uint8 (H, W, 3) arrays -> (N, 3, H, W) float in [0, 1]."""
    return torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays]).float() / 255


def reference(proc, *arrays):
    out = proc.image_processor([Image.fromarray(a) for a in arrays], return_tensors="pt")
    return out["pixel_values"], out["image_grid_thw"]


@pytest.mark.parametrize("h,w", [(64, 64), (32, 48), (96, 64)])
def test_pixels_bit_exact_without_resize(proc, h, w):
    rng = np.random.default_rng(h * w)
    a, b, c, d = (noise(rng, h, w) for _ in range(4))
    ref_pixels, ref_grid = reference(proc, a, b, c, d)  # the processor's image order: a, b, c, d
    pixels, grid = pair_pixel_values(to_torch(a, c), to_torch(b, d), PixelSpec.of(proc.image_processor))
    assert torch.equal(grid, ref_grid)
    assert torch.equal(pixels, ref_pixels)  # bit for bit


@pytest.mark.parametrize("h,w", [(60, 70), (100, 90), (50, 50)])
def test_pixels_resized_within_documented_tolerance(proc, h, w):
    spec = PixelSpec.of(proc.image_processor)
    assert spec.resized(h, w) != (h, w)
    a, b = smooth(h, w), smooth(h, w, phase=1.0)
    ref_pixels, ref_grid = reference(proc, a, b)
    pixels, grid = pixel_values(to_torch(a, b), spec)
    assert torch.equal(grid, ref_grid)
    diff = (pixels - ref_pixels).abs()  # normalised units (inputs.py documents these bounds)
    assert diff.max() <= 0.03 and diff.mean() <= 0.008, (diff.max(), diff.mean())
    rng = np.random.default_rng(0)
    a, b = noise(rng, h, w), noise(rng, h, w)
    diff = (pixel_values(to_torch(a, b), spec)[0] - reference(proc, a, b)[0]).abs()
    assert diff.mean() <= 0.01, diff.mean()


def test_pixel_path_is_differentiable_everywhere(proc):
    spec = PixelSpec.of(proc.image_processor)
    for size in (64, 60):  # exact and resized
        x = torch.rand(2, 3, size, size, requires_grad=True)
        pixels, _ = pixel_values(x, spec)
        (pixels * torch.randn_like(pixels)).sum().backward()
        assert (x.grad != 0).float().mean() > 0.99


def test_token_ids_match_the_processor(proc):
    prompts = ["red circle", 'the words "AB" in blue']
    tokens = QueryTokenizer(proc)(
        "fill", FILL_DIMS, prompts, PixelSpec.of(proc.image_processor).tokens_per_image(64, 64)
    )
    texts = [
        proc.apply_chat_template(
            query_messages("fill", d, p if d == "text_alignment" else None), add_generation_prompt=True, tokenize=False
        )
        for p in prompts
        for d in FILL_DIMS
    ]
    img = Image.fromarray(np.zeros((64, 64, 3), np.uint8))
    proc.tokenizer.padding_side = "left"
    ref = proc(text=texts, images=[img] * 2 * len(texts), return_tensors="pt", padding=True)
    ids, mask, types = tokens.left_padded()
    assert torch.equal(ids, ref["input_ids"])
    assert torch.equal(mask, ref["attention_mask"])
    assert torch.equal(types, ref["mm_token_type_ids"].long())
    rids, rmask, _ = tokens.right_padded()  # the same tokens, pads moved to the right
    for i in range(len(texts)):
        assert torch.equal(rids[i][rmask[i].bool()], ids[i][mask[i].bool()])
    assert int((tokens.prefix_ids == tokens.image_token_id).sum()) == 2 * 16  # two 64x64 images, 16 tokens each


def test_input_building_on_the_7b_config_meta_device():
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration(qwen25_vl_7b_config())
    n_params = sum(p.numel() for p in model.parameters())
    assert 8.2e9 < n_params < 8.4e9, n_params
    # The 7B's image processor is Qwen2-VL's default (patch 14, merge 2); the text is our tokenizer's (the 7B's own
    # tokenizer needs a download), which changes token ids, not the layout.
    proc = ImageOnlyQwen2_5_VLProcessor(Qwen2VLImageProcessorPil(), build_tokenizer(), QWEN2_VL_CHAT_TEMPLATE)
    spec = PixelSpec.of(proc.image_processor)
    first, second = torch.rand(2, 3, 448, 448), torch.rand(2, 3, 448, 448)  # B = 2 pairs
    pixels, grid = pair_pixel_values(first, second, spec)
    patch_in = model.model.visual.patch_embed.proj.weight[0].numel()  # 3 * 2 * 14 * 14
    assert pixels.shape == (4 * 32 * 32, patch_in) and grid.tolist() == [[1, 32, 32]] * 4
    assert spec.tokens_per_image(448, 448) == 256
    embedded = model.model.visual.patch_embed(pixels.to("meta"))  # shapes only
    assert embedded.shape == (4 * 32 * 32, 1280)
    tokens = QueryTokenizer(proc)("fill", FILL_DIMS, ["a red car", "a cat"], 256)
    ids, mask, types = tokens.right_padded()  # (8, L)
    assert int(types[0].sum()) == 2 * 256
    pos, _ = model.model.get_rope_index(ids, types, grid.repeat_interleave(4, dim=0), attention_mask=mask)
    assert pos.shape == (3, 8, ids.shape[1])
    assert torch.equal(rope_positions(model.model, ids, types, grid.repeat_interleave(4, dim=0), mask), pos)
    p = tokens.prefix_ids.shape[0]
    # the suffix's text positions continue after the second image's 16 x 16 grid of merged tokens
    assert pos[:, 0, p].tolist() == [pos[0, 0, p - 1].item() + 1] * 3
    assert int(pos[0, 0, p - 1]) - int(pos[0, 0, p - 2 - 256]) == 16 + 1  # 2nd image spans 16 positions


def test_rope_positions_per_layout_equal_hf_per_row(proc, tiny_rm_dir):
    """The prefix path asks HF for each distinct row layout once; every row must get HF's own positions, also when
    rows differ only by their images' grid (same token count, other shape) or by their padding."""
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_rm_dir)
    tokens = QueryTokenizer(proc)("fill", FILL_DIMS, ["red circle", 'the words "ABC" in blue'], 16)
    ids, mask, types = tokens.right_padded()  # (8, L): two prompts of different lengths, 4 dimensions each
    assert len({int(m.sum()) for m in mask}) > 1, "the rows should differ in padding"
    # 16 merged tokens per image as a 4 x 4 grid (8 x 8 patches) or a 2 x 8 one (4 x 16 patches)
    grid = torch.tensor([[1, 8, 8]] * 8 + [[1, 4, 16]] * 8)  # (16, 3): sequences 4-7 see the other shape
    pos = rope_positions(model.model, ids, types, grid, mask)
    ref, _ = model.model.get_rope_index(ids, types, grid, attention_mask=mask)
    assert torch.equal(pos, ref)
    assert not torch.equal(ref[:, 0], ref[:, 4]), "the grids should change the positions"
