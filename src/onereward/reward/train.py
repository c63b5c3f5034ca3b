"""`onereward train-reward`: fine-tune a Qwen2.5-VL judge on preference pairs with OneReward's loss (PAPER.md 2).

The loss. Every (winner, loser) pair is shown in BOTH orders with weight 1/2 each, and the model is trained by
cross-entropy over the next token's [Yes, No] logits (`RewardModel.yes_no_logits`):
    L = -1/2 [ log P(Yes | winner, loser, q) + log P(No | loser, winner, q) ],   q = template(task, dimension, prompt)
(`both_orders_loss`). A pair may be labelled on several dimensions at once (auxiliary pairs, below): each labelled
(pair, dimension) is one term and the loss is their mean.

The loop (`train`) reads top to bottom: data, model, then one loop whose body is a step. Each step draws a task and
a batch of that task's pairs from a generator seeded by (seed, step), so the data position IS the step counter and
`--resume` continues exactly (model, optimiser, schedule, RNG and step from an atomic checkpoint).

Held-out pairs. The preference data is split BY CONDITION (`data.prefs.split_by_condition`, fraction `held_out`):
no pair of a held-out condition is trained on, and no auxiliary pair is made from one. The split is written to
`split.json` in the output folder, and `onereward eval-reward` reads it, so accuracy is always measured on the same
held-out conditions.

The embedded default's prior (a property of the toy setting, NOT of OneReward). The paper fine-tunes Qwen2.5-VL-7B,
which already sees. With no `--base`, the model here is a tiny Qwen2.5-VL built from scratch (`reward.tiny`, `TOY_RM`
sizes), which has no perception, and PILOT.md section 4 found that such a model trained on best/worst pairs alone
stays at chance. So, only for preference data made by `onereward collect` (a candidates.jsonl beside pairs.jsonl)
and only when no `--base` is given, training adds five things, all built from TRAINING conditions only:
  1. graded auxiliary pairs from the toy world, ordered by the oracle (`reward.aux_pairs`), mixed into every batch
     (`real_share` of each batch stays real pairs, so these are repeated many times);
  2. sibling requests for fill and text (same images, another prompt, other order), from step `prompt_start`;
     with `bind_steps` > 0 (off by default), first that many steps of binding pairs alone (a condition's ground
     truth against its sibling request's, under either prompt; see BIND_PHASE);
  3. an image-score head (`ImageScoreHead`): a linear read-out of each image's oracle scores from the vision tower,
     trained alongside and thrown away at export;
  4. answer-position read-outs (`AnswerReadOut`) of the language model's first layer, for fill and extend: the
     pair's difference (what each image drew) and the prompt's colour and shape; also thrown away at export;
  5. a per-token read-out of the vision tower (`CellReadOut`): the colours and shapes in each token's square.
Items 3-5 live in `reward.prior` (`ToyPrior` adds their losses to the objective), items 1-2 in `reward.aux_pairs`.
A from-scratch pairwise judge first sits on a symmetric plateau (loss 0.693, the same answer in both orders); the
schedule and the mix above shortened it, and the learning rate decides it: on one demo's preferences (seed 0, 1,000
steps) lr 1e-2 never left it, 5e-3 left it only after ~700 steps (best cell 0.67 held out, below the RL gate), 2e-3
left it before step 250 and ended with 4 of 9 cells at or above the paper's accuracy (extend consistency 0.95).
What the prior does and does not buy, cell by cell, as measured: docs/REWARD_PRIOR.md.
With `--base` (e.g. Qwen2.5-VL-7B-Instruct) or data from elsewhere, none of this is used: the paper's recipe alone.

Real data and models. `image_size` S reads each batch's images from disk, resized to S x S (photos come in many sizes
and do not fit in memory together; without it every image is held in memory and they must share one size; use a
multiple of the model's patch x merge, 28 for Qwen2.5-VL). `mixed_precision="bf16"` runs the forward under bf16
autocast and, with LoRA, loads the frozen base weights in bf16 (the adapters stay float32).
`gradient_checkpointing` recomputes both towers in backward (`RewardModel.enable_gradient_checkpointing`).

Output: the folder loads with `Qwen2_5_VLForConditionalGeneration.from_pretrained` and `RewardModel.from_pretrained`
(merged weights, LoRA folded in, processor files), plus split.json, train_report.json, log.jsonl, tensorboard/ and
checkpoints/.
"""

from __future__ import annotations

import json
import math
import os
import time
import types
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from onereward import checkpoint
from onereward.errors import UserError
from onereward.tasks import MAX_DIMS, TASK_NAMES, TASKS

SPLIT_FILE = "split.json"
REPORT_FILE = "train_report.json"

# Sizes of the embedded default's reward model (the "toy" preset of reward/tiny.py with these fields replaced).
TOY_RM: dict[str, int] = dict(v_hidden=64, v_depth=2, v_heads=4, hidden=64, layers=2, heads=4, kv_heads=2)
# The text model's rotary positions, replacing the 7B's (theta 1e6, sections [16, 24, 24] of 64, scaled to [2, 3, 3]).
# At the tiny head size (16) those leave only two rotary pairs on the temporal axis, the one that tells the first image
# from the second, and both nearly still over a 100-token query; theta 100 with 6 of 8 pairs temporal gives the model
# the order at once. On a toy task, steps to leave the symmetric plateau: 80 / 110 / never (>200) with the 7B's,
# 50 / 75 / 70 with these (seeds 0-2).
TOY_ROPE: dict = {"rope_theta": 100.0, "mrope_section": [6, 1, 1]}
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)|.*visual.*blocks.*\.(qkv|proj)"


