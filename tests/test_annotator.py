import numpy as np
import pytest

from onereward.tasks import TASKS
from onereward.toyworld import Annotator, Pair, annotate_scores, score
from onereward.toyworld.variants import VARIANTS


def _candidates(cond, names=("grey", "GT", "noise .15", "blur 5x5")):
    rng = np.random.default_rng(0)
    return np.stack([VARIANTS[n](cond, rng) for n in names])  # (4, H, W, 3)


@pytest.mark.parametrize("task", ["fill", "removal", "extend_noprompt"])
def test_picks_the_true_best_and_worst(task, toy_conditions):
    cond = toy_conditions[task][0]
    images = _candidates(cond)
    ann = Annotator(noise=0.0).annotate(cond, images)
    scores = [score(cond, im) for im in images]
    assert ann.scores.shape == (4, len(TASKS[task].dimensions))
    assert len(ann.pairs) + ann.dropped == len(TASKS[task].dimensions)
    for p in ann.pairs:
        col = [s[p.dimension] for s in scores]
        assert col[p.winner] == max(col) and col[p.loser] == min(col) and p.gap >= 0.05
    if task == "fill":  # GT wins text alignment, grey or noise loses it
        ta = next(p for p in ann.pairs if p.dimension == "text_alignment")
        assert ta.winner == 1 and ta.loser in (0, 2)
    if task == "removal":
        assert ann.pairs == [Pair(1, ann.pairs[0].loser, "removal_quality", ann.pairs[0].gap)]


def test_near_ties_are_dropped(toy_conditions):
    cond = toy_conditions["fill"][1]
    same = np.stack([cond.target] * 4)
    ann = Annotator(noise=0.0).annotate(cond, same)
    assert ann.pairs == [] and ann.dropped == 4
    rows = [{"d": 0.50}, {"d": 0.52}, {"d": 0.53}, {"d": 0.51}]
    assert annotate_scores(rows, ["d"], gap=0.05, noise=0.0).dropped == 1
    kept = annotate_scores(rows, ["d"], gap=0.02, noise=0.0)
    assert kept.pairs == [Pair(2, 0, "d", pytest.approx(0.03))]


def test_label_noise_is_seeded_and_can_flip_close_calls():
    rows = [{"d": 0.50}, {"d": 0.60}, {"d": 0.62}, {"d": 0.30}]
    runs = [annotate_scores(rows, ["d"], gap=0.05, noise=0.05, rng=np.random.default_rng(s)) for s in range(40)]
    again = [annotate_scores(rows, ["d"], gap=0.05, noise=0.05, rng=np.random.default_rng(s)) for s in range(40)]
    assert [r.pairs for r in runs] == [r.pairs for r in again]
    winners = {r.pairs[0].winner for r in runs}
    assert winners == {1, 2}  # 0.60 vs 0.62 is a close call under noise 0.05
    assert all(r.pairs[0].loser == 3 for r in runs)  # 0.30 is far below: always the worst
    # no preference is invented between candidates that do not differ, however noisy the annotator
    ties = [{"d": 0.0}] * 4
    assert all(
        annotate_scores(ties, ["d"], gap=0.05, noise=0.05, rng=np.random.default_rng(s)).pairs == [] for s in range(40)
    )
    with pytest.raises(ValueError, match="seeded rng"):
        annotate_scores(rows, ["d"], noise=0.02)
    with pytest.raises(ValueError, match="at least 2"):
        annotate_scores(rows[:1], ["d"], noise=0.0)


def test_accepts_torch_candidates(toy_conditions):
    import torch

    cond = toy_conditions["removal"][2]
    images = _candidates(cond)
    as_torch = torch.from_numpy(images).permute(0, 3, 1, 2)  # (4, 3, H, W)
    a, b = Annotator(seed=3).annotate(cond, images), Annotator(seed=3).annotate(cond, as_torch)
    assert a.pairs == b.pairs and a.dropped == b.dropped
