"""FillModel against diffusers' FluxFillPipeline, true CFG, and the gradient path the RL trainer uses."""

import copy

import pytest
import torch

from onereward.errors import UserError
from onereward.models.fill import FillModel, composite, masked_fraction, write_inference_defaults
from onereward.models.tiny import build_tiny_pipeline

LORA_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]


def _batch(B=2, H=64, W=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(B, 3, H, W, generator=g)  # (B, 3, H, W) in [0, 1]
    masks = torch.zeros(B, 1, H, W)
    masks[:, :, 16:40, 8:30] = 1  # a box; H, W multiples of 16 (the test preset's grid)
    return images, masks


def _fresh():
    """A model of our own to train (the session fixture is shared and read-only)."""
    return FillModel(build_tiny_pipeline("test", seed=0))


def test_conditioning_and_samples_match_flux_fill_pipeline(tiny_fill):
    """Same noise, same posterior-sample generator: FillModel.sample == composite(FluxFillPipeline(...))."""
    m, pipe = tiny_fill, tiny_fill.pipe
    images, masks = _batch()
    B, _, H, W = images.shape
    prompts = ["red circle", 'the words "AB"']
    noise = m.initial_noise(B, H, W, torch.Generator().manual_seed(1))  # (B, L, 4C)
    seen = []
    hook = pipe.transformer.register_forward_pre_hook(
        lambda mod, args, kw: seen.append(kw["hidden_states"].clone()), with_kwargs=True
    )
    try:
        ref = pipe(
            prompt=prompts,
            image=images,
            mask_image=masks,
            height=H,
            width=W,
            num_inference_steps=4,
            guidance_scale=3.5,
            latents=noise,
            generator=torch.Generator().manual_seed(5),
            output_type="pt",
            max_sequence_length=m.max_sequence_length,
        ).images  # (B, 3, H, W) in [0, 1]
    finally:
        hook.remove()
    cond = m.condition(images, masks, generator=torch.Generator().manual_seed(5))  # sampled as the pipeline
    assert torch.equal(seen[0][..., 4 * m.latent_channels :], cond)  # identical conditioning
    assert torch.allclose(m.sigmas(4, cond.shape[1]), pipe.scheduler.sigmas)  # identical schedule
    ours = m.sample(images, masks, prompts, steps=4, true_cfg=1.0, guidance=3.5, noise=noise, cond=cond)
    assert ours.shape == (B, 3, H, W)
    torch.testing.assert_close(ours, composite(images, ref, masks), atol=1e-5, rtol=0)
    # outside the mask the source is kept exactly
    assert torch.equal(ours * (1 - masks), images * (1 - masks))


def test_default_conditioning_is_deterministic(tiny_fill):
    images, masks = _batch()
    a, b = tiny_fill.condition(images, masks), tiny_fill.condition(images, masks)
    assert torch.equal(a, b) and a.shape == (2, 12, 64 + 256)
    sampled = tiny_fill.condition(images, masks, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled[..., 64:], a[..., 64:])  # the mask part is the same either way


def test_true_cfg_is_neg_plus_scale_times_difference(tiny_fill):
    m = tiny_fill
    images, masks = _batch()
    cond = m.condition(images, masks)
    pos, neg = m.encode_prompts(["red circle", "blue square"]), m.encode_prompts(["nsfw", "nsfw"])
    x = torch.randn(2, cond.shape[1], 64, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.7, 0.3])
    size = (64, 48)
    v_pos = m.velocity(x, sigma, cond, pos, size=size)
    v_neg = m.velocity(x, sigma, cond, neg, size=size)
    v_cfg = m.velocity(x, sigma, cond, pos, neg, true_cfg=4.0, size=size)
    torch.testing.assert_close(v_cfg, v_neg + 4.0 * (v_pos - v_neg), atol=1e-5, rtol=1e-4)
    assert torch.equal(m.velocity(x, sigma, cond, pos, neg, true_cfg=1.0, size=size), v_pos)  # cfg 1 = off
    assert not torch.allclose(m.velocity(x, sigma, cond, pos, guidance=30.0, size=size), v_pos)  # guidance is used


