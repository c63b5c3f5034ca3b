"""FillModel: a FLUX.1-Fill-dev-layout pipeline seen as the pieces training and inference need.

One wrapper serves sampling, the RL trainer (encode once, no-grad rollout to a step, one grad-carrying x0 call) and
flow-matching pre-training, so all of them feed the transformer identical inputs. Conditioning, packing, the sigma
schedule and the transformer call follow diffusers' `FluxFillPipeline` (its own methods are called where it has them);
true classifier-free guidance follows the official OneReward `FluxFillCFGPipeline`: one transformer call on the batch
[negative, positive], then pred = neg + true_cfg * (pos - neg); FLUX's distilled guidance is the separate `guidance`.

Conventions: images (B, 3, H, W) in [0, 1], masks (B, 1, H, W) in {0, 1} (1 = fill). The model's pixel range [-1, 1]
lives only inside this class. Packed latents are (B, L, 4C) with L = (H / 2sf) * (W / 2sf) tokens (FLUX: sf 8, C 16).
Methods that need the token grid take `size=(H, W)` in pixels; None means square images (all the toy world uses).
Velocity convention (FLUX): x_t = (1 - sigma) x0 + sigma noise, v = noise - x0, so x0 = x_t - sigma v.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from onereward.errors import UserError
from onereward.models.tiny import fill_in_channels
from onereward.tasks import NEGATIVE_PROMPT

# The official OneReward inference recipe (PAPER.md section 5); a model folder may override it (inference_defaults).
OFFICIAL_STEPS = 50
OFFICIAL_TRUE_CFG = 4.0
OFFICIAL_GUIDANCE = 1.0
DEFAULTS_FILE = "onereward.json"  # optional, in a model folder: {"inference": {"steps", "true_cfg", "guidance"}}

COMPONENTS = ("scheduler", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "transformer")


@dataclass
class PromptEmbeds:
    """Text conditioning for a batch, computed once (`FillModel.encode_prompts`)."""

    prompt_embeds: torch.Tensor  # (B, L_txt, D_t5) T5 token embeddings
    pooled: torch.Tensor  # (B, D_clip) CLIP pooled embedding
    text_ids: torch.Tensor  # (L_txt, 3) zeros: FLUX's text positions

    def __len__(self) -> int:
        return self.prompt_embeds.shape[0]

    def __getitem__(self, idx) -> PromptEmbeds:
        """Select or reorder batch rows (an int, slice, list or index tensor)."""
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return PromptEmbeds(self.prompt_embeds[idx], self.pooled[idx], self.text_ids)

    @staticmethod
    def cat(parts: list[PromptEmbeds]) -> PromptEmbeds:
        return PromptEmbeds(
            torch.cat([p.prompt_embeds for p in parts]),  # (sum B, L_txt, D_t5)
            torch.cat([p.pooled for p in parts]),  # (sum B, D_clip)
            parts[0].text_ids,
        )


# --- small pure helpers ---


def logit_normal_sigmas(n: int, generator: torch.Generator, mean: float = 0.0, std: float = 1.0):
    """sigma = sigmoid(N(mean, std)): the logit-normal training distribution of SD3/FLUX."""
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator))  # (n,) in (0, 1)


def composite(source: torch.Tensor, output: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Keep the source outside the mask: source * (1 - mask) + output * mask."""
    return source * (1 - masks) + output * masks  # (B, 3, H, W) in [0, 1]


def inference_defaults(model: str | Path | None) -> dict[str, float]:
    """steps / true_cfg / guidance for a model folder: its onereward.json if present, else the official recipe."""
    out = {"steps": OFFICIAL_STEPS, "true_cfg": OFFICIAL_TRUE_CFG, "guidance": OFFICIAL_GUIDANCE}
    path = Path(model) / DEFAULTS_FILE if model else None
    if path is not None and path.is_file():
        try:
            out.update({k: v for k, v in json.loads(path.read_text()).get("inference", {}).items() if k in out})
        except (json.JSONDecodeError, AttributeError):
            raise UserError(f"{path}: not a valid onereward.json; fix or delete it") from None
    return out


