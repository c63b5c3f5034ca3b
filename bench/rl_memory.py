"""Peak memory and step time of OneReward RL: standard vs dynamic vs LoRA, with and without the reference cache.

Each variant runs `onereward train` in its own process (so peaks do not mix); peak memory is that child's max RSS
(wait4), step times come from the run's log.jsonl (mean over steps after the first, which pays one-off costs).
The policy is a ~71M-parameter FLUX-Fill-layout transformer ("bench" preset) so that model copies, not the Python
runtime, dominate memory; the reward model is the tiny test one. CPU only; numbers are relative, measured in one run.

    python bench/rl_memory.py [--steps 6] [--keep DIR]

Last line: `dynamic/standard peak memory: X; lora/standard: Y; cached/uncached step time: Z`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SPLIT = ("time/reference", "time/policy_rollout", "time/grad_step", "time/reward")


def run(args: list[str]) -> float:
    """Run `onereward ARGS` in a child process; returns its peak RSS in MB."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "onereward.cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"onereward {' '.join(args[:1])} failed:\n{proc.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024


def step_times(run_dir: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()][1:]
    return {k: sum(r[k] for r in rows) / len(rows) for k in ("time/step", *SPLIT)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    a = ap.parse_args()

    from onereward.models.tiny import build_tiny_flux_fill
    from onereward.reward.tiny import build_tiny_qwen_vl

    root = a.keep or Path(tempfile.mkdtemp(prefix="rl_memory-"))
    policy = build_tiny_flux_fill(root / "policy", preset="bench", overwrite=True)
    reward = build_tiny_qwen_vl(root / "reward", preset="test", overwrite=True)
    common = [
        "--set",
        f"model.policy={policy}",
        "--set",
        f"model.reward={reward}",
        "--set",
        "model.reward_accuracy=",
        "--set",
        f"train.steps={a.steps}",
        "--set",
        "train.batch_size=4",
        "--set",
        "sampling.steps=8",
        "--set",
        "data.pool_size=4",
        "--set",
        "log.eval_every=0",
        "--set",
        "log.image_every=0",
        "--set",
        f"log.save_every={a.steps}",
        "--set",
        "train.lr=1e-5",
    ]
    variants = {
        "standard": [],
        "dynamic": ["--set", "train.algorithm=dynamic"],
        "lora": ["--set", "model.lora_rank=8"],
        "standard+cache": ["--set", f"data.ref_cache={root / 'refs'}"],
    }
    run(["refs", "--out", str(root / "refs"), *common])
    results = {}
    for name, extra in variants.items():
        out = root / "runs" / name
        peak = run(["train", *common, *extra, "--set", f"log.out={out}"])
        results[name] = {"peak_mb": peak, **step_times(out)}

    print(f"{'variant':16s}{'peak MB':>9s}{'step s':>9s}" + "".join(f"{k.split('/')[1]:>16s}" for k in SPLIT))
    for name, r in results.items():
        print(f"{name:16s}{r['peak_mb']:9.0f}{r['time/step']:9.3f}" + "".join(f"{r[k]:16.3f}" for k in SPLIT))
    std = results["standard"]
    print(
        f"dynamic/standard peak memory: {results['dynamic']['peak_mb'] / std['peak_mb']:.2f}; "
        f"lora/standard: {results['lora']['peak_mb'] / std['peak_mb']:.2f}; "
        f"cached/uncached step time: {results['standard+cache']['time/step'] / std['time/step']:.2f}"
    )


if __name__ == "__main__":
    main()
