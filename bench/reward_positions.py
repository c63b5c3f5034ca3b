"""Benchmark: the reward model's mRoPE positions, per distinct row layout (ours) against HF's loop over every row.

`RewardModel.p_yes` builds the full sequences' mRoPE positions before its prefix pass. transformers'
`get_rope_index` loops over the rows in python; a toy training batch has N = 2 orders x 32 pairs x 4 dimensions =
256 rows but only a handful of layouts (token types, padding, grids), and `reward.model.rope_positions` asks HF once
per layout. This measures, in one run on one machine, alternating the two ways:
    the positions alone, per layout against per row (the same tensor either way, checked);
    one whole forward + backward of `yes_no_logits` on the toy batch, with either.

    .venv/bin/python bench/reward_positions.py [--pairs 64] [--repeats 7]

The last line is `positions per layout / per row: R (whole call: C)`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import onereward.reward.model as reward_model  # noqa: E402
from onereward.reward.model import RewardModel, rope_positions  # noqa: E402
from onereward.reward.tiny import build_tiny_qwen_vl  # noqa: E402

TASK = "fill"
DIMS = ["text_alignment", "consistency", "structure", "aesthetics"]
PROMPTS = ["red circle", "blue square", "yellow triangle", 'the words "AB"', 'the words "XYZ"', "green disc"]


def per_row(vlm, ids, types, grid, mask) -> torch.Tensor:
    """HF's own loop over every row (what the prefix path did before)."""
    return vlm.get_rope_index(ids, mm_token_type_ids=types, image_grid_thw=grid, attention_mask=mask)[0]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=64, help="rows of image pairs per call (2 orders x 32 pairs)")
    ap.add_argument("--size", type=int, default=64, help="image side (the toy world's 64: 16 tokens per image)")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        rm = RewardModel.from_pretrained(build_tiny_qwen_vl(tmp, preset="toy"), device="cpu", frozen=False)
    rm.model.train()
    vlm, b = rm.vl.model, args.pairs
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(b)]
    q = rm.queries(TASK, DIMS, prompts, rm.spec.tokens_per_image(args.size, args.size))
    ids, mask, types = q.right_padded()  # (N, L)
    grid = torch.tensor([rm.spec.grid(args.size, args.size)] * 2 * ids.shape[0])  # (2N, 3)
    assert torch.equal(rope_positions(vlm, ids, types, grid, mask), per_row(vlm, ids, types, grid, mask))
    first, second = torch.rand(b, 3, args.size, args.size), torch.rand(b, 3, args.size, args.size)

    def call() -> None:
        rm.yes_no_logits(first, second, TASK, DIMS, prompts).float().sum().backward()

    ways = {"per layout": rope_positions, "per row": per_row}
    pos_t: dict[str, list[float]] = {k: [] for k in ways}
    call_t: dict[str, list[float]] = {k: [] for k in ways}
    for i in range(args.repeats + 1):  # the first round warms up
        for name, fn in ways.items():
            t0 = time.perf_counter()
            fn(vlm, ids, types, grid, mask)
            t1 = time.perf_counter()
            reward_model.rope_positions = fn  # what _prefix_logits calls
            try:
                call()
            finally:
                reward_model.rope_positions = rope_positions
            t2 = time.perf_counter()
            if i:
                pos_t[name].append(t1 - t0)
                call_t[name].append(t2 - t1)
    pos = {k: 1000 * statistics.median(v) for k, v in pos_t.items()}
    whole = {k: 1000 * statistics.median(v) for k, v in call_t.items()}
    print(f"rows per call: {ids.shape[0]} ({b} pairs x {len(DIMS)} dimensions), threads {torch.get_num_threads()}")
    print("| way | positions (ms) | forward + backward (ms) |")
    print("|---|---|---|")
    for k in ways:
        print(f"| {k} | {pos[k]:.1f} | {whole[k]:.1f} |")
    print(
        f"positions per layout / per row: {pos['per layout'] / pos['per row']:.3f} "
        f"(whole call: {whole['per layout'] / whole['per row']:.2f})"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