@dataclass
class RewardTrainConfig:
    prefs: str = ""  # preference folder (data/prefs.py format)
    out: str = ""  # output folder: the trained model and the run's files
    base: str = ""  # Qwen2.5-VL folder to fine-tune; "" = build the tiny one from code (the embedded default)
    preset: str = "toy"  # with base "": "toy" (TOY_RM sizes, the embedded default) or "test" (reward/tiny.py's)
    lora_rank: int = 0  # 0 = full fine-tuning; > 0 = LoRA adapters of this rank, merged into the weights at export
    lora_alpha: float = 0.0  # 0 = same as the rank
    qk_init: float = 0.0  # built model only: std of the LM's q/k projection init (0 = transformers' default)
    steps: int = 0  # optimiser steps; 0 = run for `seconds` instead
    seconds: float = 270.0  # wall-clock budget of the loop when steps = 0 (data and export come on top)
    lr: float = 2e-3  # AdamW peak learning rate (the paper: 1e-6 for the 7B; a from-scratch tiny model needs more)
    min_lr: float = 0.05  # cosine floor, as a fraction of lr
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    batch_size: int = 32  # pairs per forward (each shown in both orders: 2x this many queries per dimension)
    grad_accum: int = 1  # forwards per optimiser step: a step learns from batch_size x grad_accum pairs per process
    real_share: float = 0.25  # share of each batch drawn from real pairs when auxiliary pairs exist
    aux: str = "auto"  # auxiliary pairs: auto (when the data came from `onereward collect` and base is ""), on, off
    aux_margin: float = 0.05  # oracle-score gap below which an auxiliary pair is not labelled on a dimension
    aux_conditions: int = 240  # training conditions per task that auxiliary pairs are made from (0 = all)
    image_loss: float = 1.0  # toy prior: weight of the image-score head's loss (ImageScoreHead); 0 = off
    answer_loss: float = 1.0  # toy prior: weight of the answer-position read-outs' loss (AnswerReadOut); 0 = off
    cell_loss: float = 10.0  # toy prior: weight of the vision tower's per-token read-out loss (CellReadOut); 0 = off
    prompt_start: int = 250  # toy prior: prompt-dependent labels join from this step (see PHASE1 / PHASE2)
    prompt_steps: int = 150  # toy prior: then this many steps of PROMPT_PHASE (fill / extend text alignment only)
    easy_gap: float = 0.0  # toy prior, phase 1: only auxiliary pairs whose largest score gap is at least this
    bind_steps: int = 0  # toy prior: first this many steps on BINDING pairs alone (see BIND_PHASE); 0 = none
    bind_lr: float = 5e-4  # toy prior: the binding phase's peak lr (it leaves its plateau at 5e-4, not at 2e-3)
    held_out: float = 0.15  # fraction of CONDITIONS held out
    seed: int = 0
    eval_every: int = 0  # held-out accuracy every N steps; 0 = four times per run
    eval_pairs: int = 48  # per family x dimension cell, for the periodic held-out accuracy (eval-reward uses all)
    save_every: int = 200  # checkpoint every N steps (atomic); the last step is always saved
    keep_checkpoints: int = 2
    log_every: int = 10
    threads: int = 1  # torch CPU threads (0 = torch's default). One: these models are too small for a second thread
    # to gain much, and on shared cores OpenMP threads waiting for a descheduled partner made steps several x slower
    image_size: int = 0  # > 0: read images from disk per batch, resized to this square side (real data); 0 = in memory
    mixed_precision: str = "no"  # "no" | "bf16": autocast (and a bf16 frozen base under LoRA)
    gradient_checkpointing: bool = False  # recompute activations in backward (vision tower and language model)
    report_to: str = "tensorboard"  # experiment trackers, comma-separated (onereward.tracking), or "none"

    def check(self) -> RewardTrainConfig:
        if not self.prefs or not self.out:
            raise UserError("give --prefs (a preference folder) and --out (a folder for the reward model)")
        if self.steps < 0 or (self.steps == 0 and self.seconds <= 0):
            raise UserError("give --steps > 0 or --seconds > 0")
        if self.batch_size < 1 or not 0 <= self.real_share <= 1:
            raise UserError(f"--batch-size {self.batch_size} must be >= 1 and real_share in [0, 1]")
        from onereward.tracking import tracker_names

        tracker_names(self.report_to)
        if self.grad_accum < 1:
            raise UserError(f"--grad-accum {self.grad_accum}: give 1 (no accumulation) or more forwards per step")
        if not 0 < self.held_out < 1:
            raise UserError(f"--held-out {self.held_out}: give a fraction of conditions in (0, 1), e.g. 0.15")
        if self.aux not in ("auto", "on", "off"):
            raise UserError(f"--aux {self.aux!r}: choose auto, on or off")
        if self.preset not in ("toy", "test"):
            raise UserError(f"preset {self.preset!r}: choose toy or test")
        if self.bind_steps < 0 or self.bind_lr <= 0:
            raise UserError(f"bind_steps {self.bind_steps} / bind_lr {self.bind_lr}: give steps >= 0 and a lr > 0")
        if self.lora_rank < 0:
            raise UserError(f"--lora-rank {self.lora_rank}: 0 (full fine-tuning) or a positive rank")
        if self.image_size < 0 or (0 < self.image_size < 28):
            raise UserError(f"--image-size {self.image_size}: 0 (the data's own size) or a side >= 28, e.g. 448")
        if self.image_size and self.aux == "on":
            raise UserError("--aux on works on the toy world's in-memory images; drop --image-size or use --aux off")
        if self.mixed_precision not in ("no", "bf16"):
            raise UserError(f"--mixed-precision {self.mixed_precision!r}: choose no or bf16")
        return self


# --- the loss ---


