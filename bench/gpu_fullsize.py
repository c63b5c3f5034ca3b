"""Full-size OneReward RL on one GPU: FLUX.1-Fill-dev + Qwen2.5-VL-7B architectures with random bf16 weights.

Builds the real FLUX.1-Fill-dev transformer / VAE / CLIP-L / T5-XXL configs and a Qwen2.5-VL-7B reward model with
random weights (no download: nothing outside the machine is reachable), then runs a few LoRA RL steps of the real
trainer at each resolution for standard, dynamic and standard + reference cache, printing peak GPU memory and the
step-time split (reference rollout, policy rollout, grad step, reward). Random weights give real costs, not results.

    python bench/gpu_fullsize.py                 # on a GPU: 512 and 1024 px
    python bench/gpu_fullsize.py --tiny          # the same code on CPU with tiny configs (the test suite runs this)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

VARIANTS = {"standard": [], "dynamic": ["train.algorithm=dynamic"], "standard+cache": ["cache"]}
SPLIT = ("time/reference", "time/policy_rollout", "time/grad_step", "time/reward")


def build_models(tiny: bool, device: str):
    """(FillModel, RewardModel) at full size with random bf16 weights, or the tiny test ones."""
    from transformers import Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from onereward.models import tiny as flux_tiny
    from onereward.models.fill import FillModel
    from onereward.reward import tiny as rm_tiny
    from onereward.reward.model import RewardModel
    from onereward.reward.processor import ImageOnlyQwen2_5_VLProcessor

    tok = rm_tiny.build_tokenizer()
    if tiny:
        pipe = flux_tiny.build_tiny_pipeline("test")
        rm_cfg, image_processor = rm_tiny.tiny_config(tok, "test"), rm_tiny.build_image_processor()
        dtype = torch.float32
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


def run_variant(fill, reward, pool, size: int, variant: str, steps: int, root: Path, tiny: bool) -> dict:
    from onereward.config import Config, apply_overrides
    from onereward.rl.trainer import build_ref_cache, train

    cfg = Config()
    out = root / f"{variant}-{size}"
    sets = [
        "model.lora_rank=8" if tiny else "model.lora_rank=64",
        "model.gradient_checkpointing=true",
        f"model.mixed_precision={'no' if tiny else 'bf16'}",
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
    ]
    extra = [s for s in VARIANTS[variant] if s != "cache"]
    if "cache" in VARIANTS[variant]:
        build_ref_cache(apply_overrides(Config(), sets), root / f"refs-{size}", batch_size=1, fill=fill, pool=pool)
        extra.append(f"data.ref_cache={root / f'refs-{size}'}")
    apply_overrides(cfg, sets + extra)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    train(cfg, reward=reward, pool=pool, fill=fill)
    seconds = time.perf_counter() - t0
    fill.transformer.delete_adapters("default")  # the next variant starts from the bare base model again
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    rows = rows[1:] or rows  # the first step pays one-off costs
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    return {
        "peak_gib": peak,
        "seconds": seconds,
        **{k: sum(r[k] for r in rows) / len(rows) for k in ("time/step", *SPLIT)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny configs on CPU (checks the code path)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="image sides [512 1024; tiny: 64]")
    ap.add_argument("--steps", type=int, default=3, help="RL steps per variant")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    a = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() and not a.tiny else "cpu"
    if not a.tiny and device != "cuda":
        raise SystemExit("no GPU here; run with --tiny to check the code path on CPU")
    sizes = a.sizes or ([64] if a.tiny else [512, 1024])

    from onereward.rl.data import ConditionPool
    from onereward.tasks import TASKS
    from onereward.toyworld import make_conditions

    t0 = time.perf_counter()
    fill, reward = build_models(a.tiny, device)
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"built models in {time.perf_counter() - t0:.1f} s on {name}")
    if device == "cuda":
        print(f"weights resident: {torch.cuda.memory_allocated() / 2**30:.1f} GiB")
    root = Path(tempfile.mkdtemp(prefix="gpu_fullsize-"))
    results = {}
    for size in sizes:
        pool = ConditionPool([c for t in TASKS for c in make_conditions(t, 2, seed=0, size=size, split="rl")])
        for variant in a.variants:
            r = run_variant(fill, reward, pool, size, variant, a.steps, root, a.tiny)
            results[(variant, size)] = r
            print(
                f"{variant:15s}{size:6d}  peak {r['peak_gib']:6.1f} GiB  step {r['time/step']:7.2f} s  "
                + "  ".join(f"{k.split('/')[1]} {r[k]:.2f}" for k in SPLIT),
                flush=True,
            )
    std = results[("standard", sizes[-1])]
    ratios = [
        f"{v}/standard peak memory at {sizes[-1]}: {results[(v, sizes[-1])]['peak_gib'] / std['peak_gib']:.2f}"
        for v in a.variants
        if v != "standard" and (v, sizes[-1]) in results
    ]
    print("; ".join(ratios) if ratios else "done")


if __name__ == "__main__":
    main()
