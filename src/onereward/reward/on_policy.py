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
    from onereward.toyworld import make_conditions
    from onereward.toyworld.oracle import score

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
            src = torch.from_numpy(np.stack([c.source for c in part])).permute(0, 3, 1, 2).float()  # (B, 3, H, W)
            msk = torch.from_numpy(np.stack([c.mask for c in part]))[:, None].float()  # (B, 1, H, W)
            prompts = [c.prompt for c in part]
            with torch.no_grad():
                a, b = (
                    fill.sample(src, msk, prompts, steps=int(d["steps"]), true_cfg=float(d["true_cfg"]),
                                guidance=float(d["guidance"]), generator=torch.Generator().manual_seed(s + i))
                    for s in SEEDS
                )  # fmt: skip
                p_ab = rm.p_yes(a, b, task, dims, prompts, conditions=part).float().cpu().numpy()  # (B, D)
                p_ba = rm.p_yes(b, a, task, dims, prompts, conditions=part).float().cpu().numpy()  # (B, D)
            for k, c in enumerate(part):
                sa = score(c, a[k].permute(1, 2, 0).numpy())
                sb = score(c, b[k].permute(1, 2, 0).numpy())
                for j, dim in enumerate(dims):
                    gap = sa[dim] - sb[dim]
                    if abs(gap) >= margin:  # a near-tie has no right answer (the annotator drops it too)
                        n[j] += 1
                        a_wins = (p_ab[k, j] > 0.5, p_ba[k, j] <= 0.5)  # each order's verdict: a is better
                        right[j] += sum(float(w == (gap > 0)) for w in a_wins) / 2
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
