"""Peak memory and step time of OneReward RL: standard vs dynamic vs LoRA, with and without the reference cache,
with AdamW and with the memory-saving full fine-tuning recipe (Adafactor stepped inside backward, rl/optim.py).

Each variant runs `onereward train` in its own process (so peaks do not mix); peak memory is that child's max RSS
(wait4), "loop" memory its max RSS by the time the last step is logged (/proc VmHWM: set-up and the training loop,
without the final checkpoint and exports); step times come from the run's log.jsonl (mean over steps after the
first, which pays one-off costs).
The policy is a FLUX-Fill-layout transformer large enough that model copies, not the Python runtime, dominate memory
("bench": ~71M parameters; "bench_large": ~283M; "bench_xl": ~535M); the reward model is the tiny test one. CPU only;
numbers are relative, measured in one run (or the medians of --repeat runs: a peak varies by ~100-200 MB run to run).
The first line gives the size of one fp32 copy of the policy, to read peaks in copies. Each run writes one checkpoint
and the exports (up to ~6 policy copies on disk), deleted before the next run unless --keep.

    python bench/rl_memory.py [--steps 6] [--preset bench|bench_large|bench_xl] [--variants A,B] [--repeat N]
                              [--checkpointing] [--keep DIR]

--checkpointing runs every variant with gradient checkpointing (`model.gradient_checkpointing=true`, as the
flux-fill-dev preset does): activations are recomputed in backward instead of kept, which shrinks what is not a
model copy.

Last line (one line; the parts whose variants ran): `dynamic/standard peak memory: X (training loop: X');
dynamic/standard peak memory (adafactor, fused backward): Y (training loop: Y'); lora/standard: Z; cached/uncached
step time: W`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPLIT = ("time/reference", "time/policy_rollout", "time/grad_step", "time/reward")
VARIANTS = ("standard", "dynamic", "lora", "standard+cache", "standard+adafactor", "dynamic+adafactor")


def run(args: list[str], log: Path | None = None, steps: int = 0) -> tuple[float, float | None]:
    """Run `onereward ARGS` in a child process; returns (its peak RSS, its peak RSS by the time `log` shows step
    `steps`) in MB. The second is the peak up to the end of the training loop, before the final checkpoint and the
    exports, read from /proc (None where there is no /proc)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a full pipe would stall the child while we poll
        proc = subprocess.Popen(
            [sys.executable, "-m", "onereward.cli", *args], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
        loop_mb = None
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if log is not None and loop_mb is None and _logged(log, steps):
                loop_mb = _high_water_mb(proc.pid)
            time.sleep(0.05)
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"onereward {' '.join(args[:1])} failed:\n{err.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, loop_mb


def _logged(log: Path, step: int) -> bool:
    """The trainer has logged `step` (it logs each step at its end, before checkpointing)."""
    return log.is_file() and any(line.startswith(f'{{"step": {step},') for line in log.read_text().splitlines())


def _high_water_mb(pid: int) -> float | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmHWM:")), None)


def step_times(run_dir: Path) -> dict[str, float]:
    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()][1:]
    return {k: sum(r[k] for r in rows) / len(rows) for k in ("time/step", *SPLIT)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6)
    sizes = ["bench", "bench_large", "bench_xl"]
    ap.add_argument("--preset", default="bench", choices=sizes, help="the policy's size")
    ap.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated subset (the AdamW full fine-tuning ones hold ~6 fp32 copies: ~14 GB with bench_xl)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="run each variant N times: medians, and the peaks' range")
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder (else they are deleted)")
    ap.add_argument("--checkpointing", action="store_true", help="gradient checkpointing in every variant")
    a = ap.parse_args()
    chosen = a.variants.split(",")
    if a.repeat < 1:
        ap.error("--repeat must be >= 1")
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        ap.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")

    from safetensors import safe_open

    from onereward.models.tiny import build_tiny_flux_fill
    from onereward.reward.tiny import build_tiny_qwen_vl

    root = a.keep or Path(tempfile.mkdtemp(prefix="rl_memory-"))
    policy = build_tiny_flux_fill(root / "policy", preset=a.preset, overwrite=True)
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
        f"log.save_every={a.steps + 1}",  # only the final checkpoint (always written) and one kept: ~5 GB at 283M
        "--set",
        "log.keep_checkpoints=1",
        "--set",
        "train.lr=1e-5",
        "--set",
        f"model.gradient_checkpointing={str(a.checkpointing).lower()}",
    ]
    lean = ["--set", "train.optimizer=adafactor", "--set", "train.fused_backward=true", "--set", "train.grad_clip=0"]
    variants = {
        "standard": [],
        "dynamic": ["--set", "train.algorithm=dynamic"],
        "lora": ["--set", "model.lora_rank=8"],
        "standard+cache": ["--set", f"data.ref_cache={root / 'refs'}"],
        "standard+adafactor": lean,  # Adafactor, fused backward (the memory-saving full fine-tuning recipe)
        "dynamic+adafactor": ["--set", "train.algorithm=dynamic", *lean],
    }
    runs: dict[str, list[dict]] = {name: [] for name in chosen}
    try:
        with safe_open(policy / "transformer" / "diffusion_pytorch_model.safetensors", "pt") as f:
            n = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
        if "standard+cache" in chosen:
            run(["refs", "--out", str(root / "refs"), *common])
        for i in range(a.repeat):  # variant after variant, then again: slow drift in the machine's load is shared
            for name in chosen:
                out = root / "runs" / f"{name}-{i}"
                args = ["train", *common, *variants[name], "--set", f"log.out={out}"]
                peak, loop = run(args, out / "log.jsonl", a.steps)
                runs[name].append({"peak_mb": peak, "loop_mb": loop, **step_times(out)})
                if a.keep is None:
                    shutil.rmtree(out)  # one checkpoint and the exports: up to ~6 policy copies (~7 GB at 283M)
    finally:
        if a.keep is None:
            shutil.rmtree(root, ignore_errors=True)  # also when a run fails: the folder holds GBs
    results = {name: summary(rs) for name, rs in runs.items()}
    print(
        f"policy ({a.preset}): {n / 1e6:.1f}M parameters, one fp32 copy = {n * 4 / 2**20:.0f} MB; runs: {a.repeat}"
        + ("; gradient checkpointing" if a.checkpointing else "")
    )
    print(
        f"{'variant':20s}{'peak MB':>9s}{'range':>12s}{'loop MB':>9s}{'step s':>9s}"
        + "".join(f"{k.split('/')[1]:>16s}" for k in SPLIT)
    )
    for name, r in results.items():
        spread = f"{r['peak_lo']:.0f}-{r['peak_hi']:.0f}"
        loop = f"{r['loop_mb']:9.0f}" if r["loop_mb"] else f"{'n/a':>9s}"
        print(
            f"{name:20s}{r['peak_mb']:9.0f}{spread:>12s}{loop}{r['time/step']:9.3f}"
            + "".join(f"{r[k]:16.3f}" for k in SPLIT)
        )

    def ratio(num: str, den: str) -> str:
        x, y = results[num], results[den]
        loop = f"{x['loop_mb'] / y['loop_mb']:.2f}" if x["loop_mb"] and y["loop_mb"] else "n/a"
        return f"{x['peak_mb'] / y['peak_mb']:.2f} (training loop: {loop})"

    parts = []
    if {"dynamic", "standard"} <= results.keys():
        parts.append(f"dynamic/standard peak memory: {ratio('dynamic', 'standard')}")
    if {"dynamic+adafactor", "standard+adafactor"} <= results.keys():
        parts.append(
            "dynamic/standard peak memory (adafactor, fused backward): "
            + ratio("dynamic+adafactor", "standard+adafactor")
        )
    if {"lora", "standard"} <= results.keys():
        parts.append(f"lora/standard: {results['lora']['peak_mb'] / results['standard']['peak_mb']:.2f}")
    if {"standard+cache", "standard"} <= results.keys():
        cached = results["standard+cache"]["time/step"] / results["standard"]["time/step"]
        parts.append(f"cached/uncached step time: {cached:.2f}")
    print("; ".join(parts))


def summary(rs: list[dict]) -> dict:
    """Medians over repeated runs of one variant (step times: of their per-run means), and the peaks' range."""
    loops = [r["loop_mb"] for r in rs]
    return {
        **{k: statistics.median(r[k] for r in rs) for k in ("peak_mb", "time/step", *SPLIT)},
        "loop_mb": statistics.median(loops) if all(loops) else None,
        "peak_lo": min(r["peak_mb"] for r in rs),
        "peak_hi": max(r["peak_mb"] for r in rs),
    }


if __name__ == "__main__":
    main()