def both_orders_loss(logits_wl: torch.Tensor, logits_lw: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """OneReward's loss on pairs shown in both orders.

    logits_xy (B, D, 2): [Yes, No] logits with x first; logits_yx (B, D, 2): the same pairs with y first.
    labels (B, D): +1 where x is the winner, -1 where y is, 0 where the pair is not labelled on that dimension.
    Per labelled entry: -1/2 [log P(Yes | winner first) + log P(No | loser first)]; returns their mean.
    """
    lp_xy = logits_wl.float().log_softmax(-1)  # (B, D, 2)
    lp_yx = logits_lw.float().log_softmax(-1)  # (B, D, 2)
    x_wins = labels > 0  # (B, D)
    yes_term = torch.where(x_wins, lp_xy[..., 0], lp_yx[..., 0])  # log P(Yes | winner first)
    no_term = torch.where(x_wins, lp_yx[..., 1], lp_xy[..., 1])  # log P(No | loser first)
    per = -0.5 * (yes_term + no_term)  # (B, D)
    mask = (labels != 0).float()  # (B, D)
    return (per * mask).sum() / mask.sum().clamp(min=1)


def two_order_right(logits_xy: torch.Tensor, logits_yx: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B, D) two-order correctness per entry: 1 when both orders answer right, 1/2 for one, 0 where unlabelled.
    Arguments as both_orders_loss's."""
    p_xy = logits_xy.float().softmax(-1)[..., 0]  # (B, D) P(Yes | x first)
    p_yx = logits_yx.float().softmax(-1)[..., 0]
    x_wins, y_wins = (labels > 0).float(), (labels < 0).float()
    return ((p_xy > 0.5) * x_wins + (p_xy < 0.5) * y_wins + (p_yx > 0.5) * y_wins + (p_yx < 0.5) * x_wins) / 2


# --- data ---


@dataclass
class Items:
    """Labelled image pairs: rows of the trainer's image bank, the task, the prompt, per-dimension labels."""

    tasks: np.ndarray  # (K,) int: index into TASK_NAMES
    prompts: list[str | None]
    first: np.ndarray  # (K,) int64
    second: np.ndarray  # (K,) int64
    labels: np.ndarray  # (K, MAX_DIMS) int8: +1 first better, -1 second better, 0 unlabelled

    def __len__(self) -> int:
        return len(self.first)

    def take(self, rows: range | list[int] | np.ndarray) -> Items:
        """These rows, in this order."""
        rows = np.asarray(rows, dtype=np.int64)
        return Items(self.tasks[rows], [self.prompts[i] for i in rows], self.first[rows], self.second[rows],
                     self.labels[rows])  # fmt: skip

    @staticmethod
    def cat(parts: list[Items]) -> Items:
        return Items(
            np.concatenate([p.tasks for p in parts]),
            [x for p in parts for x in p.prompts],
            np.concatenate([p.first for p in parts]),
            np.concatenate([p.second for p in parts]),
            np.concatenate([p.labels for p in parts]),
        )


def load_bank(folder: Path, paths: list[str], image_size: int = 0) -> tuple[np.ndarray | DiskImages, dict[str, int]]:
    """Every image a set of rows names -> the bank ((N, 3, H, W) uint8, or DiskImages with image_size) and
    path -> row."""
    from PIL import Image

    index = {p: i for i, p in enumerate(dict.fromkeys(paths))}
    if image_size:
        return DiskImages(folder, list(index), image_size), index
    arrays = []
    for p in index:
        with Image.open(folder / p) as im:
            arrays.append(np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1))  # (3, H, W)
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:
        raise UserError(f"{folder}: images of several sizes {sorted(sizes)[:3]}; pass --image-size S (e.g. 448) to "
                        "resize them to S x S as they are read")  # fmt: skip
    return np.stack(arrays), index


class DiskImages:
    """A bank that stays on disk: indexing it with rows reads those images, resized to size x size, as uint8."""

    def __init__(self, folder: Path, paths: list[str], size: int):
        self.folder, self.paths, self.size = Path(folder), paths, size
        self.shape = (len(paths), 3, size, size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, rows: torch.Tensor) -> torch.Tensor:
        """rows (B,) -> (B, 3, size, size) uint8."""
        from PIL import Image

        out = []
        for r in rows.tolist():
            with Image.open(self.folder / self.paths[r]) as im:
                im = im.convert("RGB").resize((self.size, self.size), Image.Resampling.BICUBIC)
                out.append(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))  # (3, S, S)
        return torch.from_numpy(np.stack(out))


def real_items(rows: list[dict], index: dict[str, int]) -> Items:
    """Human (or annotator) pairs: winner first, labelled on their one dimension."""
    labels = np.zeros((len(rows), MAX_DIMS), dtype=np.int8)
    first, second, tasks, prompts = [], [], [], []
    for k, r in enumerate(rows):
        w, lo = (r["image_a"], r["image_b"]) if r["winner"] == "a" else (r["image_b"], r["image_a"])
        first.append(index[w])
        second.append(index[lo])
        tasks.append(TASK_NAMES.index(r["task"]))
        prompts.append(r["prompt"] or None)
        labels[k, TASKS[r["task"]].dimensions.index(r["dimension"])] = 1
    return Items(
        np.asarray(tasks, dtype=np.int64), prompts, np.asarray(first, np.int64), np.asarray(second, np.int64), labels
    )


def write_split(out: Path, prefs: Path, held_out: float, seed: int, train_rows, held_rows) -> dict[str, Any]:
    doc = {
        "prefs": str(prefs.resolve()),
        "held_out": held_out,
        "seed": seed,
        "train_conditions": sorted({r["condition"] for r in train_rows}),
        "held_out_conditions": sorted({r["condition"] for r in held_rows}),
        "n_train_pairs": len(train_rows),
        "n_held_out_pairs": len(held_rows),
    }
    (out / SPLIT_FILE).write_text(json.dumps(doc, indent=1) + "\n")
    return doc


