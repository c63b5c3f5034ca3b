"""`onereward pretrain`: the toy world's pre-trained base model, trained from scratch on ground-truth fills.

OneReward starts RL from a pre-trained fill model (FLUX.1-Fill-dev in the paper). The embedded default has none, so
this trains one in the toy world, in a wall-clock budget that fits any machine:

1. Data: `n_train` conditions of split "train", tasks drawn by PRETRAIN_MIX, held in memory.
2. VAE (`vae_share` of the budget): the tiny preset's AutoencoderKL learns to reconstruct targets and sources (random
   crops; L1 + MSE, weighted up on saturated pixels, + a small KL). Without the weighting a short run reconstructs a
   grey world: the saturated objects are a few percent of the pixels. Then `shift_factor` / `scaling_factor` are
   re-measured from the latents of the training targets, so flow matching sees x0 with mean 0 and std 1.
3. Encode once: targets -> x0 (`FillModel.encode_images`), (source, mask) -> Fill conditioning (`FillModel.condition`,
   exactly what inference feeds), one prompt embedding per unique prompt (`FillModel.encode_prompts`).
4. Transformer (the rest): `FillModel.flow_matching_loss` (velocity target, logit-normal sigma), tokens weighted by
   0.1 + their masked fraction, AdamW with warm-up and a cosine decay over the time budget, an EMA of the weights.
   The EMA is what is saved. Velocity prediction works here because a token is 16-dim (VAE /4, C 4, 2x2 packing)
   against a 64-dim stream; with wide pixel tokens it produces pure noise (PILOT.md section 2).
5. Judge by sampling, never by the loss (PILOT.md section 9): held-out conditions of split "eval" are sampled at the
   inference defaults written to onereward.json (4 Euler steps, true CFG 1, as the toy RL preset samples) and scored by
   the oracle, for the trained model, the untrained initialisation and the VAE's own reconstruction of the truth
   (the ceiling the VAE leaves the transformer).

The text encoders stay frozen at their random initialisation. A random frozen T5 still gives each toy word a distinct,
fixed feature (and each letter, for text rendering), which the transformer learns to read; freezing lets every
prompt be encoded once, keeps the encoders identical between pre-training, RL and inference (FillModel freezes them
too), and matches FLUX, whose text encoders are never trained with the transformer.

The folder is built next to `out` and renamed into place at the end, so a killed run never leaves a model that looks
finished.

What the base model learns in this budget and what did not change it (widths, steps, x0 prediction, object size,
Euler steps, data parallelism, torch.compile), as measured: docs/BASE_MODEL.md.
"""

from __future__ import annotations

import copy
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from typer import Option as Opt

from onereward.errors import UserError
from onereward.io import occupied
from onereward.tasks import TASK_NAMES

REPORT_FILE = "pretrain_report.json"
FIGURE_FILE = "base_model.png"

# PILOT.md section 8: the base model's usability at 8 Euler steps (checked on the task rows of these names; the pilot's
# fill and extend had no text rendering and no prompted extend).
TARGETS: dict[str, float] = {"fill": 0.15, "extend": 0.30, "removal": 0.65}

# The pre-training task mix. Not the RL mix of the task table: most of it goes to fill, prompted extend and text, the
# tasks the transformer learns slowest (text also teaches the VAE its ink); removal and extend without prompt learn
# fast at any share.
PRETRAIN_MIX: dict[str, float] = {"fill": 0.4, "text": 0.15, "extend": 0.2, "extend_noprompt": 0.1, "removal": 0.15}