def write_inference_defaults(folder: str | Path, steps: int, true_cfg: float, guidance: float) -> Path:
    """Record how a trained model should be sampled, so `onereward fill --model folder` uses it by default."""
    from onereward.io import save_json

    inference = {"steps": int(steps), "true_cfg": float(true_cfg), "guidance": float(guidance)}
    return save_json(Path(folder) / DEFAULTS_FILE, {"inference": inference})


def check_pipeline_folder(path: Path, transformer: str | Path | None) -> None:
    """A local pipeline folder must hold every component (the transformer may come from `transformer`)."""
    index = path / "model_index.json"
    if not index.is_file():
        raise UserError(f"{path}: no model_index.json; give a FLUX.1-Fill-dev-layout pipeline folder")
    needed = [c for c in COMPONENTS if not (c == "transformer" and transformer is not None)]
    for name in needed:
        folder = path / name
        if not folder.is_dir() or not any(folder.iterdir()):
            raise UserError(f"{path}: component '{name}' is missing (no {name}/ folder); the folder is incomplete")
    if transformer is not None and not (Path(transformer) / "config.json").is_file():
        raise UserError(f"{transformer}: not a transformer folder (no config.json); give e.g. runs/x/transformer")


def check_layout(pipe) -> None:
    """Fill's input layout must match the VAE; a plain FLUX.1-dev transformer (in_channels 64) fails here."""
    cfg = getattr(pipe.transformer, "module", pipe.transformer).config
    want = fill_in_channels(pipe.vae.config.latent_channels, pipe.vae_scale_factor)
    if cfg.in_channels != want or cfg.out_channels not in (None, 4 * pipe.vae.config.latent_channels):
        raise UserError(
            f"transformer has in_channels={cfg.in_channels}, out_channels={cfg.out_channels}, but a Fill model with "
            f"this VAE needs {want} and {4 * pipe.vae.config.latent_channels}; is it a FLUX Fill transformer?"
        )


