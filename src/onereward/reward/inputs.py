"""Differentiable reward-model inputs: images as torch tensors -> exactly what the Qwen2.5-VL processor produces.

The HF processor works on PIL/numpy images and cuts the gradient, so the reward's image path is re-done in torch:
    (B, 3, H, W) in [0, 1] -> [resize] -> normalise (CLIP mean/std) -> patchify in the processor's order
    -> pixel_values (N_patches, 3 * T * p * p), image_grid_thw (N_images, 3)
Parity with `Qwen2VLImageProcessorPil` on uint8 images (tests/test_reward_inputs.py checks both):
- When H and W are multiples of patch * merge and within [min_pixels, max_pixels], nothing is resized and the result
  is BIT-FOR-BIT the processor's (tested at 64x64, 32x48 and 96x64).
- Otherwise we resize with bicubic, antialias=True, clamped to [0, 1], to the processor's `smart_resize` size. The
  processor resizes a uint8 PIL image with PIL's bicubic and rounds to uint8, so the two differ slightly. Tested
  tolerance, in normalised units (divide by ~3.7 for [0, 1] units): on smooth images (the fill model's outputs are
  smooth at the patch scale) max |diff| <= 0.03 and mean <= 0.008 (measured: 0.016, 0.0045, mostly the processor's
  uint8 rounding); on white noise, the worst case for any resampler, mean <= 0.01 (measured 0.005, max 0.27).
  antialias=False is ~40x worse (NOTES.md section 4), so we never use it.
  Feed sizes that are multiples of patch * merge (64x64 for the tiny models, 448x448 for the 7B) to avoid this.

The text side is built from token ids alone (no images needed) and cached per query. Each query's ids are split at
the end of the second image: the part before (system turn, user header, both images) is one shared prefix for every
dimension and every pair of a batch; the part after (the query text and the assistant header) is a suffix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

from onereward.reward.processor import IMAGE_TOKEN
from onereward.reward.templates import query_messages

VISION_END = "<|vision_end|>"


# --- images ---


@dataclass(frozen=True)
class PixelSpec:
    """What the image processor does to an image: patch sizes, the resize bounds and the normalisation."""

    patch: int
    merge: int
    temporal: int
    min_pixels: int
    max_pixels: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def of(cls, image_processor) -> PixelSpec:
        ip = image_processor
        return cls(
            patch=ip.patch_size,
            merge=ip.merge_size,
            temporal=ip.temporal_patch_size,
            min_pixels=ip.size["shortest_edge"],
            max_pixels=ip.size["longest_edge"],
            mean=tuple(ip.image_mean),
            std=tuple(ip.image_std),
        )

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """The size the processor resizes an image of this size to (HF's own `smart_resize`)."""
        return smart_resize(height, width, self.patch * self.merge, self.min_pixels, self.max_pixels)

    def grid(self, height: int, width: int) -> tuple[int, int, int]:
        """image_grid_thw of one image: (1, patches down, patches across)."""
        rh, rw = self.resized(height, width)
        return 1, rh // self.patch, rw // self.patch

    def tokens_per_image(self, height: int, width: int) -> int:
        """How many <|image_pad|> tokens (merged patches) one image of this size becomes."""
        _, gh, gw = self.grid(height, width)
        return gh * gw // self.merge**2


def pixel_values(images: torch.Tensor, spec: PixelSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) in [0, 1] -> (pixel_values (N * gh * gw, 3 * T * p * p), image_grid_thw (N, 3) on the CPU).

    Image n's patches are rows n * gh * gw onwards, in the processor's order (merge windows, then rows within).
    """
    n, c, h, w = images.shape
    p, m, t = spec.patch, spec.merge, spec.temporal
    rh, rw = spec.resized(h, w)
    if (rh, rw) != (h, w):
        images = F.interpolate(images, (rh, rw), mode="bicubic", align_corners=False, antialias=True)  # (N, 3, rh, rw)
        images = images.clamp(0, 1)  # the processor's uint8 round trip clips too
    mean = images.new_tensor(spec.mean).view(1, c, 1, 1)  # (1, 3, 1, 1)
    std = images.new_tensor(spec.std).view(1, c, 1, 1)  # (1, 3, 1, 1)
    x = (images - mean) / std  # (N, 3, rh, rw) normalised
    gh, gw = rh // p, rw // p
    x = x.reshape(n, c, gh // m, m, p, gw // m, m, p)  # (N, C, gh/m, m, p, gw/m, m, p)
    x = x.permute(0, 2, 5, 3, 6, 1, 4, 7)  # (N, gh/m, gw/m, m, m, C, p, p): the processor's patch order
    x = x.unsqueeze(6).expand(-1, -1, -1, -1, -1, -1, t, -1, -1)  # (N, gh/m, gw/m, m, m, C, T, p, p) still image
    x = x.reshape(n * gh * gw, c * t * p * p)  # (N * gh * gw, C * T * p * p)
    grid = torch.tensor([[1, gh, gw]] * n, dtype=torch.long)  # (N, 3) metadata: on the CPU, like the processor's
    return x, grid


def pair_pixel_values(first: torch.Tensor, second: torch.Tensor, spec: PixelSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of B pairs in <|image_pad|> order (first_0, second_0, first_1, ...) -> pixel_values, grid (2B, 3)."""
    if first.shape != second.shape or first.ndim != 4 or first.shape[1] != 3:
        raise ValueError(
            f"first and second must be (B, 3, H, W) images of the same shape; got {tuple(first.shape)} and "
            f"{tuple(second.shape)}"
        )
    b, c, h, w = first.shape
    images = torch.stack([first, second], dim=1).reshape(2 * b, c, h, w)  # (2B, 3, H, W) interleaved
    return pixel_values(images, spec)


# --- text ---


@dataclass(frozen=True)
class QueryTokens:
    """Token ids of N = B * D queries (row b * D + d: pair b, dimension d), split at the end of the second image.

    prefix_ids (P,) is the same for every row: system turn, user header, both images' placeholders.
    suffix_ids (N, S) is each row's query text + assistant header, right-padded with `pad_id`; suffix_mask marks
    real tokens. The full sequence of row i is cat(prefix_ids, suffix_ids[i]).
    """

    prefix_ids: torch.Tensor  # (P,) long
    suffix_ids: torch.Tensor  # (N, S) long, right-padded
    suffix_mask: torch.Tensor  # (N, S) long, 1 = real token
    image_token_id: int
    pad_id: int

    @property
    def last(self) -> torch.Tensor:
        """(N,) index in the suffix of each row's last real token: the one whose next-token logits are the answer."""
        return self.suffix_mask.sum(1) - 1

    def right_padded(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Full sequences, right-padded: input_ids, attention_mask, mm_token_type_ids, each (N, P + S)."""
        n = self.suffix_ids.shape[0]
        prefix = self.prefix_ids.expand(n, -1)  # (N, P)
        ids = torch.cat([prefix, self.suffix_ids], dim=1)  # (N, P + S)
        mask = torch.cat([torch.ones_like(prefix), self.suffix_mask], dim=1)  # (N, P + S)
        return ids, mask, (ids == self.image_token_id).long()

    def left_padded(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Full sequences, left-padded (HF's layout for batched generation): input_ids, attention_mask, mm types."""
        ids, mask, _ = self.right_padded()  # (N, L)
        shift = mask.shape[1] - mask.sum(1, keepdim=True)  # (N, 1) pad count per row
        order = (torch.arange(ids.shape[1]).unsqueeze(0) - shift) % ids.shape[1]  # (N, L) roll right by pad count
        ids, mask = ids.gather(1, order), mask.gather(1, order)  # (N, L) pads now on the left
        return ids, mask, (ids == self.image_token_id).long()


def split_at_images(chat_text: str) -> tuple[str, str]:
    """A rendered chat -> (everything up to and including the last <|vision_end|>, the rest)."""
    cut = chat_text.rfind(VISION_END)
    if cut < 0 or chat_text.count(VISION_END) != 2:
        raise ValueError(f"a reward query must hold exactly two images; the chat template rendered {chat_text!r}")
    cut += len(VISION_END)
    return chat_text[:cut], chat_text[cut:]


def render_query(processor, task: str, dimension: str, prompt: str | None) -> tuple[str, str]:
    """One query through the checkpoint's chat template, split into (image prefix text, suffix text)."""
    text = processor.apply_chat_template(
        query_messages(task, dimension, prompt), add_generation_prompt=True, tokenize=False
    )
    return split_at_images(text)


def expand_image_tokens(text: str, tokens_per_image: int) -> str:
    """Repeat each <|image_pad|> placeholder to the image's token count, as the processor does."""
    return text.replace(IMAGE_TOKEN, IMAGE_TOKEN * tokens_per_image)


class QueryTokenizer:
    """Token ids of a call's B x D queries, with each query's ids cached (rendering the chat template costs ~1 ms,
    as much as a tiny model's forward; prompts repeat across RL steps)."""

    def __init__(self, processor, cache_size: int = 1 << 16):
        self.processor, self.tok = processor, processor.tokenizer
        self.image_token_id = self.tok.convert_tokens_to_ids(IMAGE_TOKEN)
        self._query = lru_cache(maxsize=cache_size)(self._query_uncached)
        self._prefix = lru_cache(maxsize=16)(self._prefix_uncached)

    def _query_uncached(self, task: str, dimension: str, prompt: str | None) -> tuple[str, tuple[int, ...]]:
        prefix, suffix = render_query(self.processor, task, dimension, prompt)
        return prefix, tuple(self.tok.encode(suffix, add_special_tokens=False))

    def _prefix_uncached(self, prefix_text: str, tokens_per_image: int) -> tuple[int, ...]:
        return tuple(self.tok.encode(expand_image_tokens(prefix_text, tokens_per_image), add_special_tokens=False))

    def __call__(
        self, task: str, dimensions: Sequence[str], prompts: Sequence[str | None], tokens_per_image: int
    ) -> QueryTokens:
        """The queries of B pairs (one prompt each, read only for text_alignment) x D dimensions, row b * D + d."""
        rendered = [
            self._query(task, dim, prompt if dim == "text_alignment" else None)
            for prompt in prompts
            for dim in dimensions
        ]
        prefixes = {prefix for prefix, _ in rendered}
        if len(prefixes) != 1:
            raise ValueError("the chat template put query text before the images; the image prefix must be shared")
        prefix_ids = self._prefix(prefixes.pop(), tokens_per_image)
        suffixes = [ids for _, ids in rendered]
        width, pad_id = max(len(s) for s in suffixes), self.tok.pad_token_id
        suffix_ids = torch.tensor([list(s) + [pad_id] * (width - len(s)) for s in suffixes])  # (N, S)
        suffix_mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in suffixes])  # (N, S)
        return QueryTokens(torch.tensor(prefix_ids), suffix_ids, suffix_mask, self.image_token_id, pad_id)