# Streams a step is drawn from, (task, dimensions queried or None for all, weight), in two phases (toy prior).
# Phase 1 (steps < prompt_start) queries no prompt-dependent dimension: a from-scratch judge first sits on a
# symmetric plateau (loss 0.693, the same answer in both orders), and labels that only reading the prompt explains
# (text alignment, sibling requests) kept it there longer in our runs (~150 -> 250+ steps). Phase 2 adds them, with
# text-alignment-only steps (a one-dimension step costs ~55% of a four-dimension one) since reading the prompt is
# what such a model learns slowest. Removal and extend without prompt learn fastest, so they get less weight.
PHASE1: tuple[tuple[str, tuple[str, ...] | None, float], ...] = (
    ("fill", ("consistency", "structure", "aesthetics"), 1.0),
    ("text", ("consistency", "structure", "aesthetics"), 1.0),
    ("extend", ("consistency", "structure", "aesthetics"), 1.0),
    ("extend_noprompt", None, 1.0),
    ("removal", None, 1.0),
)
PHASE2: tuple[tuple[str, tuple[str, ...] | None, float], ...] = (
    ("fill", None, 1.0),
    ("text", None, 1.0),
    ("extend", None, 1.0),
    ("extend_noprompt", None, 0.6),
    ("removal", None, 0.6),
    ("fill", ("text_alignment",), 0.5),
    ("text", ("text_alignment",), 0.25),
    ("extend", ("text_alignment",), 0.4),
)
# Between them, `prompt_steps` steps query only the text alignment of fill and extend (sibling requests included),
# with AnswerReadOut's prompt read-out on: it raised the judge's prompt sensitivity 2-3x (docs/REWARD_PRIOR.md).
PROMPT_PHASE: tuple[tuple[str, tuple[str, ...] | None, float], ...] = (
    ("fill", ("text_alignment",), 1.0),
    ("extend", ("text_alignment",), 1.0),
)
# Before everything, `bind_steps` steps of BINDING pairs alone (aux_pairs.py: a condition's ground truth against the
# ground truth of its sibling request -- the object in another shape or colour, other letters -- under either
# prompt), at `bind_lr`. Only reading the prompt against the picture tells their labels apart, and a fresh judge in
# the mix never learns that: bench/probe_binding.py finds it on a plateau (loss 0.693) for 1,000 steps at lr 2e-3,
# and off it by step ~400 at 5e-4 with q/k init 0.1 (`qk_init`); docs/REWARD_PRIOR.md, "the binding plateau".
# Afterwards the binding pairs are in the text-alignment streams with the other sibling items (after phase 1).
BIND_PHASE: tuple[tuple[str, tuple[str, ...] | None, float], ...] = (
    ("fill", ("text_alignment",), 1.0),
    ("text", ("text_alignment",), 1.0),
)


class Sampler:
    """Draws a step's batch from (seed, step), so the data position is the step counter itself: a stream (a task
    and the dimensions to query) by weight, then real and auxiliary items of that task labelled on at least one of
    those dimensions (with replacement).

    With auxiliary pairs (the toy prior) the streams are BIND_PHASE for the first `bind_steps` steps (binding pairs
    alone, no real pair), then PHASE1 for `prompt_start` steps, PROMPT_PHASE for the next `prompt_steps` steps and
    PHASE2 after; auxiliary pairs under sibling requests (aux_pairs.py), binding pairs included, join after phase 1
    (which asks no text alignment).
    Without them (real data, a pretrained base) every task is one stream of equal weight from the start: the paper's
    recipe.
    """

    def __init__(self, real: Items, aux: Items | None, batch_size: int, real_share: float, seed: int,
                 sibling: np.ndarray | None = None, prompt_start: int = 0, strength: np.ndarray | None = None,
                 easy_gap: float = 0.0, prompt_steps: int = 0, binding: np.ndarray | None = None,
                 bind_steps: int = 0):  # fmt: skip
        self.real, self.aux, self.seed = real, aux, seed
        self.batch_size = batch_size
        self.n_real = batch_size if aux is None else max(1, round(batch_size * real_share))
        self.bind_steps = 0
        if aux is None:
            self.prompt_start, self.prompt_end, plain = 0, 0, [(t, None, 1.0) for t in TASK_NAMES]
            self.phases = [self._streams(plain, None), self._streams(plain, None)]
        else:
            binds = np.zeros(len(aux), dtype=bool) if binding is None else binding
            self.bind_steps = bind_steps if binds.any() else 0
            self.prompt_start = self.bind_steps + prompt_start
            self.prompt_end = self.prompt_start + prompt_steps
            keep = np.ones(len(aux), dtype=bool) if sibling is None else ~sibling
            if strength is not None and easy_gap > 0:
                keep &= strength >= easy_gap
            self.phases = [self._streams(PHASE1, keep), self._streams(PHASE2, None), self._streams(PROMPT_PHASE, None),
                           self._streams(BIND_PHASE, binds)]  # fmt: skip
        if not self.phases[1][0]:
            raise UserError("no training pairs: every condition was held out; lower --held-out or add data")

    def _streams(self, spec, keep):
        streams, weights = [], []
        for task, dims, w in spec:
            t = TASK_NAMES.index(task)
            dims = dims or TASKS[task].dimensions
            cols = [TASKS[task].dimensions.index(d) for d in dims]
            real_rows = self._rows(self.real, t, cols)
            if not len(real_rows):
                continue
            aux_rows = self._rows(self.aux, t, cols, keep) if self.aux is not None else np.zeros(0, dtype=np.int64)
            streams.append((task, tuple(dims), cols, real_rows, aux_rows))
            weights.append(w)
        return streams, np.asarray(weights) / max(1e-9, float(np.sum(weights)))

    @staticmethod
    def _rows(items: Items, t: int, cols: list[int], keep: np.ndarray | None = None) -> np.ndarray:
        ok = (items.tasks == t) & (items.labels[:, cols] != 0).any(1)
        return np.nonzero(ok if keep is None else ok & keep)[0]

    def batch(self, step: int, rank: int = 0) -> tuple[str, tuple[str, ...], Items]:
        """(task, dimensions, items) with items.labels cut to those dimensions' columns."""
        g = np.random.default_rng([self.seed, step, rank, 11])
        binding = step < self.bind_steps
        phase = 3 if binding else 0 if step < self.prompt_start else 2 if step < self.prompt_end else 1
        streams, p = self.phases[phase]
        if not streams:
            streams, p = self.phases[1]
        task, dims, cols, real_rows, aux_rows = streams[int(g.choice(len(streams), p=p))]
        n_real = 0 if binding else self.n_real if len(aux_rows) else self.batch_size
        parts = [self._take(self.real, g.choice(real_rows, n_real), cols)] if n_real else []
        if n_real < self.batch_size:
            parts.append(self._take(self.aux, g.choice(aux_rows, self.batch_size - n_real), cols))
        return task, dims, Items.cat(parts)

    @staticmethod
    def _take(items: Items, idx: np.ndarray, cols: list[int]) -> Items:
        labels = np.zeros((len(idx), MAX_DIMS), dtype=np.int8)
        labels[:, : len(cols)] = items.labels[idx][:, cols]
        return Items(items.tasks[idx], [items.prompts[i] for i in idx], items.first[idx], items.second[idx], labels)


