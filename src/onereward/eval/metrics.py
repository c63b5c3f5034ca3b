"""Evaluation metrics as pure functions on plain records; every number the report shows comes from here.

A *record* is one model's output on one benchmark condition, already judged (by the oracle or a judge model):
    {"id": <condition id>, "task": <task name in onereward.tasks.TASKS>,
     "scores": {dimension: float in [0, 1]}, "usable": bool}
Its `scores` must hold every dimension of its task's row. Rates and shares are fractions in [0, 1].

A *pair row* is one held-out human (winner, loser) pair judged by a reward model in both orders:
    {"task", "dimension", "p_yes_wl": P(Yes | winner first, loser second), "p_yes_lw": P(Yes | loser first, winner)}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from onereward.eval.paper import PAPER_TABLE1, PAPER_USABILITY
from onereward.eval.tables import markdown_tables
from onereward.tasks import FAMILIES, TASK_NAMES, TASKS, family_dimensions, get_task

__all__ = [
    "PAPER_TABLE1",
    "PAPER_USABILITY",
    "dimension_scores",
    "gsb",
    "image_score",
    "markdown_tables",
    "accuracy_detail",
    "pairwise_accuracy",
    "pass_rate",
    "position_consistency",
    "removal_quality_rate",
    "text_success",
    "usability",
]

GSB_MARGIN = 0.02  # PILOT.md section 5: a per-image mean score within +-0.02 of the base counts as "same"
_ROUNDING = 1e-9  # so that 0.62 - 0.60 (= 0.0200000000000000178) still falls inside a 0.02 band
BIAS_GAP = 0.1  # PILOT.md section 8: one-order vs two-order accuracy differing by more than this flags position bias

Record = Mapping[str, Any]


# --- records ---


def _unit(value: Any, what: str) -> float:
    """A finite number in [0, 1], or a ValueError that names where it came from."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{what} is {value!r}; expected a number in [0, 1]")
    v = float(value)
    if not (math.isfinite(v) and 0.0 <= v <= 1.0):
        raise ValueError(f"{what} is {v}; expected a number in [0, 1]")
    return v


def _check_record(r: Record) -> None:
    missing = [k for k in ("id", "task", "scores", "usable") if k not in r]
    if missing:
        raise ValueError(f"record {r.get('id', '?')!r} lacks {', '.join(missing)}")
    task = get_task(r["task"])
    scores = r["scores"]
    absent = [d for d in task.dimensions if d not in scores]
    if absent:
        raise ValueError(f"record {r['id']!r} ({task.name}) has no score for {', '.join(absent)}")
    for d in task.dimensions:
        _unit(scores[d], f"record {r['id']!r} score {d!r}")
    if not isinstance(r["usable"], bool | np.bool_):
        raise ValueError(f"record {r['id']!r}: usable is {r['usable']!r}; expected True or False")


def _by_task(records: Iterable[Record]) -> dict[str, list[Record]]:
    """Checked records grouped by task, in the task table's order (tasks without records are left out)."""
    groups: dict[str, list[Record]] = {}
    for r in records:
        _check_record(r)
        groups.setdefault(r["task"], []).append(r)
    return {t: groups[t] for t in TASK_NAMES if t in groups}


def usability(records: Iterable[Record]) -> dict[str, float]:
    """Share of usable outputs per task (text, extend with and without prompt, removal kept apart)."""
    return {t: float(np.mean([bool(r["usable"]) for r in rs])) for t, rs in _by_task(records).items()}


def dimension_scores(records: Iterable[Record]) -> dict[str, dict[str, float]]:
    """Mean score per task and per dimension of that task's row."""
    return {
        t: {d: float(np.mean([float(r["scores"][d]) for r in rs])) for d in get_task(t).dimensions}
        for t, rs in _by_task(records).items()
    }


def pass_rate(records: Iterable[Record], task: str, dimension: str, threshold: float) -> float | None:
    """Share of `task`'s records whose `dimension` score is >= threshold; None when there are none."""
    if dimension not in get_task(task).dimensions:
        raise ValueError(f"task {task!r} is not judged on {dimension!r}")
    rs = _by_task(records).get(task, [])
    if not rs:
        return None
    return float(np.mean([float(r["scores"][dimension]) >= threshold for r in rs]))


def text_success(records: Iterable[Record], threshold: float) -> float | None:
    """Text-rendering success: share of `text` records whose text_alignment passes the threshold (a binary rate)."""
    return pass_rate(records, "text", "text_alignment", threshold)


def removal_quality_rate(records: Iterable[Record], threshold: float) -> float | None:
    """Removal quality as a binary rate: share of `removal` records whose removal_quality passes the threshold."""
    return pass_rate(records, "removal", "removal_quality", threshold)


def image_score(record: Record) -> float:
    """One number per image: the mean of its task's dimension scores (what GSB compares)."""
    _check_record(record)
    return float(np.mean([float(record["scores"][d]) for d in get_task(record["task"]).dimensions]))


# --- GSB ---


def _index(records: Iterable[Record], side: str) -> dict[Any, Record]:
    out: dict[Any, Record] = {}
    for r in records:
        _check_record(r)
        if r["id"] in out:
            raise ValueError(f"records_{side} hold id {r['id']!r} twice; GSB needs one output per condition")
        out[r["id"]] = r
    return out


