"""Probe: can the toy judge learn to read the prompt against the picture? (docs/REWARD_PRIOR.md, "the binding
plateau")

Object-fill text alignment asks which of two images draws the object the prompt names. The pairs here isolate that:
a fill condition's scene with the requested object drawn as its own shape, against the same scene with the object
drawn as another shape (same colour, place and size); the query's prompt names one of the two shapes (at random), and
the image drawn that way is the winner. Nothing but the prompt tells the two labels apart, so a judge that does not
read the prompt against the image stays at 50%. A fresh embedded-default judge (reward.train.TOY_RM) is trained on
such pairs alone with OneReward's both-orders loss (batch 32, AdamW, 50 warm-up steps, 2 threads) and tested on
pairs of held-out "eval" conditions, two-order.

    .venv/bin/python bench/probe_binding.py [--lr 5e-4] [--qk-init 0] [--steps 1200] [--save DIR]

Prints the training loss and the held-out accuracy every 200 steps; the last line is
`held-out binding accuracy at lr L, qk_init Q, S steps: A` (about 3 min per 1,200 steps on 2 cores).
"""

from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from onereward.reward.model import RewardModel  # noqa: E402
from onereward.reward.train import (  # noqa: E402
    RewardTrainConfig,
    both_orders_loss,
    build_model,
    fast_vision_attention,
    two_order_right,
)
from onereward.toyworld import make_conditions  # noqa: E402
from onereward.toyworld.scene import SHAPES, render  # noqa: E402

DIMS = ["text_alignment"]


def shape_pairs(n: int, split: str) -> list[tuple[np.ndarray, np.ndarray, str, str]]:
    """(as requested, as another shape, the request, the other request) composites of n fill conditions."""
    rng = np.random.default_rng(0)
    out = []
    for c in make_conditions("fill", n, seed=0, size=64, split=split):
        scene, oid = c.meta["scene"], c.meta["target_object"]
        obj = next(o for o in scene["objects"] if o["id"] == oid)
        other = [k for k in SHAPES if k != obj["shape"]][int(rng.integers(2))]
        swapped = copy.deepcopy(scene)
        next(o for o in swapped["objects"] if o["id"] == oid)["shape"] = other
        m = c.mask[..., None]
        a = c.source * (1 - m) + c.target * m  # (64, 64, 3)
        b = c.source * (1 - m) + render(swapped)[0] * m
        out.append((a.astype(np.float32), b.astype(np.float32), c.prompt, f"{obj['color']} {other}"))
    return out


def batch(pairs, idx, other_prompt):
    """(first (B, 3, H, W), second, prompts, labels (B, 1)): +1 where the first image is the one the prompt names."""
    first = torch.from_numpy(np.stack([pairs[i][0] for i in idx])).permute(0, 3, 1, 2)
    second = torch.from_numpy(np.stack([pairs[i][1] for i in idx])).permute(0, 3, 1, 2)
    prompts = [pairs[i][3] if o else pairs[i][2] for i, o in zip(idx, other_prompt, strict=True)]
    labels = torch.tensor([[-1.0] if o else [1.0] for o in other_prompt])
    return first, second, prompts, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--qk-init", type=float, default=0.0, help="std of the LM's q/k init (0: transformers' default)")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--save", default="", help="write the trained judge here (a Qwen2.5-VL folder)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    train, held = shape_pairs(1500, "train"), shape_pairs(200, "eval")
    model, processor = build_model(RewardTrainConfig(qk_init=args.qk_init))
    model.requires_grad_(True).train()
    fast_vision_attention(model)
    judge = RewardModel.from_model(model, processor, frozen=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)

    def logits(first, second, prompts):
        return judge.yes_no_logits(first, second, "fill", DIMS, prompts)

    def held_out() -> float:
        model.eval()
        idx = list(range(len(held)))
        first, second, prompts, labels = batch(held, idx, [i % 2 == 1 for i in idx])
        with torch.no_grad():
            right = two_order_right(logits(first, second, prompts), logits(second, first, prompts), labels)
        model.train()
        return right.mean().item()

    rng, losses, t0, acc = np.random.default_rng(1), [], time.perf_counter(), 0.0
    for step in range(args.steps + 1):
        if step % 200 == 0 or step == args.steps:
            acc = held_out()
            loss = np.mean(losses[-100:]) if losses else float("nan")
            print(f"step {step}: loss {loss:.3f}, held-out {acc:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        if step == args.steps:
            break
        for g in optimizer.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / 50)
        first, second, prompts, labels = batch(train, rng.integers(0, len(train), 32), rng.random(32) < 0.5)
        loss = both_orders_loss(logits(first, second, prompts), logits(second, first, prompts), labels)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    if args.save:
        model.save_pretrained(args.save)
        processor.save_pretrained(args.save)
    print(f"held-out binding accuracy at lr {args.lr:g}, qk_init {args.qk_init:g}, {args.steps} steps: {acc:.3f}")


if __name__ == "__main__":
    main()