@dataclass
class PretrainConfig:
    seconds: float = 240.0  # wall-clock budget from the start to the end of training (evaluation and saving on top)
    seed: int = 0  # initialisation, data and noise
    size: int = 64  # scene side in pixels (a multiple of the model's 16-px token grid)
    batch_size: int = 16  # transformer batch
    preset: str = "toy"  # tiny preset (models/tiny.py)
    n_train: int = 3000  # training conditions, tasks drawn by `weights`
    eval_per_task: int = 50  # held-out conditions per task (split "eval") for the usability table
    vae_share: float = 0.45  # share of `seconds` spent on the VAE (60 s: fill ceiling ~60%; 150 s: ~90%)
    vae_batch: int = 8  # VAE crops per step
    vae_crop: int = 32  # VAE crop side in pixels (the VAE is convolutional; crops give more scenes per second)
    vae_lr: float = 1e-3  # 3e-3 learned slower in a 60-s budget (grey backgrounds, worse oracle ceiling)
    init_logvar: float = -8.0  # the encoder starts with a near-deterministic posterior (std 0.02), see train_vae
    kl_weight: float = 1e-6  # per latent element, against a per-pixel reconstruction loss
    color_weight: float = 10.0  # reconstruction weight 1 + color_weight * detail (objects, ink)
    lr: float = 3e-3  # transformer AdamW learning rate (peak); 1e-3 learned less in the same budget
    warmup_steps: int = 100
    ema: float = 0.99  # EMA decay of the saved weights (with the usual (1 + n) / (10 + n) warm-up); 0.999 lags
    # a run of ~1,500 steps that is still improving fast
    unmasked_weight: float = 0.1  # token weight = unmasked_weight + masked fraction (kept tokens are composited away)
    steps: int = 4  # inference defaults written to onereward.json and used for the evaluation (see the docstring)
    true_cfg: float = 1.0
    guidance: float = 1.0
    threads: int = 1  # torch CPU threads (see pretrain_command)
    max_steps: int | None = None  # stop each phase after this many steps even with time left (tests, experiments)
    weights: dict[str, float] = field(default_factory=lambda: dict(PRETRAIN_MIX))  # task mix of the training data


# --- small helpers ---


def check_out(out: Path, overwrite: bool) -> None:
    if occupied(out) and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite or choose another --out")


def task_counts(n: int, weights: dict[str, float]) -> dict[str, int]:
    """n split by weight, largest remainders first, so the counts sum to n exactly."""
    raw = {t: n * w for t, w in weights.items()}
    counts = {t: int(v) for t, v in raw.items()}
    for t in sorted(raw, key=lambda t: counts[t] - raw[t])[: n - sum(counts.values())]:
        counts[t] += 1
    return counts


def cosine_lr(peak: float, step: int, warmup: int, progress: float) -> float:
    """Linear warm-up over `warmup` steps, then cosine from peak to 5% of it as the time budget runs out."""
    return (
        peak * min(1.0, (step + 1) / max(1, warmup)) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1, progress))))
    )


def detail(x):
    """(B, 3, H, W) in [-1, 1] -> (B, 1, H, W) in [0, 1]: how much a pixel stands out of a muted background.

    The larger of its saturation (max - min over the colour channels: the objects) and its max-channel distance from
    its image's median colour (also black / white text ink, which is not saturated). Weighted by saturation alone, the
    VAE reconstructed ink as mid-grey and no text could ever be rendered.
    """
    saturation = x.amax(1, keepdim=True) - x.amin(1, keepdim=True)
    median = x.flatten(2).median(-1).values[..., None, None]  # (B, 3, 1, 1)
    contrast = (x - median).abs().amax(1, keepdim=True)
    return saturation.maximum(contrast) / 2


