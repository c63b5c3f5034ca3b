"""Benchmark: the activation memory the RL policy's grad-carrying step keeps for backward at FLUX.1-Fill-dev's full
size (the 11.9B transformer's one x0 prediction, then the VAE decode the reward's gradient flows back through), with
and without gradient checkpointing (`model.gradient_checkpointing`: the transformer's blocks and the VAE decoder's).

Counted on the meta device: the models are built there at their real configs (no memory, no compute) and every tensor
autograd saves for backward is counted once per storage, its bytes from its shape and dtype, parameters left out, and
attention as a GPU's flash / memory-efficient kernel keeps it (`_FlashLike`). The count agrees with a real CPU run:
the VAE decode at 192 px keeps 497.9 MiB counted on meta and 495.0 MiB on the CPU, 57.5 MiB for both under
checkpointing (2026-11-28). The trainable parameters of full fine-tuning are used (requires_grad on every
weight); LoRA keeps about the same, since its adapters need the same layer inputs.

Under checkpointing a unit's activations come back during its own backward: the peak adds the largest unit's, which
the "largest unit" column gives (a transformer block; the VAE decoder's last up-block, at full resolution).

    .venv/bin/python bench/policy_activations.py [--sizes 512 1024]

The last line is `FLUX policy activations at S px, checkpointing/plain: R (X GiB against Y GiB)` for the largest size.
"""

from __future__ import annotations

import argparse
import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from diffusers import AutoencoderKL, FluxTransformer2DModel  # noqa: E402

from onereward.models.tiny import REAL_TRANSFORMER, REAL_VAE  # noqa: E402

GIB = 2**30
TEXT_TOKENS = 512  # FLUX.1-Fill-dev's T5 sequence


class _FlashLike(torch.autograd.Function):
    """Attention as a GPU runs it for FLUX (torch's flash / memory-efficient SDPA): saves q, k, v, the output and
    one float32 log-sum-exp per query row, no attention matrix. On the meta device torch would decompose SDPA into
    the math path, which keeps the (heads, L, L) matrices, and count what no GPU keeps. Counting only: no backward."""

    @staticmethod
    def forward(ctx, q, k, v):  # (B, H, L, D) each
        out = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
        lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)  # (B, H, L)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("counting only")


def _flash_like_sdpa(query, key, value, *args, **kwargs):
    return _FlashLike.apply(query, key, value)


def kept_gib(fn, params: set[int]) -> float:
    """GiB of the tensors autograd saves while fn() runs, each storage once, the parameters' own (keys in `params`)
    left out; attention counted as a GPU keeps it (_FlashLike)."""
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = t.untyped_storage()._cdata
        if key not in params:
            kept[key] = max(kept.get(key, 0), (t.storage_offset() + t.numel()) * t.element_size())
        return t

    sdpa = torch.nn.functional.scaled_dot_product_attention
    torch.nn.functional.scaled_dot_product_attention = _flash_like_sdpa
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
    finally:
        torch.nn.functional.scaled_dot_product_attention = sdpa
    return sum(kept.values()) / GIB


def storages(*modules: torch.nn.Module) -> set[int]:
    return {p.untyped_storage()._cdata for m in modules for p in m.parameters()}


# plain; the transformer's blocks recomputed alone (what model.gradient_checkpointing did until the VAE decoder's were
# added); and both
MODES = ("plain", "transformer only", "checkpointing")


def build(mode: str) -> tuple[FluxTransformer2DModel, AutoencoderKL]:
    with torch.device("meta"):
        net = FluxTransformer2DModel(**REAL_TRANSFORMER).to(torch.bfloat16)
        vae = AutoencoderKL(**REAL_VAE).to(torch.bfloat16).requires_grad_(False)  # frozen, as in RL
    if mode != "plain":
        net.enable_gradient_checkpointing()
    if mode == "checkpointing":
        vae.enable_gradient_checkpointing()
    return net, vae