class FillModel:
    """A FLUX.1-Fill-dev-layout pipeline, cut into the calls sampling and training need."""

    def __init__(self, pipe, max_sequence_length: int | None = None):
        check_layout(pipe)
        self.pipe = pipe
        self.transformer = pipe.transformer  # the default network; every call takes `transformer=` to swap it
        self.vae = pipe.vae.requires_grad_(False).eval()
        for enc in (pipe.text_encoder, pipe.text_encoder_2):
            enc.requires_grad_(False).eval()
        self.sf = pipe.vae_scale_factor  # VAE downsampling (FLUX: 8)
        self.latent_channels = pipe.vae.config.latent_channels  # C (FLUX: 16)
        self.grid = 2 * self.sf  # pixel side of one token: H and W must be multiples of it (FLUX: 16)
        # FLUX's default text length is 512; a tokenizer that declares a shorter context (the tiny ones) caps it.
        self.max_sequence_length = max_sequence_length or min(512, pipe.tokenizer_2.model_max_length)
        self.defaults = inference_defaults(None)  # steps / true_cfg / guidance for `onereward fill`

    # --- loading ---

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        transformer: str | Path | None = None,
        lora: str | Path | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> FillModel:
        """Load a pipeline folder or hub id; optionally replace its transformer (a folder) and add a LoRA file."""
        from diffusers import FluxFillPipeline, FluxTransformer2DModel

        local = Path(path)
        if local.exists():
            check_pipeline_folder(local, transformer)
        kwargs = {}
        if transformer is not None:
            kwargs["transformer"] = FluxTransformer2DModel.from_pretrained(transformer, dtype=dtype)
        try:
            pipe = FluxFillPipeline.from_pretrained(str(path), dtype=dtype, **kwargs)
        except (OSError, ValueError) as e:
            if not local.exists() and os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "false", "False", ""):
                raise UserError(
                    f"{path}: no such folder, and hub downloads are off (HF_HUB_OFFLINE=1); give a local pipeline "
                    "folder, or set HF_HUB_OFFLINE=0 to download a hub id"
                ) from None
            reason = str(e).splitlines()[0][:300]
            raise UserError(f"could not load the model {path}: {reason}") from None
        if lora is not None:
            lora = Path(lora)
            if not lora.is_file():
                raise UserError(f"{lora}: no such LoRA file; give a pytorch_lora_weights.safetensors file")
            pipe.load_lora_weights(str(lora.parent), weight_name=lora.name)
        model = cls(pipe.to(device))
        model.defaults = inference_defaults(local if local.exists() else None)
        if transformer is not None and (Path(transformer) / DEFAULTS_FILE).is_file():
            model.defaults = inference_defaults(transformer)  # a trained transformer carries its own
        return model

    @property
    def device(self) -> torch.device:
        return self.pipe.transformer.device

    @property
    def dtype(self) -> torch.dtype:
        return self.pipe.transformer.dtype

    # --- shapes ---

    def token_grid(self, size: tuple[int, int] | None, n_tokens: int) -> tuple[int, int]:
        """(h, w) of the packed token grid for pixel size (H, W); None = square, read from the token count."""
        if size is None:
            side = math.isqrt(n_tokens)
            if side * side != n_tokens:
                raise ValueError(f"{n_tokens} tokens are not a square grid; pass size=(H, W)")
            return side, side
        h, w = size[0] // self.grid, size[1] // self.grid
        if h * w != n_tokens or size[0] % self.grid or size[1] % self.grid:
            raise ValueError(f"size {size} does not give {n_tokens} tokens of {self.grid}x{self.grid} px")
        return h, w

    def check_size(self, height: int, width: int) -> None:
        if height % self.grid or width % self.grid:
            raise ValueError(
                f"image size {height}x{width} is not a multiple of {self.grid} px (the model's token grid); "
                "pad or resize first (onereward.infer does)"
            )

    def image_ids(self, h: int, w: int) -> torch.Tensor:
        return self.pipe._prepare_latent_image_ids(1, h, w, self.device, self.dtype)  # (h * w, 3)

    def pack(self, latents: torch.Tensor) -> torch.Tensor:
        return self.pipe._pack_latents(latents, *latents.shape)  # (B, C, 2h, 2w) -> (B, h * w, 4C)

    def unpack(self, packed: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        h, w = self.token_grid(size, packed.shape[1])
        H, W = h * self.grid, w * self.grid
        return self.pipe._unpack_latents(packed, H, W, self.sf)  # (B, h * w, 4C) -> (B, C, 2h, 2w)

    # --- encoders ---

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> PromptEmbeds:
        """Both text encoders, once per batch, via the pipeline's own `encode_prompt`."""
        pe, pooled, text_ids = self.pipe.encode_prompt(
            prompt=list(prompts), prompt_2=None, device=self.device, max_sequence_length=self.max_sequence_length
        )
        return PromptEmbeds(pe.to(self.dtype), pooled.to(self.dtype), text_ids.to(self.dtype))  # (B,L,D) (B,D) (L,3)

    def _vae_latents(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Raw VAE latents of x (B, 3, H, W) in [-1, 1]: the posterior mean, or a sample drawn with `generator`."""
        dist = self.vae.encode(x.to(self.vae.dtype)).latent_dist
        return dist.mode() if generator is None else dist.sample(generator)  # (B, C, H / sf, W / sf)

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Flow-matching targets: images (B, 3, H, W) in [0, 1] -> packed, shifted and scaled latents x0."""
        self.check_size(*images.shape[-2:])
        x = images.to(self.device) * 2 - 1  # (B, 3, H, W) in [-1, 1]
        lat = self._vae_latents(x, generator)  # (B, C, H / sf, W / sf)
        lat = (lat - self.vae.config.shift_factor) * self.vae.config.scaling_factor  # as _encode_vae_image
        return self.pack(lat.to(self.dtype))  # (B, L, 4C)

    @torch.no_grad()
    def condition(
        self, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Fill conditioning: packed masked-image latents + packed pixel mask, via `prepare_mask_latents`.

        The masked image is encoded to its posterior mean (deterministic, so training and inference see the same
        input). With a `generator`, the latents are sampled exactly as FluxFillPipeline samples them.
        """
        B, _, H, W = images.shape
        self.check_size(H, W)
        masks = (masks.to(self.device) >= 0.5).to(self.dtype)  # (B, 1, H, W) in {0, 1}, binarised as the pipeline
        x = images.to(self.device, self.dtype) * 2 - 1  # (B, 3, H, W) in [-1, 1]
        masked = x * (1 - masks)  # (B, 3, H, W): 0 (mid-grey) where the model must generate
        if generator is None:  # prepare_mask_latents skips its own encode when given C-channel latents
            masked = self._vae_latents(masked, None)  # (B, C, H / sf, W / sf)
        mask_tokens, image_tokens = self.pipe.prepare_mask_latents(
            masks, masked, B, self.latent_channels, 1, H, W, self.dtype, self.device, generator
        )  # (B, L, sf * sf * 4), (B, L, 4C)
        return torch.cat((image_tokens, mask_tokens), dim=-1)  # (B, L, 4C + 4 sf^2)

    # --- the schedule ---

    def sigmas(self, steps: int, image_seq_len: int) -> torch.Tensor:
        """FluxFillPipeline's schedule: linspace(1, 1/steps), shifted by the scheduler for this many tokens."""
        from diffusers import FlowMatchEulerDiscreteScheduler
        from diffusers.pipelines.flux.pipeline_flux_fill import calculate_shift

        if steps < 1:
            raise ValueError(f"steps={steps}; need at least 1")
        cfg = self.pipe.scheduler.config
        mu = calculate_shift(
            image_seq_len,
            cfg.get("base_image_seq_len", 256),
            cfg.get("max_image_seq_len", 4096),
            cfg.get("base_shift", 0.5),
            cfg.get("max_shift", 1.15),
        )
        scheduler = FlowMatchEulerDiscreteScheduler.from_config(cfg)  # a copy: the pipeline's keeps its state
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
        return scheduler.sigmas.clone()  # (steps + 1,) from 1 down to 0, float32

    # --- the transformer ---

    def velocity(
        self,
        x_t: torch.Tensor,
        sigma: float | torch.Tensor,
        cond: torch.Tensor,
        embeds: PromptEmbeds,
        neg_embeds: PromptEmbeds | None = None,
        true_cfg: float = 1.0,
        guidance: float = OFFICIAL_GUIDANCE,
        transformer: torch.nn.Module | None = None,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """The transformer's velocity (noise - x0) at x_t, with true CFG when neg_embeds is given and true_cfg != 1.

        x_t (B, L, 4C), sigma a float or (B,), cond (B, L, C_cond) -> (B, L, 4C). Carries grad if the caller does.
        """
        net = transformer if transformer is not None else self.transformer
        B, L, _ = x_t.shape
        h, w = self.token_grid(size, L)
        sigma = torch.as_tensor(sigma, device=self.device, dtype=x_t.dtype).expand(B)  # (B,) in [0, 1]
        use_cfg = neg_embeds is not None and true_cfg != 1.0
        if use_cfg:  # one call on [negative, positive], as the official FluxFillCFGPipeline
            embeds = PromptEmbeds.cat([neg_embeds, embeds])
            x_t, cond, sigma = x_t.repeat(2, 1, 1), cond.repeat(2, 1, 1), sigma.repeat(2)  # (2B, ...)
        cfg = getattr(net, "module", net).config
        g = torch.full_like(sigma, guidance, dtype=torch.float32) if cfg.guidance_embeds else None  # (B,) or None
        v = net(
            hidden_states=torch.cat((x_t, cond), dim=-1),  # (B, L, 4C + C_cond): Fill's input layout
            timestep=sigma,  # FLUX takes sigma in [0, 1] (the pipeline passes t / 1000)
            guidance=g,
            pooled_projections=embeds.pooled,
            encoder_hidden_states=embeds.prompt_embeds,
            txt_ids=embeds.text_ids,
            img_ids=self.image_ids(h, w),
            return_dict=False,
        )[0]  # (B or 2B, L, 4C)
        if use_cfg:
            v_neg, v_pos = v.chunk(2)  # (B, L, 4C) each
            v = v_neg + true_cfg * (v_pos - v_neg)  # (B, L, 4C)
        return v

    @torch.no_grad()
    def rollout(
        self,
        noise: torch.Tensor,
        cond: torch.Tensor,
        embeds: PromptEmbeds,
        sigmas: torch.Tensor,
        stop: int,
        neg_embeds: PromptEmbeds | None = None,
        true_cfg: float = 1.0,
        guidance: float = OFFICIAL_GUIDANCE,
        transformer: torch.nn.Module | None = None,
        size: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Euler steps 0..stop-1 from x = noise (B, L, 4C) at sigmas[0] -> (x_t at sigmas[stop], sigma_t (B,))."""
        if not 0 <= stop < len(sigmas):
            raise ValueError(f"stop={stop} outside the schedule's {len(sigmas) - 1} steps")
        x = noise  # (B, L, 4C) at sigma = sigmas[0]
        for i in range(stop):
            v = self.velocity(x, sigmas[i], cond, embeds, neg_embeds, true_cfg, guidance, transformer, size)
            # Euler in float32, as FlowMatchEulerDiscreteScheduler.step
            x = (x.float() + (sigmas[i + 1] - sigmas[i]) * v.float()).to(v.dtype)  # (B, L, 4C)
        return x, sigmas[stop].to(x.device, x.dtype).expand(x.shape[0])  # (B, L, 4C), (B,)

    def predict_x0(
        self,
        x_t: torch.Tensor,
        sigma_t: torch.Tensor,
        cond: torch.Tensor,
        embeds: PromptEmbeds,
        neg_embeds: PromptEmbeds | None = None,
        true_cfg: float = 1.0,
        guidance: float = OFFICIAL_GUIDANCE,
        transformer: torch.nn.Module | None = None,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """One grad-carrying call: x0 = x_t - sigma_t * v (B, L, 4C)."""
        v = self.velocity(x_t, sigma_t, cond, embeds, neg_embeds, true_cfg, guidance, transformer, size)
        sigma_t = torch.as_tensor(sigma_t, device=x_t.device, dtype=x_t.dtype).expand(x_t.shape[0])  # (B,)
        return x_t - sigma_t[:, None, None] * v  # (B, L, 4C)

    def decode(self, latents: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Packed latents (B, L, 4C) -> images (B, 3, H, W) in [0, 1], differentiable through the frozen VAE."""
        lat = self.unpack(latents, size)  # (B, C, H / sf, W / sf)
        lat = lat / self.vae.config.scaling_factor + self.vae.config.shift_factor
        x = self.vae.decode(lat.to(self.vae.dtype), return_dict=False)[0]  # (B, 3, H, W) in ~[-1, 1]
        return (x / 2 + 0.5).clamp(0, 1)  # (B, 3, H, W) in [0, 1], as the pipeline's postprocess

    # --- training ---

    def flow_matching_loss(
        self,
        x0: torch.Tensor,
        cond: torch.Tensor,
        embeds: PromptEmbeds,
        generator: torch.Generator | None = None,
        sigma: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        guidance: float = OFFICIAL_GUIDANCE,
        transformer: torch.nn.Module | None = None,
        size: tuple[int, int] | None = None,
        token_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Rectified-flow loss on targets x0 (B, L, 4C) from `encode_images`: mse(v, noise - x0), logit-normal sigma.

        token_weight (B, L) optionally weights tokens (e.g. more on the masked ones); it is normalised to mean 1.
        """
        B = x0.shape[0]
        if generator is None and (sigma is None or noise is None):
            raise ValueError("pass a generator (or both sigma and noise): nothing here reads the global RNG")
        if sigma is None:
            sigma = logit_normal_sigmas(B, generator)  # (B,) in (0, 1)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32)  # (B, L, 4C)
        sigma = sigma.to(x0.device, x0.dtype)  # (B,)
        noise = noise.to(x0.device, x0.dtype)  # (B, L, 4C)
        x_t = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise  # (B, L, 4C)
        v = self.velocity(x_t, sigma, cond, embeds, guidance=guidance, transformer=transformer, size=size)
        err = (v.float() - (noise - x0).float()).pow(2).mean(-1)  # (B, L)
        if token_weight is not None:
            err = err * token_weight / token_weight.mean()  # (B, L)
        return err.mean()

    # --- sampling ---

    def initial_noise(self, B: int, H: int, W: int, generator: torch.Generator) -> torch.Tensor:
        """Packed N(0, 1) noise drawn on the CPU (same numbers on every device), as the pipeline's latents shape."""
        shape = (B, self.latent_channels, 2 * (H // self.grid), 2 * (W // self.grid))
        noise = torch.randn(shape, generator=generator, dtype=torch.float32)  # (B, C, H / sf, W / sf)
        return self.pack(noise).to(self.device, self.dtype)  # (B, L, 4C)

    @torch.no_grad()
    def sample(
        self,
        images: torch.Tensor,
        masks: torch.Tensor,
        prompts: list[str],
        negative_prompts: list[str] | None = None,
        steps: int = OFFICIAL_STEPS,
        true_cfg: float = OFFICIAL_TRUE_CFG,
        guidance: float = OFFICIAL_GUIDANCE,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        noise_scale: float = 1.0,
        transformer: torch.nn.Module | None = None,
        cond: torch.Tensor | None = None,
        embeds: PromptEmbeds | None = None,
        neg_embeds: PromptEmbeds | None = None,
    ) -> torch.Tensor:
        """Full sampling: images (B, 3, H, W) in [0, 1] and masks (B, 1, H, W) -> (B, 3, H, W) in [0, 1], composited.

        Noise comes from `noise` (B, L, 4C) or is drawn with `generator`; `noise_scale` multiplies it (a diversity
        knob for candidate generation, 1 = the pipeline). Negative prompts default to "nsfw" when true_cfg != 1.
        `cond`, `embeds` and `neg_embeds` may be passed precomputed (a batch encoded once and sampled many times).
        """
        B, _, H, W = images.shape
        if len(prompts) != B:
            raise ValueError(f"{len(prompts)} prompts for {B} images")
        images = images.to(self.device, self.dtype)  # (B, 3, H, W) in [0, 1]
        masks = (masks.to(self.device) >= 0.5).to(self.dtype)  # (B, 1, H, W) in {0, 1}
        cond = self.condition(images, masks) if cond is None else cond  # (B, L, C_cond)
        embeds = self.encode_prompts(prompts) if embeds is None else embeds
        neg = neg_embeds
        if true_cfg != 1.0 and neg is None:
            neg = self.encode_prompts(negative_prompts or [NEGATIVE_PROMPT] * B)
        if noise is None:
            if generator is None:
                raise ValueError("pass a generator or noise: nothing here reads the global RNG")
            noise = self.initial_noise(B, H, W, generator)  # (B, L, 4C)
        x = noise.to(self.device, self.dtype) * noise_scale  # (B, L, 4C)
        sigmas = self.sigmas(steps, cond.shape[1])  # (steps + 1,)
        x, _ = self.rollout(x, cond, embeds, sigmas, steps, neg, true_cfg, guidance, transformer, (H, W))
        out = self.decode(x, (H, W))  # (B, 3, H, W) in [0, 1]
        return composite(images, out, masks).float()  # (B, 3, H, W) in [0, 1]


def masked_fraction(masks: torch.Tensor, grid: int) -> torch.Tensor:
    """Per-token share of masked pixels, (B, 1, H, W) -> (B, L): a natural `token_weight` for the loss."""
    frac = F.avg_pool2d(masks.float(), grid)  # (B, 1, H / grid, W / grid) in [0, 1]
    return frac.flatten(1)  # (B, L), row-major as the packed tokens