def random_crop(x, crop: int, generator, align: int):
    """One random crop (B, 3, crop, crop) for the whole batch, its corner on the VAE's `align`-px grid."""
    import torch

    H, W = x.shape[-2:]
    if crop >= min(H, W):
        return x
    oy, ox = (torch.randint(0, (s - crop) // align + 1, (1,), generator=generator).item() * align for s in (H, W))
    return x[..., oy : oy + crop, ox : ox + crop]


class _Clock:
    """A tqdm bar over a wall-clock budget: the bar fills with elapsed seconds, the postfix shows the step."""

    def __init__(self, desc: str, seconds: float, progress: bool):
        from tqdm import tqdm

        self.seconds, self.start = seconds, time.perf_counter()
        self.bar = tqdm(total=seconds, desc=desc, unit="s", disable=not progress, leave=True,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s {postfix}")  # fmt: skip

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def running(self) -> bool:
        return self.elapsed() < self.seconds

    def tick(self, **postfix: Any) -> None:
        self.bar.n = min(self.seconds, self.elapsed())
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


# --- 1. data ---


@dataclass
class ToyData:
    """Training conditions as tensors, in memory."""

    targets: Any  # (N, 3, S, S) float32 in [0, 1]
    sources: Any  # (N, 3, S, S) float32 in [0, 1]
    masks: Any  # (N, 1, S, S) float32 in {0, 1}
    prompts: list[str]  # N prompts (what the model sees)
    tasks: list[str]  # N task names


def make_training_data(n: int, seed: int, size: int, weights: dict[str, float]) -> ToyData:
    import torch

    from onereward.toyworld import make_conditions

    conds = [c for t, k in task_counts(n, weights).items() if k for c in make_conditions(t, k, seed, size, "train")]

    def stack(arrays):
        return torch.from_numpy(np.stack(arrays))

    return ToyData(
        targets=stack([c.target for c in conds]).permute(0, 3, 1, 2).contiguous(),  # (N, 3, S, S)
        sources=stack([c.source for c in conds]).permute(0, 3, 1, 2).contiguous(),  # (N, 3, S, S)
        masks=stack([c.mask for c in conds])[:, None].contiguous(),  # (N, 1, S, S)
        prompts=[c.prompt for c in conds],
        tasks=[c.task for c in conds],
    )


# --- 2. VAE ---


def loss_stats(losses: list[float], window: int = 10) -> dict[str, float]:
    """Mean loss over the first and the last `window` steps (a sanity check only: samples are the judge)."""
    if not losses:
        return {"loss_start": float("nan"), "loss_end": float("nan")}
    return {"loss_start": float(np.mean(losses[:window])), "loss_end": float(np.mean(losses[-window:]))}


def start_deterministic(vae, logvar: float) -> None:
    """Make the encoder's initial posterior nearly a point (log-variance `logvar` everywhere).

    A fresh encoder puts out log-variance ~0 (std 1) with means ~0.1, so the decoder first learns from latents that
    are mostly noise; starting at std exp(logvar / 2) lets it learn from the signal at once. The small KL term
    then sets the variance, as in any VAE.
    """
    import torch

    conv = vae.encoder.conv_out  # 2C output channels: C means, then C log-variances (DiagonalGaussianDistribution)
    C = vae.config.latent_channels
    with torch.no_grad():
        conv.weight[C:].zero_()
        conv.bias[C:].fill_(logvar)


def train_vae(vae, images, cfg: PretrainConfig, seconds: float, generator, progress: bool = True) -> dict[str, Any]:
    """Reconstruction training of an AutoencoderKL on images (N, 3, S, S) in [0, 1], for `seconds` of wall time."""
    import torch

    align = 2 ** (len(vae.config.block_out_channels) - 1)  # the VAE's downsampling factor
    start_deterministic(vae, cfg.init_logvar)
    vae.train().requires_grad_(True)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    clock, step, losses = _Clock("vae", seconds, progress), 0, []
    while clock.running() and step < (cfg.max_steps or math.inf):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(cfg.vae_lr, step, 50, clock.elapsed() / seconds)
        idx = torch.randint(len(images), (cfg.vae_batch,), generator=generator)  # (B,)
        x = random_crop(images[idx], cfg.vae_crop, generator, align) * 2 - 1  # (B, 3, c, c) in [-1, 1]
        post = vae.encode(x).latent_dist
        recon = vae.decode(post.sample(generator)).sample  # (B, 3, c, c)
        w = 1 + cfg.color_weight * detail(x)  # (B, 1, c, c)
        err = (recon - x).abs() + (recon - x).pow(2)  # (B, 3, c, c): L1 for the many flat pixels, MSE for edges
        rec = (err * w).mean() / w.mean()
        kl = post.kl().mean() / post.mean[0].numel()  # per latent element
        loss = rec + cfg.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        losses.append(rec.item())
        if step % 10 == 0:
            clock.tick(step=step, recon=f"{np.mean(losses[-50:]):.4f}")
    clock.close()
    vae.eval().requires_grad_(False)
    return {"steps": step, "seconds": clock.elapsed(), **loss_stats(losses)}


# --- 3./4. transformer ---


@dataclass
class Encoded:
    """Everything the flow-matching step needs, computed once."""

    x0: Any  # (N, L, 4C) packed, shifted, scaled target latents (exactly FillModel.encode_images)
    cond: Any  # (N, L, C_cond) Fill conditioning (exactly FillModel.condition)
    token_weight: Any  # (N, L)
    prompt_index: Any  # (N,) long, into embeds
    embeds: Any  # PromptEmbeds of the unique prompts


def encode_data(model, data: ToyData, unmasked_weight: float, batch: int = 256) -> tuple[Encoded, dict[str, float]]:
    """Encode the data once, after re-measuring the VAE's shift_factor / scaling_factor on the targets' latents.

    The factors are chosen so that x0 = (z - shift) * scale has mean 0 and std 1 over the training targets, the
    scale flow matching assumes (FLUX's own 0.1159 / 0.3611 were measured the same way on its VAE). The targets are
    encoded once with the identity factors and then normalised, which equals encode_images with the new ones
    (packing only moves numbers).
    """
    import torch

    from onereward.models.fill import masked_fraction

    vae = model.vae
    vae.register_to_config(shift_factor=0.0, scaling_factor=1.0)
    raw = torch.cat([model.encode_images(data.targets[i : i + batch]) for i in range(0, len(data.prompts), batch)])
    shift, scale = float(raw.mean()), float(1.0 / raw.std())  # raw: (N, L, 4C) packed posterior means
    vae.register_to_config(shift_factor=shift, scaling_factor=scale)
    cond = [model.condition(data.sources[i : i + batch], data.masks[i : i + batch]) for i in range(0, len(raw), batch)]
    unique = sorted(set(data.prompts))
    lookup = {p: k for k, p in enumerate(unique)}
    enc = Encoded(
        x0=(raw - shift) * scale,  # (N, L, 4C)
        cond=torch.cat(cond),  # (N, L, C_cond)
        token_weight=unmasked_weight + masked_fraction(data.masks, model.grid),  # (N, L)
        prompt_index=torch.tensor([lookup[p] for p in data.prompts]),  # (N,)
        embeds=model.encode_prompts(unique),  # (P, ...)
    )
    return enc, {"shift_factor": shift, "scaling_factor": scale}


def _ema_update(ema, net, decay: float) -> None:
    import torch

    with torch.no_grad():
        for e, p in zip(ema.parameters(), net.parameters(), strict=True):
            e.lerp_(p, 1 - decay)


def train_transformer(
    model, enc: Encoded, cfg: PretrainConfig, seconds: float, generator, progress: bool = True
) -> tuple[Any, dict[str, Any]]:
    """Flow matching on the cached data for `seconds` of wall time -> (EMA transformer, stats)."""
    import torch

    net = model.transformer.train().requires_grad_(True)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    clock, step, losses = _Clock("transformer", seconds, progress), 0, []
    while clock.running() and step < (cfg.max_steps or math.inf):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(cfg.lr, step, cfg.warmup_steps, clock.elapsed() / seconds)
        idx = torch.randint(len(enc.x0), (cfg.batch_size,), generator=generator)  # (B,)
        loss = model.flow_matching_loss(
            enc.x0[idx], enc.cond[idx], enc.embeds[enc.prompt_index[idx]], generator=generator,
            guidance=cfg.guidance, transformer=net, token_weight=enc.token_weight[idx],
        )  # fmt: skip
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        _ema_update(ema, net, min(cfg.ema, (1 + step) / (10 + step)))
        step += 1
        losses.append(loss.item())
        if step % 10 == 0:
            clock.tick(step=step, loss=f"{np.mean(losses[-100:]):.4f}")
    clock.close()
    net.eval().requires_grad_(False)
    return ema, {"steps": step, "seconds": clock.elapsed(), **loss_stats(losses)}


# --- 5. judging by sampling ---


def sample_conditions(model, conds, cfg: PretrainConfig, seed: int, batch: int = 64, transformer=None) -> np.ndarray:
    """Composited samples (n, S, S, 3) in [0, 1] at the inference defaults; the same noise for every model."""
    import torch

    outs = []
    gen = torch.Generator().manual_seed(seed)
    for i in range(0, len(conds), batch):
        part = conds[i : i + batch]
        images = torch.from_numpy(np.stack([c.source for c in part])).permute(0, 3, 1, 2)  # (b, 3, S, S)
        masks = torch.from_numpy(np.stack([c.mask for c in part]))[:, None]  # (b, 1, S, S)
        out = model.sample(images, masks, [c.prompt for c in part], steps=cfg.steps, true_cfg=cfg.true_cfg,
                           guidance=cfg.guidance, generator=gen, transformer=transformer)  # fmt: skip
        outs.append(out.permute(0, 2, 3, 1).cpu().numpy())  # (b, S, S, 3)
    return np.concatenate(outs)


def reconstruct(model, conds, batch: int = 64) -> np.ndarray:
    """The VAE's reconstruction of each target (n, S, S, 3): the best a perfect transformer could give."""
    import torch

    outs = []
    with torch.no_grad():
        for i in range(0, len(conds), batch):
            t = torch.from_numpy(np.stack([c.target for c in conds[i : i + batch]])).permute(0, 3, 1, 2)
            outs.append(model.decode(model.encode_images(t)).permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(outs)


def usability(conds, images: np.ndarray) -> dict[str, float]:
    """Share of oracle-usable outputs per task."""
    from onereward.toyworld import score, usable

    per_task: dict[str, list[bool]] = {}
    for c, im in zip(conds, images, strict=True):
        per_task.setdefault(c.task, []).append(usable(c.task, score(c, im)))
    return {t: float(np.mean(v)) for t, v in per_task.items()}


def meets_targets(use: dict[str, float]) -> bool:
    """PILOT.md section 8: fill / extend / removal at or above target, and no task perfect (RL needs headroom)."""
    return all(use.get(t, 0.0) >= v for t, v in TARGETS.items()) and all(v < 1.0 for v in use.values())


def figure(conds, outputs: np.ndarray, per_task: int = 3):
    """Rows = tasks; per condition: source with the mask hatched, the base model's output, the ground truth."""
    from PIL import Image, ImageDraw, ImageFont

    from onereward.io import to_uint8
    from onereward.toyworld.grid import hatched

    zoom, label_w, caption_h, gap, sep = 2, 110, 14, 12, 2
    size = conds[0].size
    tile = size * zoom
    by_task: dict[str, list[int]] = {}
    for i, c in enumerate(conds):
        by_task.setdefault(c.task, []).append(i)
    tasks = [t for t in TASK_NAMES if t in by_task]
    cell_w = 3 * tile + 2 * sep + gap
    head = 16
    canvas = Image.new("RGB", (label_w + per_task * cell_w, head + len(tasks) * (tile + caption_h + gap)), "white")
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    for k in range(per_task):
        for j, name in enumerate(("source + mask", "base model", "ground truth")):
            draw.text((label_w + k * cell_w + j * (tile + sep) + 2, 2), name, fill=(90, 90, 90), font=font)
    for r, task in enumerate(tasks):
        y = head + r * (tile + caption_h + gap)
        draw.text((6, y + tile // 2 - 6), task, fill=(0, 0, 0), font=font)
        for k, i in enumerate(by_task[task][:per_task]):
            c, x = conds[i], label_w + k * cell_w
            for j, img in enumerate((hatched(c), outputs[i], c.target)):
                pil = Image.fromarray(to_uint8(img)).resize((tile, tile), Image.Resampling.NEAREST)
                canvas.paste(pil, (x + j * (tile + sep), y))
            prompt = c.prompt if len(c.prompt) <= 44 else c.prompt[:41] + "..."
            draw.text((x, y + tile + 1), prompt, fill=(60, 60, 60), font=font)
    return canvas


# --- the whole run ---


def pretrain(out: str | Path, cfg: PretrainConfig, overwrite: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train the tiny VAE and fill transformer in the toy world; write a FLUX.1-Fill-dev-layout folder to `out`.

    Returns the report (also written to out/pretrain_report.json): timings, steps, and per-task oracle usability of
    the trained model, the untrained initialisation and the VAE reconstruction of the truth, on held-out conditions.
    """
    import torch

    out = Path(out)
    check_out(out, overwrite)
    if cfg.seconds <= 0 or cfg.batch_size < 1 or cfg.n_train < 1 or not 0 < cfg.vae_share < 1:
        raise UserError("need seconds > 0, batch size >= 1, n_train >= 1 and 0 < vae_share < 1")
    load = os.getloadavg()[0]  # other processes on the cores: the timings and step counts depend on it
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _pretrain(out, cfg, progress, load)
    finally:
        torch.set_num_threads(threads_before)


def _pretrain(out: Path, cfg: PretrainConfig, progress: bool, load: float) -> dict[str, Any]:
    import torch

    from onereward.io import atomic_dir, save_json
    from onereward.models.fill import FillModel, write_inference_defaults
    from onereward.models.tiny import build_tiny_pipeline
    from onereward.toyworld import make_conditions

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    gen = torch.Generator().manual_seed(cfg.seed)

    # --- 1. data ---
    t0 = time.perf_counter()
    pipe = build_tiny_pipeline(cfg.preset, cfg.seed)
    grid = 2 * pipe.vae_scale_factor
    if cfg.size % grid:
        raise UserError(f"--size {cfg.size}: use a multiple of {grid} px (the {cfg.preset} model's token grid)")
    data = make_training_data(cfg.n_train, cfg.seed, cfg.size, cfg.weights)
    eval_conds = [c for t in TASK_NAMES for c in make_conditions(t, cfg.eval_per_task, cfg.seed, cfg.size, "eval")]
    timings["data"] = time.perf_counter() - t0

    # --- 2. VAE ---
    vae_seconds = cfg.seconds * cfg.vae_share
    vae_stats = train_vae(pipe.vae, torch.cat([data.targets, data.sources]), cfg, vae_seconds, gen, progress)
    timings["vae"] = vae_stats["seconds"]

    # --- 3. encode once ---
    t0 = time.perf_counter()
    model = FillModel(pipe)
    enc, latent_stats = encode_data(model, data, cfg.unmasked_weight)
    vae_stats.update(latent_stats)
    timings["encode"] = time.perf_counter() - t0

    # --- 4. transformer: the rest of the budget (data and encoding count against it) ---
    budget_left = cfg.seconds - (time.perf_counter() - t_start)
    ema, tr_stats = train_transformer(model, enc, cfg, max(1.0, budget_left), gen, progress)
    pipe.transformer.load_state_dict(ema.state_dict())  # the EMA weights are the model
    timings["transformer"] = tr_stats["seconds"]

    # --- 5. judge by sampling ---
    t0 = time.perf_counter()
    samples = sample_conditions(model, eval_conds, cfg, cfg.seed)
    untrained = FillModel(build_tiny_pipeline(cfg.preset, cfg.seed))
    use = {
        "pretrained": usability(eval_conds, samples),
        "untrained": usability(eval_conds, sample_conditions(untrained, eval_conds, cfg, cfg.seed)),
        "vae_ceiling": usability(eval_conds, reconstruct(model, eval_conds)),
    }
    timings["eval"] = time.perf_counter() - t0

    # --- save, atomically ---
    t0 = time.perf_counter()
    with atomic_dir(out) as tmp:
        pipe.save_pretrained(tmp)
        write_inference_defaults(tmp, cfg.steps, cfg.true_cfg, cfg.guidance)
        figure(eval_conds, samples).save(tmp / FIGURE_FILE, format="PNG", optimize=True)
        timings["save"] = time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start
        report = {
            "usable": use,
            "meets_targets": meets_targets(use["pretrained"]),
            "targets": TARGETS,
            "eval": {
                "split": "eval",
                "per_task": cfg.eval_per_task,
                "seed": cfg.seed,
                "steps": cfg.steps,
                "true_cfg": cfg.true_cfg,
                "guidance": cfg.guidance,
            },  # fmt: skip
            "seconds": {k: round(v, 1) for k, v in timings.items()},
            "vae": vae_stats,
            "transformer": tr_stats,
            "config": asdict(cfg),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, load {load:.1f} at the start",
            "threads": cfg.threads,
        }
        save_json(tmp / REPORT_FILE, report)
    return report


def report_table(report: dict[str, Any]) -> str:
    """Per-task usability of the trained vs untrained model (and the VAE ceiling), as a terminal table."""
    use = report["usable"]
    tasks = [t for t in TASK_NAMES if t in use["pretrained"]]
    lines = ["".ljust(14) + "".join(t[:15].rjust(16) for t in tasks)]
    for name in ("pretrained", "untrained", "vae_ceiling"):
        lines.append(name.ljust(14) + "".join(f"{100 * use[name][t]:15.0f}%" for t in tasks))
    return "\n".join(lines)


def pretrain_command(
    out: Annotated[Path, Opt(help="Folder to write the trained pipeline to (FLUX.1-Fill-dev layout).")],
    seconds: Annotated[float, Opt(help="Wall-clock budget: data, VAE, encoding, transformer (eval on top).")] = 240.0,
    seed: Annotated[int, Opt(help="Seed of the initialisation, the data and the noise.")] = 0,
    size: Annotated[int, Opt(help="Toy-world image size in pixels (a multiple of 16).")] = 64,
    batch_size: Annotated[int, Opt(help="Transformer batch size.")] = 16,
    train_conditions: Annotated[int, Opt(help="Training conditions, tasks mixed by PRETRAIN_MIX.")] = 3000,
    eval_per_task: Annotated[int, Opt(help="Held-out conditions per task for the usability table.")] = 50,
    threads: Annotated[int, Opt(help="torch CPU threads; 1 is the safe choice on shared cores.")] = 1,
    overwrite: Annotated[bool, Opt(help="Replace an existing folder.")] = False,
) -> None:
    """Pre-train the tiny base fill model (VAE + transformer) in the toy world, judged by sampling on held-out data.

    One thread by default: on 2 cores shared with another busy process, a transformer step took 70-110 ms on one
    thread and 70-1900 ms on two (OpenMP threads waiting for a descheduled partner); the models are too small for a
    second thread to gain much even on idle cores.
    """
    check_out(out, overwrite)  # before any heavy import
    if seconds <= 0 or min(batch_size, train_conditions, eval_per_task, threads) < 1:
        raise UserError("need --seconds > 0, and --batch-size, --train-conditions, --eval-per-task, --threads >= 1")
    if size < 48 or size % 16:
        raise UserError(f"--size {size}: use a multiple of 16 px, at least 48 (e.g. 64)")
    from onereward.models.commands import _quiet_libraries

    _quiet_libraries()
    cfg = PretrainConfig(seconds=seconds, seed=seed, size=size, batch_size=batch_size, n_train=train_conditions,
                         eval_per_task=eval_per_task, threads=threads)  # fmt: skip
    report = pretrain(out, cfg, overwrite=overwrite)
    typer.echo(report_table(report))
    s = report["seconds"]
    typer.echo(f"oracle usability on {eval_per_task} held-out conditions per task, {cfg.steps} Euler steps; "
               f"{s['total']:.0f} s in all (vae {s['vae']:.0f} s, transformer {s['transformer']:.0f} s); "
               f"targets {'met' if report['meets_targets'] else 'NOT met'}")  # fmt: skip
    typer.echo(f"wrote {out}")
