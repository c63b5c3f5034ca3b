"""Benchmark: the activation memory the RL reward keeps for backward at Qwen2.5-VL-7B's widths, with and without
gradient checkpointing (`model.gradient_checkpointing`, which the reward model applies to its vision tower and its
language model).

One RL reward call scores the policy image against the reference on a task's 4 dimensions (prefix reuse) and its
backward reaches the policy image. What autograd keeps between the two is counted exactly on the CPU: every tensor
saved for backward, each storage once, parameters excluded. The 7B's 32 vision and 28 language layers do not fit
this machine in a useful time, so the model is built in bf16 with the 7B's widths and 1-2 layers per tower; what one
more layer keeps (a windowed vision layer, a full-attention one, a language layer) is the difference of two builds,
a fifth build checks that the parts add up, and the 7B's figure (28 windowed + 4 full-attention vision layers, 28
language layers) is the sum.

    .venv/bin/python bench/reward_activations.py [--sizes 512 1024]

The last line is `7B reward activations at S px, checkpointing/plain: R (X GiB against Y GiB)` for the largest size.
"""

from __future__ import annotations

import argparse
import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import Qwen2_5_VLForConditionalGeneration  # noqa: E402
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil  # noqa: E402

from onereward.reward import tiny as rm_tiny  # noqa: E402
from onereward.reward.model import RewardModel  # noqa: E402
from onereward.reward.processor import ImageOnlyQwen2_5_VLProcessor  # noqa: E402
from onereward.tasks import TASKS  # noqa: E402

# Builds: (vision layers, each True where it attends over the whole image, language layers)
BUILDS = {
    "base": ((False,), 1),  # one windowed vision layer, one language layer
    "+window": ((False, False), 1),
    "+full": ((False, True), 1),
    "+lm": ((False,), 2),
    "check": ((False, True), 2),  # base + full + lm: the parts should add up to it
}
SEVEN_B = {"window": 28, "full": 4, "lm": 28}  # Qwen2.5-VL-7B: full attention in 4 of its 32 vision blocks
# plain; the vision tower recomputed alone (what model.gradient_checkpointing did until 2026-11-28); and the whole
# judge, its language layers too (RewardModel.enable_gradient_checkpointing: checkpoint_with_cache)
MODES = ("plain", "vision only", "checkpointing")


def build(full_attention: tuple[bool, ...], lm_depth: int) -> RewardModel:
    tok = rm_tiny.build_tokenizer()
    cfg = rm_tiny.qwen25_vl_7b_config(tok)
    cfg.vision_config.depth = len(full_attention)
    cfg.vision_config.fullatt_block_indexes = [i for i, f in enumerate(full_attention) if f]
    cfg.text_config.num_hidden_layers = lm_depth
    cfg.text_config.layer_types = cfg.text_config.layer_types[:lm_depth]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        vlm = Qwen2_5_VLForConditionalGeneration(cfg)
    finally:
        torch.set_default_dtype(previous)
    proc = ImageOnlyQwen2_5_VLProcessor(Qwen2VLImageProcessorPil(), tok, rm_tiny.QWEN2_VL_CHAT_TEMPLATE)
    return RewardModel(vlm.eval(), proc)


def kept_bytes(rm: RewardModel, size: int) -> int:
    """Bytes autograd keeps for backward in one reward call (4 fill dimensions, one pair): unique storages, no
    parameters. The backward then runs, so a checkpointed run's recomputation is exercised too."""
    params = {p.untyped_storage().data_ptr() for p in rm.model.parameters()}
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    g = torch.Generator().manual_seed(0)
    first = torch.rand(1, 3, size, size, generator=g).requires_grad_(True)  # (1, 3, S, S) in [0, 1]
    second = torch.rand(1, 3, size, size, generator=g)  # (1, 3, S, S) in [0, 1]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        p = rm.p_yes(first, second, "fill", TASKS["fill"].dimensions, ["a red circle"])  # (1, 4)
    p.sum().backward()
    assert first.grad is not None and first.grad.abs().sum() > 0
    return sum(kept.values())


def seven_b(kept: dict[str, float]) -> tuple[float, dict[str, float], float]:
    """(the 7B's kept GiB, GiB per extra layer of each kind, the check build's residual) from the five builds."""
    per = {
        "window": kept["+window"] - kept["base"],
        "full": kept["+full"] - kept["base"],
        "lm": kept["+lm"] - kept["base"],
    }
    residual = kept["base"] + per["full"] + per["lm"] - kept["check"]
    # base holds one windowed vision layer and one language layer
    total = kept["base"] + (SEVEN_B["window"] - 1) * per["window"] + SEVEN_B["full"] * per["full"]
    return total + (SEVEN_B["lm"] - 1) * per["lm"], per, residual


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    gib = 2**30
    kept: dict[tuple[str, int], dict[str, float]] = {}
    tokens = {}
    for name, (full_attention, lm_depth) in BUILDS.items():
        rm = build(full_attention, lm_depth)
        tokens = {s: rm.spec.tokens_per_image(s, s) for s in a.sizes}
        for mode in MODES:
            if mode != "plain":
                rm.enable_gradient_checkpointing(language_model=mode == "checkpointing")
            for s in a.sizes:
                kept.setdefault((mode, s), {})[name] = kept_bytes(rm, s) / gib
        del rm
    print(
        f"{'size':>5} {'tokens/img':>10} {'mode':<14}{'base':>8}{'+window':>9}{'+full':>8}{'+lm':>8}"
        f"{'check':>8}{'residual':>9}{'7B (GiB)':>10}"
    )
    full = {}
    for s in a.sizes:
        for mode in MODES:
            k = kept[mode, s]
            full[mode, s], per, residual = seven_b(k)
            print(
                f"{s:>5} {tokens[s]:>10} {mode:<14}{k['base']:>8.3f}"
                f"{per['window']:>9.3f}{per['full']:>8.3f}{per['lm']:>8.3f}{k['check']:>8.3f}{residual:>9.3f}"
                f"{full[mode, s]:>10.2f}"
            )
    s = a.sizes[-1]
    done, plain = full["checkpointing", s], full["plain", s]
    ratio = f"{done / plain:.2f} ({done:.2f} GiB against {plain:.2f} GiB)"
    print(f"7B reward activations at {s} px, checkpointing/plain: {ratio}")


if __name__ == "__main__":
    main()