def to_images(bank: torch.Tensor | DiskImages, rows: np.ndarray, device) -> torch.Tensor:
    """Rows of the uint8 bank (in memory or DiskImages) -> (B, 3, H, W) float32 in [0, 1]."""
    return bank[torch.as_tensor(rows)].to(device).float().div_(255.0)


# --- the model ---


def build_model(cfg: RewardTrainConfig):
    """(model, processor): the --base folder, or the embedded default's tiny Qwen2.5-VL built from code."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from onereward.reward.processor import ImageOnlyQwen2_5_VLProcessor

    if cfg.base:
        if Path(cfg.base).exists() and not (Path(cfg.base) / "config.json").is_file():
            raise UserError(f"--base {cfg.base}: not a Qwen2.5-VL folder (no config.json)")
        # LoRA under bf16: the frozen base in bf16 (half the memory); full fine-tuning keeps float32 master weights
        dtype = torch.bfloat16 if cfg.mixed_precision == "bf16" and cfg.lora_rank > 0 else torch.float32
        try:
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(cfg.base, dtype=dtype)
        except OSError as e:  # a hub id offline, or a name that is neither a folder nor a model
            raise UserError(f"--base {cfg.base}: cannot load it ({str(e).splitlines()[0]}); give a Qwen2.5-VL "
                            "folder, or a hub id with HF_HUB_OFFLINE=0") from None  # fmt: skip
        return model, ImageOnlyQwen2_5_VLProcessor.from_pretrained(cfg.base)
    from onereward.reward.tiny import QWEN2_VL_CHAT_TEMPLATE, build_image_processor, build_tokenizer, tiny_config

    tok = build_tokenizer()
    config = toy_rm_config(tok) if cfg.preset == "toy" else tiny_config(tok, cfg.preset)
    with torch.random.fork_rng(devices=[]):  # initialisers read the global RNG
        torch.manual_seed(cfg.seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
        if cfg.qk_init > 0:
            for name, p in model.named_parameters():
                if "language_model" in name and (".q_proj.weight" in name or ".k_proj.weight" in name):
                    torch.nn.init.normal_(p, std=cfg.qk_init)
    processor = ImageOnlyQwen2_5_VLProcessor(build_image_processor(), tok, chat_template=QWEN2_VL_CHAT_TEMPLATE)
    return model, processor


def toy_rm_config(tok):
    """reward/tiny.py's "toy" config with TOY_RM's sizes (same token ids, patch 8, merge 2)."""
    from onereward.reward import tiny

    saved = tiny.PRESETS.get("toy")
    try:  # tiny_config reads its sizes from the PRESETS table; lend it ours for the call
        tiny.PRESETS["toy"] = {**saved, **TOY_RM}
        config = tiny.tiny_config(tok, "toy")
    finally:
        tiny.PRESETS["toy"] = saved
    if TOY_ROPE:
        config.text_config.rope_parameters = {**config.text_config.rope_parameters, **TOY_ROPE}
    return config


def add_lora(model, rank: int, alpha: float):
    from peft import LoraConfig, get_peft_model

    model.requires_grad_(False)
    return get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=LORA_TARGETS))


def fast_vision_attention(model) -> None:
    """Run the vision tower's attention as ONE batched call when its windows all have one length (always, for
    same-size images). transformers' non-flash path loops over windows, one tiny attention call each, which dominates
    a tiny model's time on a CPU. Same maths (tests check the logits); only this process's instance is changed."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VLVisionAttention,
        apply_rotary_pos_emb_vision,
    )

    def forward(self, hidden_states, cu_seqlens, position_embeddings=None, max_seqlen=None, **kwargs):
        lengths = cu_seqlens[1:] - cu_seqlens[:-1]
        n, length = hidden_states.shape[0], int(lengths[0])
        if not bool((lengths == length).all()):
            return Qwen2_5_VLVisionAttention.forward(
                self, hidden_states, cu_seqlens, position_embeddings, max_seqlen, **kwargs
            )
        qkv = self.qkv(hidden_states).reshape(n, 3, self.num_heads, -1).permute(1, 0, 2, 3)  # (3, n, heads, hd)
        q, k, v = qkv.unbind(0)
        q, k = apply_rotary_pos_emb_vision(q, k, *position_embeddings)
        w = n // length
        q, k, v = (x.reshape(w, length, self.num_heads, -1).transpose(1, 2) for x in (q, k, v))  # (w, h, len, hd)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scaling)  # (w, heads, len, hd)
        return self.proj(out.transpose(1, 2).reshape(n, -1))  # (n, dim)

    for m in model.modules():
        if isinstance(m, Qwen2_5_VLVisionAttention):
            m.forward = types.MethodType(forward, m)