def transformer_call(net: FluxTransformer2DModel, size: int):
    """One x0 prediction's transformer call at size x size (batch 1, the Fill input layout)."""
    h = w = size // 16  # 2x2-packed latent tokens of the /8 VAE
    meta = {"device": "meta", "dtype": torch.bfloat16}
    ids = torch.zeros(h * w, 3, **meta)
    return lambda: net(
        hidden_states=torch.zeros(1, h * w, REAL_TRANSFORMER["in_channels"], **meta),
        timestep=torch.zeros(1, **meta),
        guidance=torch.zeros(1, **meta),
        pooled_projections=torch.zeros(1, REAL_TRANSFORMER["pooled_projection_dim"], **meta),
        encoder_hidden_states=torch.zeros(1, TEXT_TOKENS, REAL_TRANSFORMER["joint_attention_dim"], **meta),
        txt_ids=torch.zeros(TEXT_TOKENS, 3, **meta),
        img_ids=ids,
        return_dict=False,
    )


def decode_call(vae: AutoencoderKL, size: int):
    lat = torch.zeros(1, REAL_VAE["latent_channels"], size // 8, size // 8, device="meta", dtype=torch.bfloat16)
    lat.requires_grad_(True)  # the policy's x0: the gradient flows through the frozen decoder into it
    return lambda: vae.decode(lat, return_dict=False)


def largest_units(net: FluxTransformer2DModel, vae: AutoencoderKL, size: int) -> tuple[float, float]:
    """GiB one double-stream block and the decoder's last up-block keep when run alone (their recomputation)."""
    h = w = size // 16
    dim = REAL_TRANSFORMER["num_attention_heads"] * REAL_TRANSFORMER["attention_head_dim"]
    meta = {"device": "meta", "dtype": torch.bfloat16}
    block = net.transformer_blocks[0]
    img = torch.zeros(1, h * w, dim, **meta).requires_grad_(True)
    txt = torch.zeros(1, TEXT_TOKENS, dim, **meta).requires_grad_(True)
    temb = torch.zeros(1, dim, **meta)
    head = REAL_TRANSFORMER["attention_head_dim"]
    rope = (torch.zeros(h * w + TEXT_TOKENS, head, **meta), torch.zeros(h * w + TEXT_TOKENS, head, **meta))
    was = net.gradient_checkpointing
    net.gradient_checkpointing = False
    block_gib = kept_gib(lambda: block(img, txt, temb, image_rotary_emb=rope), storages(net))
    net.gradient_checkpointing = was
    up = vae.decoder.up_blocks[-1]
    channels = REAL_VAE["block_out_channels"]
    x = torch.zeros(1, channels[1], size // 2, size // 2, **meta).requires_grad_(True)  # its input: 256 ch at 1/2
    up_gib = kept_gib(lambda: up(x), storages(vae))
    return block_gib, up_gib


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    a = ap.parse_args(argv)
    print(f"{'size':>5} {'mode':<17}{'transformer':>12}{'VAE decode':>11}{'total':>8}  largest units: block, up-block")
    totals = {}
    for mode in MODES:
        net, vae = build(mode)
        for s in a.sizes:
            t = kept_gib(transformer_call(net, s), storages(net))
            v = kept_gib(decode_call(vae, s), storages(vae))
            totals[mode, s] = t + v
            units = "  {:.2f}, {:.2f}".format(*largest_units(net, vae, s)) if mode == "checkpointing" else ""
            print(f"{s:>5} {mode:<17}{t:>12.2f}{v:>11.2f}{t + v:>8.2f}{units}")
        del net, vae
    s = a.sizes[-1]
    done, plain = totals["checkpointing", s], totals["plain", s]
    print(f"FLUX policy activations at {s} px, checkpointing/plain: {done / plain:.2f} ({done:.2f} GiB against "
          f"{plain:.2f} GiB)")  # fmt: skip


if __name__ == "__main__":
    main()
