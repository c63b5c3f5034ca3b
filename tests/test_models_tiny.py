"""Tiny FLUX.1-Fill-dev builders: the real layout, offline tokenizers, save/load by path, the real config on meta."""

import json

import pytest
import torch

from onereward.errors import UserError
from onereward.models.fill import FillModel, PromptEmbeds
from onereward.models.tiny import (
    PRESETS,
    TOY_WORDS,
    build_meta_pipeline,
    build_tiny_flux_fill,
    build_tiny_pipeline,
    fill_in_channels,
)

FLUX_FOLDERS = ("scheduler", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "transformer", "vae")


def test_in_channels_follow_flux_fill():
    assert fill_in_channels(16, 8) == 384  # FLUX.1-Fill-dev: 64 noisy + 64 masked image + 256 mask
    assert fill_in_channels(4, 4) == 96  # the toy preset


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_keep_the_fill_layout(preset):
    # the bench presets (up to ~535M parameters) only need their configs here: built on the meta device, no memory
    with torch.device("meta" if preset.startswith("bench") else "cpu"):
        pipe = build_tiny_pipeline(preset)
    vae, tr = pipe.vae.config, pipe.transformer.config
    sf = pipe.vae_scale_factor
    assert tr.in_channels == 2 * 4 * vae.latent_channels + sf * sf * 4
    assert tr.out_channels == 4 * vae.latent_channels
    assert tr.guidance_embeds and sum(tr.axes_dims_rope) == tr.attention_head_dim
    assert tr.pooled_projection_dim == pipe.text_encoder.config.hidden_size
    assert tr.joint_attention_dim == pipe.text_encoder_2.config.d_model
    if preset == "test":
        assert (vae.latent_channels, sf, tr.in_channels, tr.out_channels) == (16, 8, 384, 64)
    if preset == "toy":
        assert (vae.latent_channels, sf, tr.in_channels) == (4, 4, 96)
        assert FillModel(pipe).condition(torch.rand(1, 3, 64, 64), torch.ones(1, 1, 64, 64)).shape == (1, 64, 80)


def test_tokenizers_know_the_toy_words_and_fall_back():
    pipe = build_tiny_pipeline("test")
    assert {"red", "magenta", "triangle", "remove", "nsfw", "composition"} <= set(TOY_WORDS)
    for word in TOY_WORDS:
        assert pipe.tokenizer.tokenize(word) == [word + "</w>"]
        assert pipe.tokenizer_2.tokenize(word) == ["▁" + word]
    # `the words "AB"`: letters keep their case in T5; unknown words fall back to characters / bytes
    assert pipe.tokenizer_2.tokenize('the words "AB"') == ["▁the", "▁words", "▁", '"', "A", "B", '"']
    assert pipe.tokenizer_2.tokenize("zebra") == ["▁", "z", "e", "b", "r", "a"]
    assert len(pipe.tokenizer.tokenize("zebra ü")) >= 6
    assert pipe.tokenizer_2.unk_token_id not in pipe.tokenizer_2("a red circle")["input_ids"]


def test_save_load_round_trip_offline(tiny_fill_dir, tiny_fill, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert all((tiny_fill_dir / name).is_dir() for name in FLUX_FOLDERS)
    assert json.loads((tiny_fill_dir / "model_index.json").read_text())["_class_name"] == "FluxFillPipeline"
    fresh = FillModel(build_tiny_pipeline("test", seed=0))  # same seed: same weights as the saved folder
    for a, b in zip(
        fresh.pipe.transformer.state_dict().values(), tiny_fill.pipe.transformer.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    prompts = ['the words "AB"', "blue square"]
    e1, e2 = fresh.encode_prompts(prompts), tiny_fill.encode_prompts(prompts)
    assert torch.equal(e1.prompt_embeds, e2.prompt_embeds) and torch.equal(e1.pooled, e2.pooled)
    images, masks = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.ones(2, 1, 32, 32)
    kw = dict(steps=2, true_cfg=2.0, guidance=1.0)
    a = fresh.sample(images, masks, prompts, **kw, generator=torch.Generator().manual_seed(0))
    b = tiny_fill.sample(images, masks, prompts, **kw, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="global RNG"):
        tiny_fill.sample(images, masks, prompts, **kw)


def test_building_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_pipeline("test", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_builder_refuses_to_overwrite_and_writes_whole_folders(tmp_path):
    out = build_tiny_flux_fill(tmp_path / "m", preset="test")
    with pytest.raises(UserError, match="already exists"):
        build_tiny_flux_fill(out, preset="test")
    with pytest.raises(UserError, match="unknown preset"):
        build_tiny_flux_fill(tmp_path / "n", preset="huge")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left behind


def test_our_shape_code_runs_against_the_real_flux_fill_config():
    """FLUX.1-Fill-dev at full size on the meta device: conditioning, packing, call and decode shapes."""
    pipe = build_meta_pipeline()
    n_params = sum(p.numel() for p in pipe.transformer.parameters())
    assert 11.8e9 < n_params < 12.0e9  # FLUX.1 [dev]'s ~11.9B
    model = FillModel(pipe, max_sequence_length=512)
    assert (model.sf, model.latent_channels, model.grid) == (8, 16, 16)
    B, H, W = 2, 128, 96
    images = torch.empty(B, 3, H, W, device="meta")
    masks = torch.empty(B, 1, H, W, device="meta")
    cond = model.condition(images, masks)
    L = (H // 16) * (W // 16)
    assert cond.shape == (B, L, 64 + 256)  # packed masked-image latents + packed 8x8 mask
    embeds = model.encode_prompts(["red circle", "remove"])
    assert embeds.prompt_embeds.shape == (B, 512, 4096) and embeds.pooled.shape == (B, 768)
    neg = PromptEmbeds(embeds.prompt_embeds, embeds.pooled, embeds.text_ids)
    x_t = torch.empty(B, L, 64, device="meta")
    v = model.velocity(x_t, torch.empty(B, device="meta"), cond, embeds, neg, true_cfg=4.0, size=(H, W))
    assert v.shape == (B, L, 64)
    x0 = model.predict_x0(x_t, torch.empty(B, device="meta"), cond, embeds, size=(H, W))
    assert model.decode(x0, (H, W)).shape == (B, 3, H, W)
    assert model.sigmas(50, L).shape == (51,)


def test_a_non_fill_transformer_is_refused():
    from diffusers import FluxTransformer2DModel

    pipe = build_tiny_pipeline("test")
    cfg = dict(pipe.transformer.config)
    cfg["in_channels"] = 64  # FLUX.1-dev (text-to-image) layout
    pipe.transformer = FluxTransformer2DModel.from_config(cfg)
    with pytest.raises(UserError, match="in_channels=64"):
        FillModel(pipe)


def test_every_toy_prompt_fits_the_tiny_t5_sequence_untruncated():
    from onereward.models.tiny import T5_MAX_LENGTH, _t5_tokenizer
    from onereward.tasks import NEGATIVE_PROMPT, TASK_NAMES
    from onereward.toyworld import make_conditions

    tok = _t5_tokenizer(TOY_WORDS)
    prompts = {c.prompt for t in TASK_NAMES for c in make_conditions(t, 200, 0, 64, "train")} | {NEGATIVE_PROMPT}
    lengths = {p: len(tok(p).input_ids) for p in prompts}  # with the closing </s>
    assert max(lengths.values()) <= T5_MAX_LENGTH, max(lengths.items(), key=lambda kv: kv[1])