class PairedVision:
    """Runs the vision tower once per image of a both-orders call (exact: each image is encoded on its own).

    `yes_no_logits(cat[x, y], cat[y, x])` hands the tower 4B images laid out as x0, y0, ..., x(B-1), y(B-1) and then
    y0, x0, ...: the second half is the first with each pair swapped. Inside `with paired:`, the tower encodes only
    the first 2B and the rest is built by swapping, which saves a third of a tiny model's step on a CPU.
    """

    def __init__(self, visual):
        self.on = False
        original = visual.forward

        def forward(hidden_states, grid_thw, **kwargs):
            n = grid_thw.shape[0]
            if not self.on or n % 4:
                return original(hidden_states, grid_thw, **kwargs)
            half, per = n // 2, hidden_states.shape[0] // n  # images of one size: equal patch counts
            out = original(hidden_states[: half * per], grid_thw[:half], **kwargs)
            pooled = out.pooler_output  # (half * tokens, hidden)
            tokens = pooled.shape[0] // half
            pairs = pooled.reshape(half // 2, 2, tokens, -1)  # (B, [x, y], tokens, hidden)
            out.pooler_output = torch.cat([pooled, pairs.flip(1).reshape(half * tokens, -1)])  # then y, x
            return out

        visual.forward = forward

    def __enter__(self):
        self.on = True
        return self

    def __exit__(self, *exc):
        self.on = False


def average_gradients(params: list[torch.Tensor], world: int, bucket_bytes: int = 25 * 2**20) -> None:
    """Every parameter's gradient averaged over the `world` processes, in a few all-reduces: flattened into buckets
    of ~25 MB, as DDP does (one call per tensor would be hundreds per step under LoRA).

    The processes' batches may hold different tasks, so a parameter (a toy-prior head) can have a gradient on one
    process and none on another: one all-reduce of "who has one" first; a gradient missing here counts as zero where
    another process has one, and a parameter no process touched keeps no gradient (the optimiser skips it, as on one
    process).
    """
    if world <= 1:
        return
    import torch.distributed as dist

    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=params[0].device)
    dist.all_reduce(has)
    live = [p for p, n in zip(params, has.tolist(), strict=True) if n > 0]
    for p in live:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    buckets: list[list[torch.Tensor]] = []
    size = 0
    for p in live:
        nbytes = p.grad.numel() * p.grad.element_size()
        if not buckets or p.grad.dtype != buckets[-1][0].grad.dtype or size + nbytes > bucket_bytes:
            buckets.append([])
            size = 0
        buckets[-1].append(p)
        size += nbytes
    for bucket in buckets:
        flat = torch.cat([p.grad.reshape(-1) for p in bucket])  # (sum of numel,)
        dist.all_reduce(flat)
        flat /= world
        for p, part in zip(bucket, flat.split([p.numel() for p in bucket]), strict=True):
            p.grad.copy_(part.view_as(p.grad))


def trainable(model) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


# --- the schedule ---