def gsb(records_a: Iterable[Record], records_b: Iterable[Record], margin: float = GSB_MARGIN) -> dict[str, dict]:
    """Good/Same/Bad shares of model A against baseline B, per task, image by image.

    Records are matched by id; both sides must cover exactly the same conditions (generated from the same seeds,
    PILOT.md section 9), else ValueError. For each image, diff = image_score(a) - image_score(b): "good" when
    diff > margin, "bad" when diff < -margin, "same" when |diff| <= margin (the tie band, inclusive up to float
    rounding). Shares sum to 1.
    """
    if margin < 0:
        raise ValueError(f"margin is {margin}; the tie band must be >= 0")
    a, b = _index(records_a, "a"), _index(records_b, "b")
    if a.keys() != b.keys():
        only_a, only_b = sorted(map(str, a.keys() - b.keys())), sorted(map(str, b.keys() - a.keys()))
        raise ValueError(
            f"GSB compares the same conditions; ids only in A: {only_a[:5]} ({len(only_a)}), "
            f"only in B: {only_b[:5]} ({len(only_b)})"
        )
    counts: dict[str, list[int]] = {}
    for i, ra in a.items():
        if ra["task"] != b[i]["task"]:
            raise ValueError(f"id {i!r} is task {ra['task']!r} in A but {b[i]['task']!r} in B")
        diff = image_score(ra) - image_score(b[i])
        c = counts.setdefault(ra["task"], [0, 0, 0])
        c[0 if diff > margin + _ROUNDING else 2 if diff < -margin - _ROUNDING else 1] += 1
    return {
        t: dict(zip(("good", "same", "bad"), (n / sum(counts[t]) for n in counts[t]), strict=True))
        for t in TASK_NAMES
        if t in counts
    }


# --- reward-model accuracy ---


def _pairs_by_cell(
    rows: Iterable[Mapping[str, Any]], by: str = "family"
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(family, dimension) -> [(p_yes_wl, p_yes_lw)], in Table 1 order; with by="task", (task row, dimension) in the
    task table's order (text rendering apart from object fill, extend without prompt apart from extend)."""
    if by not in ("family", "task"):
        raise ValueError(f"by={by!r}: group pairs by 'family' (Table 1) or 'task' (the task table's rows)")
    cells: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for k, row in enumerate(rows):
        task = get_task(row["task"])
        if row["dimension"] not in task.dimensions:
            raise ValueError(f"pair row {k}: task {task.name!r} is not judged on {row['dimension']!r}")
        p = (_unit(row["p_yes_wl"], f"pair row {k} p_yes_wl"), _unit(row["p_yes_lw"], f"pair row {k} p_yes_lw"))
        cells.setdefault((task.family if by == "family" else task.name, row["dimension"]), []).append(p)
    if by == "family":
        order = [(f, d) for f in FAMILIES for d in family_dimensions(f)]
    else:
        order = [(t, d) for t in TASK_NAMES for d in TASKS[t].dimensions]
    return {key: cells[key] for key in order if key in cells}


def _nest(flat: dict[tuple[str, str], Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for (family, dim), v in flat.items():
        out.setdefault(family, {})[dim] = v
    return out


def pairwise_accuracy(
    rows: Iterable[Mapping[str, Any]], bias_gap: float = BIAS_GAP, by: str = "family"
) -> dict[str, dict[str, dict]]:
    """Reward-model accuracy on held-out (winner, loser) pairs, per task family and dimension (the paper's Table 1),
    or per task row and dimension with by="task".

    two_order: mean over pairs of ([p_wl > .5] + [p_lw < .5]) / 2, the correctness over both orders (PILOT.md 8).
    one_order: mean of [p_wl > .5] alone. A judge that always answers Yes scores 1.0 one-order and 0.5 two-order,
    so position_bias_flag is set when they differ by more than `bias_gap`. A judge at exactly .5 is wrong in both
    orders. n is the number of pairs in the cell.
    """
    out = {}
    for key, ps in _pairs_by_cell(rows, by).items():
        wl = np.array([p[0] for p in ps])
        lw = np.array([p[1] for p in ps])
        one = float(np.mean(wl > 0.5))
        two = float(np.mean(((wl > 0.5).astype(float) + (lw < 0.5).astype(float)) / 2))
        out[key] = {
            "two_order": two,
            "one_order": one,
            "n": len(ps),
            "position_bias_flag": abs(one - two) > bias_gap + _ROUNDING,
        }
    return _nest(out)


def accuracy_detail(rows: Iterable[Mapping[str, Any]], by: str = "family") -> dict[str, dict[str, dict]]:
    """pairwise_accuracy's cells with each cell's position_consistency added: results.json's reward_accuracy_detail
    (by family) and reward_accuracy_by_task (by="task")."""
    detail = pairwise_accuracy(rows, by=by)
    for key, dims in position_consistency(rows, by=by).items():
        for dim, v in dims.items():
            detail[key][dim]["position_consistency"] = v
    return detail


def position_consistency(rows: Iterable[Mapping[str, Any]], by: str = "family") -> dict[str, dict[str, float]]:
    """Share of pairs whose answer flips when the order is swapped, (p_wl > .5) != (p_lw > .5), per family (or task
    row, by="task") and dimension.

    A consistent judge says Yes in one order and No in the other (right or wrong); a position-biased one gives the
    same answer in both.
    """
    return _nest(
        {
            key: float(np.mean([(wl > 0.5) != (lw > 0.5) for wl, lw in ps]))
            for key, ps in _pairs_by_cell(rows, by).items()
        }
    )
