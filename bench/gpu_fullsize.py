"""Full-size OneReward on one GPU: FLUX.1-Fill-dev + Qwen2.5-VL-7B architectures with random bf16 weights.

Builds the real FLUX.1-Fill-dev transformer / VAE / CLIP-L / T5-XXL configs and a Qwen2.5-VL-7B reward model with
random weights (no download: nothing outside the machine is reachable) and measures, section by section:
  sample  full sampling with the official settings' true CFG (timed at --sample-steps; seconds per step printed)
  reward  P(Yes) latency for 1 and 4 dimensions, with prefix reuse and the naive way, forward and forward+backward
  lora    a few LoRA RL steps of the real trainer per size: standard, dynamic, standard + reference cache
  full    a few full fine-tuning RL steps (Adafactor, fused backward): standard against dynamic, at the first size
printing peak GPU memory and the step-time split (reference rollout, policy rollout, grad step, reward). Random
weights give real costs, not results. A section that fails (out of memory, say) prints its error and the rest go on;
`--json` keeps every number measured so far.

    python bench/gpu_fullsize.py [--json out.json]   # on a GPU: 512 and 1024 px
    python bench/gpu_fullsize.py --tiny              # the same code on CPU, tiny configs (the test suite runs this)
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

VARIANTS = {"standard": [], "dynamic": ["train.algorithm=dynamic"], "standard+cache": ["cache"]}
# Full fine-tuning of the 12B transformer: Adafactor (factored second moments) with the step fused into backward
# (no gradient buffer), so that the standard algorithm's three transformer copies fit on one 141 GB card.
FULL = ["model.lora_rank=0", "train.optimizer=adafactor", "train.fused_backward=true", "train.grad_clip=0"]
SPLIT = ("time/reference", "time/policy_rollout", "time/grad_step", "time/reward")
REWARD_DIMS = 4  # fill's four dimensions, against one


def build_models(tiny: bool, device: str, bf16: bool = True):
    """(FillModel, RewardModel) at full size with random bf16 weights, or the tiny test ones (bf16 or float32)."""
    from transformers import Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from onereward.models import tiny as flux_tiny
    from onereward.models.fill import FillModel
    from onereward.reward import tiny as rm_tiny
    from onereward.reward.model import RewardModel
    from onereward.reward.processor import ImageOnlyQwen2_5_VLProcessor

    tok = rm_tiny.build_tokenizer()
    if tiny:
        dtype = torch.bfloat16 if bf16 else torch.float32
        pipe = flux_tiny.build_tiny_pipeline("test").to(dtype=dtype)
        rm_cfg, image_processor = rm_tiny.tiny_config(tok, "test"), rm_tiny.build_image_processor()
    else:
        dtype = torch.bfloat16
        pipe = flux_tiny.build_fullsize_pipeline(device, dtype)
        rm_cfg, image_processor = rm_tiny.qwen25_vl_7b_config(tok), Qwen2VLImageProcessorPil()  # patch 14, merge 2
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    with torch.device(device):
        vlm = Qwen2_5_VLForConditionalGeneration(rm_cfg)
    torch.set_default_dtype(previous)
    proc = ImageOnlyQwen2_5_VLProcessor(image_processor, tok, rm_tiny.QWEN2_VL_CHAT_TEMPLATE)
    return FillModel(pipe.to(device)), RewardModel(vlm.eval(), proc)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def reset_peak() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def time_sampling(fill, pool, size: int, steps: int) -> dict:
    """Seconds of one full sample (batch 1) with the official true CFG, after a 1-step warm-up."""
    from onereward.models.fill import OFFICIAL_TRUE_CFG

    b = pool.batch(pool.ids()[:1])
    g = torch.Generator().manual_seed(0)
    fill.sample(b.sources, b.masks, b.prompts, steps=1, generator=g)
    reset_peak()
    sync()
    t0 = time.perf_counter()
    fill.sample(b.sources, b.masks, b.prompts, steps=steps, true_cfg=OFFICIAL_TRUE_CFG, generator=g)
    sync()
    seconds = time.perf_counter() - t0
    return {"steps": steps, "true_cfg": OFFICIAL_TRUE_CFG, "seconds": seconds, "s_per_step": seconds / steps}


def time_reward(reward, size: int, repeats: int) -> dict:
    """P(Yes) latency for 1 and 4 dimensions of one pair, prefix reuse and naive, forward and forward+backward
    (bench/reward_prefix.py's timing, median of `repeats` after a warm-up)."""
    from reward_prefix import time_pair  # bench/ is on sys.path when this file runs as a script

    g = torch.Generator().manual_seed(0)
    dev, dtype = reward.model.device, reward.model.dtype
    first = torch.rand(1, 3, size, size, generator=g).to(dev, dtype)  # (1, 3, S, S) in [0, 1]
    second = torch.rand(1, 3, size, size, generator=g).to(dev, dtype)  # (1, 3, S, S) in [0, 1]
    out = {"image_tokens": reward.spec.tokens_per_image(size, size)}
    for backward, label in ((False, "fwd"), (True, "fwd+bwd")):
        for naive, path in ((False, "prefix"), (True, "naive")):
            t = time_pair(reward, first, second, naive, backward, repeats)
            out[f"{path}/{label}"] = {"d1_s": t[1], "d4_s": t[REWARD_DIMS], "ratio_4_1": t[REWARD_DIMS] / t[1]}
    return out


def run_variant(
    fill, reward, pool, size: int, variant: str, steps: int, root: Path, tiny: bool, full: bool, bf16: bool
) -> dict:
    from onereward.config import Config, apply_overrides
    from onereward.rl import trainer

    cfg = Config()
    out = root / f"{variant}{'-full' if full else ''}-{size}"
    sets = [
        "model.lora_rank=8" if tiny else "model.lora_rank=64",
        "model.gradient_checkpointing=true",
        f"model.mixed_precision={'bf16' if bf16 else 'no'}",
        f"sampling.size={size}",
        "sampling.steps=8",
        f"sampling.guidance={1.0 if tiny else 30.0}",
        "train.batch_size=1",
        f"train.steps={steps}",
        "train.lr=1e-5",
        "log.image_every=0",
        "log.eval_every=0",
        f"log.save_every={steps}",
        f"log.out={out}",
        "model.policy=(given)",
        "model.reward=(given)",
    ] + (FULL if full else [])
    extra = [s for s in VARIANTS[variant] if s != "cache"]
    if "cache" in VARIANTS[variant]:
        refs = root / f"refs-{size}"
        trainer.build_ref_cache(apply_overrides(Config(), sets), refs, batch_size=1, fill=fill, pool=pool)
        extra.append(f"data.ref_cache={refs}")
    apply_overrides(cfg, sets + extra)
    saved = trainer.save_checkpoint, trainer.export
    if full and not tiny:
        # A full-size checkpoint (policy, reference, fp32 EMA: ~100 GB) would not fit the disk; the step is measured.
        trainer.save_checkpoint = trainer.export = lambda *a, **k: None
    reset_peak()
    t0 = time.perf_counter()
    try:
        trainer.train(cfg, reward=reward, pool=pool, fill=fill)
    finally:
        trainer.save_checkpoint, trainer.export = saved
        if not full:
            fill.transformer.delete_adapters("default")  # the next variant starts from the bare base model again
    seconds = time.perf_counter() - t0
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    rows = rows[1:] or rows  # the first step pays one-off costs
    return {
        "peak_gib": peak_gib(),
        "seconds": seconds,
        **{k: sum(r[k] for r in rows) / len(rows) for k in ("time/step", *SPLIT)},
    }


class Results:
    """Every measurement under a key, written to `path` (JSON) after each one; a failed section records its error."""

    def __init__(self, path: Path | None, header: dict):
        self.path, self.data = path, {"header": header}

    def put(self, key: str, value) -> None:
        self.data[key] = value
        if self.path is not None:
            self.path.write_text(json.dumps(self.data, indent=1))

    def guarded(self, key: str, fn, *args):
        """fn(*args), recorded under `key`; an exception (out of memory, say) is printed and recorded instead."""
        try:
            value = fn(*args)
        except Exception as e:  # noqa: BLE001 -- a benchmark section's failure is a result; the others still run
            traceback.print_exc()
            print(f"{key}: FAILED: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", flush=True)
            self.put(key, {"error": f"{type(e).__name__}: {e}"[:500]})
            reset_peak()
            return None
        self.put(key, value)
        return value


def show_rl(key: str, r: dict | None) -> None:
    if r is not None:
        split = "  ".join(f"{k.split('/')[1]} {r[k]:.2f}" for k in SPLIT)
        print(f"{key:22s} peak {r['peak_gib']:6.1f} GiB  step {r['time/step']:7.2f} s  {split}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny configs on CPU (checks the code path)")
    ap.add_argument(
        "--float32", action="store_true", help="with --tiny: float32 weights, no autocast [bf16 as on GPU]"
    )
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="image sides [512 1024; tiny: 64]")
    ap.add_argument("--steps", type=int, default=3, help="RL steps per variant")
    ap.add_argument("--sample-steps", type=int, default=None, help="sampling steps timed [20; tiny: 2]")
    ap.add_argument("--repeats", type=int, default=3, help="timed reward calls per measurement [3]")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--sections", nargs="+", default=["sample", "reward", "lora", "full"])
    ap.add_argument("--json", type=Path, default=None, help="write every measurement here as it is made")
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() and not a.tiny else "cpu"
    if not a.tiny and device != "cuda":
        raise SystemExit("no GPU here; run with --tiny to check the code path on CPU")
    sizes = a.sizes or ([64] if a.tiny else [512, 1024])
    sample_steps = a.sample_steps or (2 if a.tiny else 20)

    from onereward.rl.data import ConditionPool
    from onereward.tasks import TASKS
    from onereward.toyworld import make_conditions

    t0 = time.perf_counter()
    bf16 = not (a.tiny and a.float32)
    fill, reward = build_models(a.tiny, device, bf16)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    header = {"device": name, "torch": torch.__version__, "python": sys.version.split()[0], "build_s": 0.0}
    header["build_s"] = time.perf_counter() - t0
    if device == "cuda":
        header["weights_gib"] = torch.cuda.memory_allocated() / 2**30
    print(json.dumps(header), flush=True)
    res = Results(a.json, header)
    root = Path(tempfile.mkdtemp(prefix="gpu_fullsize-"))
    pools = {
        s: ConditionPool([c for t in TASKS for c in make_conditions(t, 1, seed=0, size=s, split="rl")]) for s in sizes
    }
    for size in sizes:
        if "sample" in a.sections:
            r = res.guarded(f"sample/{size}", time_sampling, fill, pools[size], size, sample_steps)
            if r:
                print(
                    f"sample {size:5d}  {r['steps']} steps, true CFG {r['true_cfg']}: {r['seconds']:.2f} s"
                    f" ({r['s_per_step']:.3f} s/step)",
                    flush=True,
                )
        if "reward" in a.sections:
            r = res.guarded(f"reward/{size}", time_reward, reward, size, a.repeats)
            if r:
                print(f"reward {size:5d}  {r['image_tokens']} tokens/image", flush=True)
                for k, v in r.items():
                    if k != "image_tokens":
                        print(
                            f"  {k:16s} D=1 {1e3 * v['d1_s']:8.1f} ms  D=4 {1e3 * v['d4_s']:8.1f} ms"
                            f"  4/1 {v['ratio_4_1']:.2f}",
                            flush=True,
                        )
    if "lora" in a.sections:
        for size in sizes:
            for variant in a.variants:
                key = f"lora/{variant}/{size}"
                show_rl(
                    key,
                    res.guarded(
                        key, run_variant, fill, reward, pools[size], size, variant, a.steps, root, a.tiny, False, bf16
                    ),
                )
    if "full" in a.sections:
        size = sizes[0]
        for variant in ("standard", "dynamic"):
            key = f"full/{variant}/{size}"
            show_rl(
                key,
                res.guarded(
                    key, run_variant, fill, reward, pools[size], size, variant, a.steps, root, a.tiny, True, bf16
                ),
            )
    d = res.data
    lines = []
    for kind in ("lora", "full"):
        sz = sizes[-1] if kind == "lora" else sizes[0]
        std = d.get(f"{kind}/standard/{sz}") or {}
        for v in ("dynamic", "standard+cache"):
            other = d.get(f"{kind}/{v}/{sz}") or {}
            if "peak_gib" in std and "peak_gib" in other:
                lines.append(f"{kind} {v}/standard peak memory at {sz}: {other['peak_gib'] / std['peak_gib']:.2f}")
    failed = [k for k, v in d.items() if isinstance(v, dict) and "error" in v]
    print("; ".join(lines) if lines else "done", flush=True)
    if failed:
        raise SystemExit(f"{len(failed)} section(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
