"""Simulated human labelling, as the paper collects preferences (PAPER.md section 1).

For one condition, N candidates (the paper: 4) are shown; per evaluation dimension the annotator picks the best and
the worst, which gives one (winner, loser) pair per dimension. Near-ties are discarded: when the candidates' TRUE
scores on a dimension span less than `gap`, the dimension yields no pair. Annotators are not perfect: Gaussian label
noise (std `noise`, seeded) is added to the oracle's scores before picking the best and the worst, so close calls
can flip. The tie test reads the true scores because an annotator does not invent a preference between images that
do not differ: with the test on noisy scores, 4 candidates that all score 0 (a base model that never draws the
prompted object in extend) still gave a pair about a third of the time, a coin-flip label. In one demo's data
(commit 00a9a0f) 48 of the 59 held-out extend text-alignment pairs had a true gap under 0.1, and the reward model
was at chance on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from onereward.tasks import get_task
from onereward.toyworld.oracle import score_many, to_hwc
from onereward.toyworld.world import Condition

DEFAULT_GAP = 0.05
DEFAULT_NOISE = 0.02


@dataclass(frozen=True)
class Pair:
    winner: int  # index of the best candidate on `dimension`
    loser: int  # index of the worst
    dimension: str
    gap: float  # the annotator's (noisy) best - worst score


@dataclass
class Annotation:
    pairs: list[Pair]
    dropped: int  # dimensions discarded as near-ties
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))  # (N, D) true scores


def annotate_scores(
    scores: Sequence[dict[str, float]],
    dimensions: Sequence[str],
    gap: float = DEFAULT_GAP,
    noise: float = DEFAULT_NOISE,
    rng: np.random.Generator | None = None,
) -> Annotation:
    """Best/worst per dimension from N candidates' noisy scores; dimensions whose true scores span less than `gap`
    are dropped as near-ties."""
    if len(scores) < 2:
        raise ValueError(f"need at least 2 candidates to pick a best and a worst, got {len(scores)}")
    if gap < 0 or noise < 0:
        raise ValueError(f"gap ({gap}) and noise ({noise}) must be >= 0")
    true = np.array([[s[d] for d in dimensions] for s in scores], dtype=np.float32)  # (N, D)
    seen = true.astype(np.float64)
    if noise > 0:
        if rng is None:
            raise ValueError("label noise needs a seeded rng (numpy Generator)")
        seen = seen + rng.normal(0, noise, seen.shape)
    pairs, dropped = [], 0
    for j, dim in enumerate(dimensions):
        best, worst = int(np.argmax(seen[:, j])), int(np.argmin(seen[:, j]))
        margin = float(seen[best, j] - seen[worst, j])
        if float(true[:, j].max() - true[:, j].min()) < gap or best == worst:
            dropped += 1
        else:
            pairs.append(Pair(best, worst, dim, margin))
    return Annotation(pairs, dropped, true)


class Annotator:
    """Labels candidate sets with the oracle, near-tie filter and seeded label noise."""

    def __init__(self, gap: float = DEFAULT_GAP, noise: float = DEFAULT_NOISE, seed: int = 0):
        self.gap, self.noise = gap, noise
        self.rng = np.random.default_rng(seed)

    def annotate(self, cond: Condition, images: Any) -> Annotation:
        """images: N candidates for `cond`, numpy (N, H, W, 3) or torch (N, 3, H, W) in [0, 1]; one pair per
        dimension of its task, minus near-ties."""
        dims = get_task(cond.task).dimensions
        images = to_hwc(images)  # (N, H, W, 3)
        scores = score_many([cond] * len(images), images)
        return annotate_scores(scores, dims, self.gap, self.noise, self.rng)
