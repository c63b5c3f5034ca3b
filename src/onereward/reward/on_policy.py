"""The judge on the pairs RL asks it about: two samples of ONE fill model, same settings, different noise.

Held-out accuracy (`eval-reward`) is measured on the annotators' best / worst pairs, picked from 4 candidates made
with randomised settings (steps, true CFG, negative prompt, noise scale): pairs that differ a lot. RL asks something
else: is the policy's image better than the reference's, two samples of nearly the same model at the same settings,
which differ little. A judge can rank the first kind well and the second at chance; then the reward's gradient is
noise, and RL moves nothing (or whatever the judge's biases favour). Measured on the grid-world demo at bba5423:
removal 95% on the held-out best / worst pairs, 53% on such pairs (0.02 apart or more); fill text alignment 70%
and 82%.

This needs the oracle to label the pairs, so it exists in the toy world only: conditions of the "judge" split (never
used for preferences, RL or the benchmark), two samples each from the fill model at its own inference defaults, the
oracle's scores per dimension, and for every (condition, dimension) whose two scores differ by at least `margin`
(the annotator's near-tie gap) the judge's verdict in both orders (two-order accuracy, as eval-reward's). A real
project would get the same number from people labelling pairs of its policy's samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from onereward.tasks import TASKS
from onereward.toyworld.annotator import DEFAULT_GAP

SEEDS = (11, 22)  # the two samples' noise


def on_policy_accuracy(
    rm,
    fill_model: str | Path,
    per_task: int = 64,
    seed: int = 0,
    size: int = 64,
    margin: float = DEFAULT_GAP,
    batch_size: int = 16,
) -> dict[str, dict[str, dict[str, Any]]]:
    """{task: {dimension: {"two_order": accuracy or None, "n": pairs}}} on `per_task` conditions per task.

    rm: anything with the reward contract's p_yes (a RewardModel); fill_model: a fill-model folder (its defaults
    give the sampling settings, as RL and evaluation use them).
    """
    from onereward.models.fill import FillModel
    from onereward.rl.data import to_batch
    from onereward.toyworld import make_conditions
    from onereward.toyworld.oracle import score_many, to_hwc

    fill = FillModel.from_pretrained(fill_model)
    d = fill.defaults
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for task, spec in TASKS.items():
        dims = list(spec.dimensions)
        conds = make_conditions(task, per_task, seed=seed, size=size, split="judge")
        right = np.zeros(len(dims))  # summed two-order correctness per dimension
        n = np.zeros(len(dims), dtype=int)
        for i in range(0, len(conds), batch_size):
            part = conds[i : i + batch_size]
            b = to_batch(part, [str(k) for k in range(len(part))])
            with torch.no_grad():
                a, c = (
                    fill.sample(b.sources, b.masks, b.prompts, steps=int(d["steps"]), true_cfg=float(d["true_cfg"]),
                                guidance=float(d["guidance"]), generator=torch.Generator().manual_seed(s + i))
                    for s in SEEDS
                )  # fmt: skip
                p_ac = rm.p_yes(a, c, task, dims, b.prompts, conditions=part).float().cpu().numpy()  # (B, D)
                p_ca = rm.p_yes(c, a, task, dims, b.prompts, conditions=part).float().cpu().numpy()  # (B, D)
            sa, sc = ([[s[dim] for dim in dims] for s in score_many(part, to_hwc(x))] for x in (a, c))
            gap = np.array(sa) - np.array(sc)  # (B, D) in float64 (Oracle.scores rounds to float32): > 0 where a wins
            judged = np.abs(gap) >= margin  # a near-tie has no right answer (the annotator drops it too)
            # each order's verdict ("a is better") is right where it agrees with the oracle; each order counts half
            correct = (((p_ac > 0.5) == (gap > 0)).astype(float) + ((p_ca <= 0.5) == (gap > 0)).astype(float)) / 2
            right += (correct * judged).sum(0)
            n += judged.sum(0)
        result[task] = {
            dim: {"two_order": float(right[j] / n[j]) if n[j] else None, "n": int(n[j])} for j, dim in enumerate(dims)
        }
    return result


def on_policy_lines(cells: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """One line per task for the console: dimension accuracy (pairs)."""
    lines = []
    for task, dims in cells.items():
        parts = [f"{d} {_percent(c['two_order'])} ({c['n']})" for d, c in dims.items()]
        lines.append(f"  on-policy {task}: {', '.join(parts)}")
    return lines


def _percent(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"
