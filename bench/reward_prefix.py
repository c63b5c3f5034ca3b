"""Benchmark: what scoring all 4 dimensions of a task costs against scoring 1, with and without prefix reuse.

OneReward queries the reward model once per evaluation dimension (up to 4 per task). The queries of a pair share
the two images, which dominate the sequence for real images (the 7B at 448x448: 2 x 256 image tokens against ~60
text tokens), so `RewardModel.p_yes` runs the vision tower and the LM over the images once and only the D text
suffixes per dimension (`naive=True` runs every full sequence). This measures, in one run on one machine:
    cost(D=4) / cost(D=1) for prefix reuse and for the naive path, forward only and forward+backward (to `first`).
The images are 224x224 with the tiny models' patch 8 / merge 2: 196 tokens per image, 392 per pair, against ~20
prefix and ~30-40 suffix text tokens, so image tokens dominate as they do for real images.

    .venv/bin/python bench/reward_prefix.py [--preset toy] [--size 224] [--pairs 2] [--repeats 7]

The last line is `prefix 4/1 cost ratio: R (naive: N)`, forward+backward (the RL step's cost).
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

from onereward.reward.model import RewardModel  # noqa: E402
from onereward.reward.tiny import build_tiny_qwen_vl  # noqa: E402

TASK = "fill"
DIMS = {1: ["consistency"], 4: ["text_alignment", "consistency", "structure", "aesthetics"]}


def time_once(rm: RewardModel, first, second, d: int, naive: bool, backward: bool) -> float:
    """Seconds of one p_yes call with D dimensions (and its backward to `first`)."""
    x = first.detach().requires_grad_(backward)
    prompts = ["red circle on a grey striped background"] * first.shape[0]
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)  # GPU kernels run asynchronously
    sync()
    t0 = time.perf_counter()
    with torch.set_grad_enabled(backward):
        p = rm.p_yes(x, second, TASK, DIMS[d], prompts, naive=naive)  # (B, D)
        if backward:
            p.sum().backward()
    sync()
    return time.perf_counter() - t0


def time_pair(rm: RewardModel, first, second, naive: bool, backward: bool, repeats: int) -> dict[int, float]:
    """Median seconds for D=1 and D=4, measured alternately (so load from other processes hits both alike),
    after one warm-up call of each."""
    times: dict[int, list[float]] = {1: [], 4: []}
    for i in range(repeats + 1):
        for d in (1, 4):
            t = time_once(rm, first, second, d, naive, backward)
            if i:
                times[d].append(t)
    return {d: statistics.median(ts) for d, ts in times.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="toy", choices=["test", "toy"])
    ap.add_argument("--size", type=int, default=224, help="image side in pixels (a multiple of 16)")
    ap.add_argument("--pairs", type=int, default=2, help="B, image pairs per call")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        rm = RewardModel.from_pretrained(build_tiny_qwen_vl(tmp, preset=args.preset))
    g = torch.Generator().manual_seed(0)
    first = torch.rand(args.pairs, 3, args.size, args.size, generator=g)  # (B, 3, H, W) in [0, 1]
    second = torch.rand(args.pairs, 3, args.size, args.size, generator=g)  # (B, 3, H, W) in [0, 1]
    n_img = rm.spec.tokens_per_image(args.size, args.size)
    print(
        f"preset {args.preset}, B={args.pairs} pairs of {args.size}x{args.size} images, {n_img} tokens/image, "
        f"{args.threads} threads, torch {torch.__version__}, {sys.platform}"
    )

    cost: dict[tuple[str, str, int], float] = {}
    print(f"{'path':<8}{'pass':<14}{'D=1 (ms)':>10}{'D=4 (ms)':>10}{'4/1':>7}")
    for backward, label in ((False, "forward"), (True, "fwd+bwd")):
        for naive, path in ((False, "prefix"), (True, "naive")):
            for d, t in time_pair(rm, first, second, naive, backward, args.repeats).items():
                cost[path, label, d] = t
            r = cost[path, label, 4] / cost[path, label, 1]
            print(
                f"{path:<8}{label:<14}{1e3 * cost[path, label, 1]:>10.1f}{1e3 * cost[path, label, 4]:>10.1f}{r:>7.2f}"
            )
    ratio = cost["prefix", "fwd+bwd", 4] / cost["prefix", "fwd+bwd", 1]
    naive_ratio = cost["naive", "fwd+bwd", 4] / cost["naive", "fwd+bwd", 1]
    print(f"prefix 4/1 cost ratio: {ratio:.2f} (naive: {naive_ratio:.2f})")


if __name__ == "__main__":
    main()