def test_rollout_then_one_step_x0(tiny_fill):
    m = tiny_fill
    images, masks = _batch(H=32, W=32)
    cond, embeds = m.condition(images, masks), m.encode_prompts(["red circle", "remove"])
    sigmas = m.sigmas(8, cond.shape[1])
    noise = m.initial_noise(2, 32, 32, torch.Generator().manual_seed(0))
    x_t, sigma_t = m.rollout(noise, cond, embeds, sigmas, stop=3)
    assert x_t.shape == noise.shape and torch.equal(sigma_t, sigmas[3].expand(2))
    x0 = m.predict_x0(x_t, sigma_t, cond, embeds)
    v = m.velocity(x_t, sigma_t, cond, embeds)
    torch.testing.assert_close(x0, x_t - sigmas[3] * v)
    same, _ = m.rollout(noise, cond, embeds, sigmas, stop=0)
    assert torch.equal(same, noise)
    img = m.decode(x0)
    assert img.shape == (2, 3, 32, 32) and 0 <= img.min() and img.max() <= 1


def test_full_finetune_gets_gradients_on_every_tensor_through_the_frozen_vae():
    m = _fresh()
    images, masks = _batch(H=32, W=32)
    cond, embeds = m.condition(images, masks), m.encode_prompts(["red circle", "green square"])
    sigmas = m.sigmas(8, cond.shape[1])
    noise = m.initial_noise(2, 32, 32, torch.Generator().manual_seed(0))
    x_t, sigma_t = m.rollout(noise, cond, embeds, sigmas, stop=5)
    img = m.decode(m.predict_x0(x_t, sigma_t, cond, embeds))  # (2, 3, 32, 32) in [0, 1]
    ((img - 0.25) ** 2).mean().backward()
    params = dict(m.transformer.named_parameters())
    assert params and all(p.grad is not None and p.grad.abs().sum() > 0 for p in params.values()), [
        n for n, p in params.items() if p.grad is None or p.grad.abs().sum() == 0
    ]
    assert all(p.grad is None for p in m.vae.parameters())  # frozen, yet the gradient went through it


def test_rl_gradient_checkpointing_recomputes_the_vae_decode_with_the_same_image_and_gradients(tiny_fill_dir):
    """model.gradient_checkpointing also recomputes the frozen VAE's decoder, which the reward's gradient flows back
    through (at 1024 px it kept 11 GiB: bench/policy_activations.py): same image, same gradient, fewer bytes kept."""
    from onereward.config import Config, apply_overrides
    from onereward.rl.trainer import prepare_policy

    runs = {}
    for ckpt in (False, True):
        m = prepare_policy(FillModel.from_pretrained(tiny_fill_dir), apply_overrides(Config(), [
            f"model.gradient_checkpointing={ckpt}"]))  # fmt: skip
        x = m.initial_noise(2, 64, 64, torch.Generator().manual_seed(0)).requires_grad_(True)  # (B, L, 4C)
        kept: list[int] = []

        def pack(t, kept=kept):
            kept.append(t.numel())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            img = m.decode(x, (64, 64))  # (2, 3, 64, 64)
        ((img - 0.25) ** 2).mean().backward()
        runs[ckpt] = sum(kept), img.detach(), x.grad
    assert runs[True][0] < 0.5 * runs[False][0], (runs[True][0], runs[False][0])
    torch.testing.assert_close(runs[True][1], runs[False][1], atol=1e-6, rtol=0)
    torch.testing.assert_close(runs[True][2], runs[False][2], atol=1e-7, rtol=1e-4)