def lr_factor(cfg: RewardTrainConfig, step: int, elapsed: float) -> float:
    """Linear warm-up, then cosine to min_lr over the run: by steps, or by wall-clock in --seconds mode."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = step / cfg.steps if cfg.steps else elapsed / cfg.seconds
    progress = min(1.0, max(0.0, progress))
    return cfg.min_lr + (1 - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def lr_at(cfg: RewardTrainConfig, step: int, elapsed: float, bind_steps: int = 0) -> float:
    """The learning rate of `step`: `bind_lr` warmed up over the binding phase's first `warmup_steps`, then `lr` under
    lr_factor, its warm-up counted from the end of the binding phase."""
    if step < bind_steps:
        return cfg.bind_lr * min(1.0, (step + 1) / cfg.warmup_steps)
    return cfg.lr * lr_factor(cfg, step - bind_steps, elapsed)


def finished(cfg: RewardTrainConfig, step: int, elapsed: float) -> bool:
    return step >= cfg.steps if cfg.steps else elapsed >= cfg.seconds


# --- the loop ---


def train(cfg: RewardTrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Train a reward model; returns the output folder (a loadable Qwen2.5-VL folder)."""
    from accelerate import Accelerator
    from tqdm import tqdm

    from onereward.data.prefs import load_pairs, split_by_condition
    from onereward.reward.evaluate import held_out_accuracy
    from onereward.reward.model import RewardModel
    from onereward.tracking import RunLogger, accelerator_kwargs

    cfg.check()
    t_setup = time.perf_counter()
    load = os.getloadavg()[0]  # other processes on the cores: step counts in --seconds mode depend on it
    threads = cfg.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    prefs, out = Path(cfg.prefs), Path(cfg.out)
    if resume and checkpoint.latest(out / "checkpoints") is None:
        raise UserError(f"--resume: no complete checkpoint under {out / 'checkpoints'}; start without --resume")
    if not resume and checkpoint.latest(out / "checkpoints") is not None:
        raise UserError(f"{out} already holds checkpoints; pass --resume to continue, or choose another --out")
    if not resume and (out / "config.json").exists():
        raise UserError(f"{out} already holds a model; choose another --out")
    acc = Accelerator(cpu=not torch.cuda.is_available(), **accelerator_kwargs(out, cfg.report_to))
    # bf16 autocast by torch itself: accelerate's mixed_precision is fixed once per process (a notebook or a test
    # that made an Accelerator before could not switch it)
    autocast = torch.autocast(acc.device.type, dtype=torch.bfloat16, enabled=cfg.mixed_precision == "bf16")

    # --- data: split by condition, images in memory, real pairs (+ the toy prior's auxiliary pairs) ---
    rows = load_pairs(prefs)
    train_rows, held_rows = split_by_condition(rows, cfg.held_out, cfg.seed)
    use_aux = cfg.aux == "on" or (
        cfg.aux == "auto" and not cfg.base and not cfg.image_size and (prefs / "candidates.jsonl").is_file()
    )
    if use_aux and not (prefs / "candidates.jsonl").is_file():
        raise UserError(f"--aux on needs {prefs / 'candidates.jsonl'} (data from `onereward collect`)")
    train_conds = {r["condition"] for r in train_rows}
    paths = [r[f] for r in rows for f in ("image_a", "image_b")]
    if use_aux:  # every candidate of a training condition, paired or not
        from onereward.reward.aux_pairs import read_candidates

        paths += [p for c in read_candidates(prefs) if c["condition"] in train_conds for p in c["candidates"]]
    bank_np, index = load_bank(prefs, paths, cfg.image_size)
    real = real_items(train_rows, index)
    aux, sibling, strength, binding = None, None, None, None
    if use_aux:
        from onereward.reward.aux_pairs import build_aux_pool
        from onereward.reward.tiny import MERGE, PATCH

        pool = build_aux_pool(
            prefs, train_conds, index, bank_np, cfg.aux_margin, cfg.seed, progress, cfg.aux_conditions, PATCH * MERGE,
            workers=threads,
        )  # fmt: skip
        held = {r["condition"] for r in held_rows}
        assert not held & set(pool.conditions), "an auxiliary pair came from a held-out condition"
        aux = Items(
            np.asarray([TASK_NAMES.index(t) for t in pool.tasks], dtype=np.int64),
            pool.prompts,
            pool.first,
            pool.second,
            pool.labels,
        )
        sibling, strength, binding = pool.sibling, pool.strength, pool.binding
        bank_np = np.concatenate([bank_np, pool.images]) if len(pool.images) else bank_np
    bank = torch.from_numpy(bank_np) if isinstance(bank_np, np.ndarray) else bank_np  # (N, 3, H, W) uint8

    sampler = Sampler(real, aux, cfg.batch_size * cfg.grad_accum, cfg.real_share, cfg.seed, sibling=sibling,
                      prompt_start=cfg.prompt_start, strength=strength, easy_gap=cfg.easy_gap,
                      prompt_steps=cfg.prompt_steps, binding=binding, bind_steps=cfg.bind_steps)  # fmt: skip
    held_items = real_items(held_rows, index)
    held_tasks = [r["task"] for r in held_rows]
    held_dims = [r["dimension"] for r in held_rows]

    # --- model, optimiser ---
    model, processor = build_model(cfg)
    if cfg.lora_rank > 0:
        model = add_lora(model, cfg.lora_rank, cfg.lora_alpha)
    else:
        model.requires_grad_(True)
    model.to(acc.device).train()  # Qwen2.5-VL has no dropout: train() changes nothing but the flag
    fast_vision_attention(model)
    rm = RewardModel.from_model(model, processor, frozen=False)
    if cfg.gradient_checkpointing:
        rm.enable_gradient_checkpointing()
    paired = PairedVision(rm.vl.model.visual)
    params = list(trainable(model).values())
    prior = None  # the toy prior's read-out heads (reward/prior.py), trained alongside and never exported
    if use_aux:
        from onereward.reward.prior import ToyPrior

        prior = ToyPrior(cfg, rm, prefs, train_conds, index, len(bank_np), pool, real, aux, acc.device)
    heads = prior.heads if prior is not None else torch.nn.ModuleDict()
    params += list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = {"step": 0, "elapsed": 0.0}
    if resume:
        state = restore(out / "checkpoints", model, optimizer, cfg, heads)
    if resume and (out / SPLIT_FILE).is_file():
        before = json.loads((out / SPLIT_FILE).read_text())
        if before["held_out_conditions"] != sorted({r["condition"] for r in held_rows}):
            raise UserError("--resume: the preference data's split changed; resume with the same --prefs and seed")
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        write_split(out, prefs, cfg.held_out, cfg.seed, train_rows, held_rows)
    logger = RunLogger(out, acc, asdict(cfg))
    eval_every = cfg.eval_every or max(1, (cfg.steps or 10**9) // 4)
    eval_seconds = cfg.seconds / 4  # --seconds mode: evaluate every quarter of the budget
    next_eval_time = (math.floor(state["elapsed"] / eval_seconds) + 1) * eval_seconds
    setup_seconds = time.perf_counter() - t_setup

    bar_total = cfg.steps if cfg.steps else int(cfg.seconds)
    bar = tqdm(
        total=bar_total,
        initial=state["step"] if cfg.steps else int(state["elapsed"]),
        desc="train-reward",
        unit="step" if cfg.steps else "s",
        disable=not (progress and acc.is_main_process),
    )
    history = []
    t_last = time.perf_counter()
    while not finished(cfg, state["step"], state["elapsed"]):
        step = state["step"]
        # --- a batch of one task's pairs, from (seed, step); learnt from batch_size pairs at a time (grad_accum) ---
        task, dims, items = sampler.batch(step, acc.process_index)
        all_labels = torch.as_tensor(items.labels[:, : len(dims)])  # (B x accum, D) in {+1, -1, 0}
        n_labelled = int((all_labels != 0).sum())
        for g in optimizer.param_groups:
            g["lr"] = lr_at(cfg, step, state["elapsed"], sampler.bind_steps)
        loss_sum, finite, right, prior_scalars = 0.0, True, 0.0, {}
        for lo in range(0, len(items), cfg.batch_size):
            micro = items.take(range(lo, min(lo + cfg.batch_size, len(items))))
            x = to_images(bank, micro.first, acc.device)  # (B, 3, H, W) in [0, 1]
            y = to_images(bank, micro.second, acc.device)  # (B, 3, H, W)
            labels = all_labels[lo : lo + cfg.batch_size].to(acc.device)  # (B, D)
            b = len(micro)

            # --- both orders in one call: rows 0..B-1 are (x, y), rows B..2B-1 are (y, x) ---
            with paired, autocast:
                logits = rm.yes_no_logits(
                    torch.cat([x, y]), torch.cat([y, x]), task, dims, micro.prompts * 2
                ).float()  # (2B, D, 2)
            # the step's loss is the mean over ALL its labelled entries: this forward's share of it
            share = float((labels != 0).sum()) / max(1, n_labelled)
            loss = both_orders_loss(logits[:b], logits[b:], labels) * share
            objective = loss
            if prior is not None:  # toy prior: what each image holds, read out of the same forward
                prior_loss, prior_scalars = prior.objective(b, task, dims, micro)
                objective = objective + prior_loss / cfg.grad_accum
            acc.backward(objective)
            loss_sum += float(loss.detach())
            finite = finite and bool(torch.isfinite(loss))
            with torch.no_grad():
                right += float(two_order_right(logits[:b], logits[b:], labels).sum())

        # --- update ---
        average_gradients(params, acc.num_processes)  # RewardModel calls the inner modules: no DDP wrapper to do it
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
        if finite and torch.isfinite(grad_norm):
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        now = time.perf_counter()
        state["elapsed"] += now - t_last
        t_last = now
        state["step"] = step + 1

        # --- what users watch ---
        scalars = {
            "loss": loss_sum,
            f"loss/{task}" + ("" if len(dims) == len(TASKS[task].dimensions) else "/" + "+".join(dims)): loss_sum,
            "train_two_order": right / max(1, n_labelled),
            "lr": optimizer.param_groups[0]["lr"],
            "grad_norm": float(grad_norm),
        }
        scalars.update(prior_scalars)
        due = (state["step"] % eval_every == 0) if cfg.steps else state["elapsed"] >= next_eval_time
        if due or finished(cfg, state["step"], state["elapsed"]):
            if not cfg.steps:
                next_eval_time += eval_seconds
            if acc.is_main_process and len(held_rows):
                t_eval = time.perf_counter()
                acc_cells = held_out_accuracy(rm, bank, held_items, held_tasks, held_dims, cfg.eval_pairs, cfg.seed)
                history.append({"step": state["step"], "elapsed": round(state["elapsed"], 1), **acc_cells})
                scalars.update({f"held_out/{k}": v for k, v in acc_cells.items()})
                t_last += time.perf_counter() - t_eval  # evaluation time is not training time
        if state["step"] % cfg.log_every == 0 or "held_out/mean" in scalars:
            logger.scalars(state["step"], scalars)
        if cfg.steps:
            bar.update(1)
        else:
            bar.n = min(bar_total, int(state["elapsed"]))
            bar.refresh()
        bar.set_postfix(loss=f"{loss_sum:.3f}", task=task)
        if state["step"] % cfg.save_every == 0 or finished(cfg, state["step"], state["elapsed"]):
            save_checkpoint(out / "checkpoints", model, optimizer, state, cfg, acc, heads)
    bar.close()
    if acc.num_processes > 1:  # the gradients were averaged by hand above: the replicas must still be one model
        total = torch.stack([p.detach().double().sum() for p in params]).sum().reshape(1)  # (1,)
        sums = acc.gather(total)  # (processes,)
        if not bool((sums == sums[0]).all()):
            raise RuntimeError(
                f"the {acc.num_processes} processes ended with different weights (sums {sums.tolist()})"
            )

    # --- export: merged weights + processor, loadable as Qwen2.5-VL ---
    if acc.is_main_process:
        export(out, model, processor, cfg)
        report = {
            "config": asdict(cfg),
            "steps": state["step"],
            "threads": threads,
            "load_average_at_start": round(load, 2),
            "seconds": {"setup": round(setup_seconds, 1), "train": round(state["elapsed"], 1)},
            "pairs": {
                "train_real": len(real),
                "auxiliary": 0 if aux is None else len(aux),
                "held_out": len(held_rows),
                "images": int(bank.shape[0]),
            },
            "aux_pairs": aux is not None,
            "model": {
                "parameters": sum(p.numel() for p in model.parameters()),
                "toy_sizes": None if cfg.base else TOY_RM,
            },
            "held_out_history": history,
        }
        (out / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    acc.wait_for_everyone()
    acc.end_training()
    return out


# --- checkpoints and export ---


def save_checkpoint(root: Path, model, optimizer, state: dict, cfg: RewardTrainConfig, acc, heads=None) -> None:
    acc.wait_for_everyone()
    if acc.is_main_process:
        parts = {
            "model": {n: p.detach() for n, p in trainable(model).items()},
            "optimizer": optimizer.state_dict(),
            "rng": checkpoint.rng_state(),
        }
        if heads is not None and len(heads):
            parts["heads"] = {n: p.detach() for n, p in heads.named_parameters()}
        checkpoint.save(root, state["step"], parts, {"config": asdict(cfg), **state}, keep=cfg.keep_checkpoints)
    acc.wait_for_everyone()


def restore(root: Path, model, optimizer, cfg: RewardTrainConfig, heads=None) -> dict:
    path = checkpoint.latest(root)
    parts, meta = checkpoint.load(path)
    saved = meta["config"]
    same = ("lora_rank", "seed", "batch_size", "grad_accum", "base", "held_out", "steps", "seconds", "aux")
    same += ("image_loss", "answer_loss", "cell_loss")
    defaults = RewardTrainConfig()  # a field newer than the checkpoint had its default then
    diff = [k for k in same if saved.get(k, getattr(defaults, k)) != getattr(cfg, k)]
    if diff:
        raise UserError(f"--resume: {path} was made with other {', '.join(diff)}; resume with the same options")
    named = trainable(model)
    missing = set(named) - set(parts["model"])
    if missing:
        raise UserError(f"--resume: {path} lacks {len(missing)} trainable tensors (e.g. {sorted(missing)[0]})")
    with torch.no_grad():
        for n, p in named.items():
            p.copy_(parts["model"][n])
        if heads is not None:
            for n, p in heads.named_parameters():
                p.copy_(parts["heads"][n])
    optimizer.load_state_dict(parts["optimizer"])
    checkpoint.set_rng_state(parts["rng"])
    return {"step": int(meta["step"]), "elapsed": float(meta["elapsed"])}


def export(out: Path, model, processor, cfg: RewardTrainConfig) -> None:
    """Write the model (LoRA merged into the weights) and its processor files into `out`."""
    if cfg.lora_rank > 0:
        model = model.merge_and_unload()
    model.save_pretrained(out)
    # the files of Qwen/Qwen2.5-VL-7B-Instruct (as reward/tiny.py writes them): tokenizer, preprocessor_config.json,
    # chat_template.json; ImageOnlyQwen2_5_VLProcessor.from_pretrained reads them back
    processor.tokenizer.save_pretrained(out)
    processor.image_processor.save_pretrained(out)
    (out / "chat_template.json").write_text(json.dumps({"chat_template": processor.chat_template}, indent=2) + "\n")
    if cfg.image_size:  # the judge sees what it was trained on: RewardModel resizes its inputs to this size
        from onereward.reward.model import JUDGE_FILE

        (out / JUDGE_FILE).write_text(json.dumps({"image_size": cfg.image_size}) + "\n")