def test_lora_gets_gradients_and_round_trips_through_a_file(tmp_path, tiny_fill_dir):
    from diffusers import FluxFillPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    m = FillModel.from_pretrained(tiny_fill_dir)
    m.transformer.requires_grad_(False)
    m.transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=LORA_TARGETS))
    trainable = {n: p for n, p in m.transformer.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    opt = torch.optim.SGD(trainable.values(), lr=0.5)
    images, masks = _batch(H=32, W=32)
    cond, embeds = m.condition(images, masks), m.encode_prompts(["red circle", "green square"])
    sigmas = m.sigmas(8, cond.shape[1])
    noise = m.initial_noise(2, 32, 32, torch.Generator().manual_seed(0))
    for _ in range(2):  # lora_B starts at 0, so lora_A's gradient is 0 until one step has moved B
        opt.zero_grad()
        x_t, sigma_t = m.rollout(noise, cond, embeds, sigmas, stop=4)
        img = m.decode(m.predict_x0(x_t, sigma_t, cond, embeds))
        ((img - 0.25) ** 2).mean().backward()
        opt.step()
    zero = [n for n, p in trainable.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert not zero, zero
    # the same module with its adapters disabled is a reference network for free
    x = torch.randn(2, cond.shape[1], 64)
    with torch.no_grad():
        v_lora = m.velocity(x, 0.5, cond, embeds)
        m.transformer.disable_adapters()
        v_base = m.velocity(x, 0.5, cond, embeds)
        m.transformer.enable_adapters()
    assert not torch.allclose(v_lora, v_base)
    # save as pytorch_lora_weights.safetensors, load by path on the base model: the same network
    FluxFillPipeline.save_lora_weights(tmp_path, transformer_lora_layers=get_peft_model_state_dict(m.transformer))
    loaded = FillModel.from_pretrained(tiny_fill_dir, lora=tmp_path / "pytorch_lora_weights.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(loaded.velocity(x, 0.5, cond, embeds), v_lora, atol=1e-5, rtol=1e-4)
    with pytest.raises(UserError, match="no such LoRA file"):
        FillModel.from_pretrained(tiny_fill_dir, lora=tmp_path / "missing.safetensors")


def test_transformer_argument_and_folder_swap_the_network(tmp_path, tiny_fill_dir):
    m = FillModel.from_pretrained(tiny_fill_dir)
    ema = copy.deepcopy(m.transformer)
    images, masks = _batch(H=32, W=32)
    cond, embeds = m.condition(images, masks), m.encode_prompts(["red circle", "remove"])
    x = torch.randn(2, cond.shape[1], 64)
    with torch.no_grad():
        assert torch.equal(m.velocity(x, 0.5, cond, embeds, transformer=ema), m.velocity(x, 0.5, cond, embeds))
        for p in ema.parameters():
            p.add_(0.01)
        v_ema = m.velocity(x, 0.5, cond, embeds, transformer=ema)
        assert not torch.allclose(v_ema, m.velocity(x, 0.5, cond, embeds))
    ema.save_pretrained(tmp_path / "transformer")
    write_inference_defaults(tmp_path / "transformer", steps=8, true_cfg=1.0, guidance=1.0)
    swapped = FillModel.from_pretrained(tiny_fill_dir, transformer=tmp_path / "transformer")
    with torch.no_grad():
        torch.testing.assert_close(swapped.velocity(x, 0.5, cond, embeds), v_ema)
    assert swapped.defaults == {"steps": 8, "true_cfg": 1.0, "guidance": 1.0}
    assert m.defaults == {"steps": 50, "true_cfg": 4.0, "guidance": 1.0}  # the official recipe


def test_flow_matching_loss_pieces(tiny_fill):
    m = _fresh()
    images, masks = _batch(H=32, W=32)
    x0 = m.encode_images(images)  # (2, L, 64)
    assert x0.shape == (2, 4, 64) and torch.equal(x0, m.encode_images(images))
    cond, embeds = m.condition(images, masks), m.encode_prompts(["red circle", "remove"])
    sigma, noise = torch.tensor([0.2, 0.9]), torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    loss = m.flow_matching_loss(x0, cond, embeds, sigma=sigma, noise=noise)
    x_t = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise
    with torch.no_grad():
        manual = ((m.velocity(x_t, sigma, cond, embeds) - (noise - x0)) ** 2).mean()
    torch.testing.assert_close(loss.detach(), manual)
    loss.backward()
    assert all(p.grad is not None for p in m.transformer.parameters())
    weight = masked_fraction(masks, m.grid)  # (2, L) share of masked pixels per token
    assert weight.shape == (2, 4)
    weighted = m.flow_matching_loss(x0, cond, embeds, generator=torch.Generator().manual_seed(0), token_weight=weight)
    assert torch.isfinite(weighted)


def test_missing_component_is_a_user_error(tmp_path, tiny_fill_dir):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_fill_dir, broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(UserError, match="component 'vae' is missing"):
        FillModel.from_pretrained(broken)
    with pytest.raises(UserError, match="no model_index.json"):
        FillModel.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="multiple of 16"):
        FillModel.from_pretrained(tiny_fill_dir).condition(torch.rand(1, 3, 40, 32), torch.ones(1, 1, 40, 32))
