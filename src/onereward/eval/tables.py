"""The result tables, built once from a run's results.json and rendered as Markdown here or as HTML by the report.

results.json (written by the demo; every key optional, a missing piece shows as "not run"; rates are fractions):
    reward_accuracy[family][dimension]            two-order pairwise accuracy of the reward model
    reward_accuracy_detail[family][dimension]     {two_order, one_order, n, position_bias_flag[, position_consistency]}
    reward_accuracy_by_task[task][dimension]      the same, per task row (text rendering apart from object fill, ...)
    on_policy_accuracy[task][dimension]           {two_order, n}: on pairs of two samples of the base model, the pairs
                                                  RL compares (toy world, reward/on_policy.py)
    usability[model][task]                        share of usable outputs
    text_success[model], removal_quality_rate[model]   binary rates (optional extras)
    dimension_scores[model][task][dimension]      mean score in [0, 1]
    gsb[model_vs_base][task]                      {good, same, bad} shares
    timings[stage]                                seconds
    total_seconds                                 all stages end to end (those run side by side count once)
    peak_memory_mb[stage]                         MB
    models[name]                                  folder relative to the run dir
    machine, date                                 strings
    seeds                                         {name: seed}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from onereward.eval.paper import PAPER_LABEL, PAPER_TABLE1, PAPER_USABILITY
from onereward.tasks import DIMENSIONS, FAMILIES, TASK_NAMES, TASKS, family_dimensions

NOT_RUN = "not run"
NOT_APPLICABLE = "-"
SMALL_N = 50  # PILOT.md section 8: fewer held-out pairs than this per cell and +-.1 is noise

DIM_TITLES = {
    "text_alignment": "Text Align",
    "consistency": "Consistency",
    "structure": "Structure",
    "aesthetics": "Aesthetics",
    "removal_quality": "Removal Quality",
}
FAMILY_TITLES = {"fill": "Image Fill", "extend": "Image Extend", "removal": "Object Removal"}
TASK_TITLES = {t: "extend (no prompt)" if t == "extend_noprompt" else t for t in TASK_NAMES}  # column headers


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]  # empty: the whole table is "not run"
    note: str = ""
    paper: bool = False  # the paper's numbers, styled and labelled apart from ours
    anchor: str = field(default="")


# --- validation ---


def _number(v: Any, where: str, unit: bool) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"{where} is {v!r}; expected a number or null")
    if unit and not 0 <= v <= 1:
        raise ValueError(f"{where} is {v}; rates and scores are fractions in [0, 1], not percentages")
    if not unit and v < 0:
        raise ValueError(f"{where} is {v}; expected >= 0")


def _mapping(v: Any, where: str) -> Mapping:
    if not isinstance(v, Mapping):
        raise ValueError(f"{where} should be an object, got {type(v).__name__}")
    return v


def _known(name: str, allowed, where: str) -> None:
    if name not in allowed:
        raise ValueError(f"{where}: unknown name {name!r}; expected one of {', '.join(allowed)}")


def validate_results(results: Any) -> None:
    """Raise ValueError naming the first misplaced or out-of-range entry; absent sections are fine."""
    r = _mapping(results, "results")
    for fam, dims in _mapping(r.get("reward_accuracy", {}), "reward_accuracy").items():
        _known(fam, FAMILIES, "reward_accuracy")
        for dim, v in _mapping(dims, f"reward_accuracy.{fam}").items():
            _known(dim, family_dimensions(fam), f"reward_accuracy.{fam}")
            _number(v, f"reward_accuracy.{fam}.{dim}", unit=True)
    for fam, dims in _mapping(r.get("reward_accuracy_detail", {}), "reward_accuracy_detail").items():
        _known(fam, FAMILIES, "reward_accuracy_detail")
        for dim, cell in _mapping(dims, f"reward_accuracy_detail.{fam}").items():
            _known(dim, family_dimensions(fam), f"reward_accuracy_detail.{fam}")
            where = f"reward_accuracy_detail.{fam}.{dim}"
            for k in ("two_order", "one_order", "position_consistency"):
                _number(_mapping(cell, where).get(k), f"{where}.{k}", unit=True)
            _number(cell.get("n"), f"{where}.n", unit=False)
    for key in ("reward_accuracy_by_task", "on_policy_accuracy"):  # per task row: {task: {dimension: cell}}
        for task, dims in _mapping(r.get(key, {}), key).items():
            _known(task, TASK_NAMES, key)
            for dim, cell in _mapping(dims, f"{key}.{task}").items():
                _known(dim, TASKS[task].dimensions, f"{key}.{task}")
                where = f"{key}.{task}.{dim}"
                _number(_mapping(cell, where).get("two_order"), f"{where}.two_order", unit=True)
                _number(cell.get("n"), f"{where}.n", unit=False)
    for key in ("usability", "dimension_scores", "gsb"):
        for model, per_task in _mapping(r.get(key, {}), key).items():
            for task, v in _mapping(per_task, f"{key}.{model}").items():
                _known(task, TASK_NAMES, f"{key}.{model}")
                where = f"{key}.{model}.{task}"
                if key == "usability":
                    _number(v, where, unit=True)
                elif key == "dimension_scores":
                    for dim, s in _mapping(v, where).items():
                        _known(dim, TASKS[task].dimensions, where)
                        _number(s, f"{where}.{dim}", unit=True)
                else:
                    for k in ("good", "same", "bad"):
                        _number(_mapping(v, where).get(k), f"{where}.{k}", unit=True)
    for key in ("text_success", "removal_quality_rate"):
        for model, v in _mapping(r.get(key, {}), key).items():
            _number(v, f"{key}.{model}", unit=True)
    for key in ("timings", "peak_memory_mb"):
        for stage, v in _mapping(r.get(key, {}), key).items():
            _number(v, f"{key}.{stage}", unit=False)
    for name, folder in _mapping(r.get("models", {}), "models").items():
        if not isinstance(folder, str):
            raise ValueError(f"models.{name} is {folder!r}; expected a folder name")
    for key in ("machine", "date"):
        if key in r and not isinstance(r[key], str):
            raise ValueError(f"{key} is {r[key]!r}; expected a string")
    _mapping(r.get("seeds", {}), "seeds")


# --- formatting ---


def pct(v: float | None, digits: int = 1) -> str:
    return NOT_RUN if v is None else f"{100 * v:.{digits}f}"


def _num(v: float | None, fmt: str) -> str:
    return NOT_RUN if v is None else format(v, fmt)


def _models(results: Mapping, *keys: str) -> list[str]:
    """Model names in the order they first appear under `models`, then under the given sections."""
    names: list[str] = []
    for key in ("models", *keys):
        names += [m for m in results.get(key, {}) if m not in names]
    return names


# --- the tables ---


def accuracy_table(results: Mapping) -> Table:
    acc = results.get("reward_accuracy", {})
    detail = results.get("reward_accuracy_detail", {})
    rows, flagged = [], False
    for fam in FAMILIES:
        row = [FAMILY_TITLES[fam]]
        for dim in DIMENSIONS:
            if dim not in family_dimensions(fam):
                row.append(NOT_APPLICABLE)
                continue
            cell = pct(acc.get(fam, {}).get(dim))
            if detail.get(fam, {}).get(dim, {}).get("position_bias_flag"):
                cell, flagged = cell + " †", True
            row.append(cell)
        rows.append(row)
    note = "Two-order accuracy (%): the mean correctness over both image orders, on held-out pairs."
    if flagged:
        note += " † one-order and two-order accuracy differ by more than 10 points: the judge has a position bias."
    return Table("Reward-model accuracy (ours)", ["", *DIM_TITLES.values()], rows, note, anchor="accuracy-ours")


def paper_table1() -> Table:
    rows = [
        [FAMILY_TITLES[f]]
        + [f"{PAPER_TABLE1[f][d]:.2f}" if d in PAPER_TABLE1[f] else NOT_APPLICABLE for d in DIMENSIONS]
        for f in FAMILIES
    ]
    return Table(
        f"Reward-model accuracy ({PAPER_LABEL}: Table 1)",
        ["", *DIM_TITLES.values()],
        rows,
        "The paper's Qwen2.5-VL-7B reward model on its own held-out human pairs (%). Not the same benchmark.",
        paper=True,
        anchor="accuracy-paper",
    )


def _n_pairs(n: int | None) -> str:
    """A cell's pair count, marked "(small)" under SMALL_N."""
    return _num(n, "d") + (" (small)" if n is not None and n < SMALL_N else "")


def accuracy_detail_table(results: Mapping) -> Table:
    detail = results.get("reward_accuracy_detail", {})
    rows = []
    for fam in FAMILIES:
        for dim in family_dimensions(fam):
            c = detail.get(fam, {}).get(dim)
            if c is None:
                continue
            n_cell = _n_pairs(c.get("n"))
            flag = {True: "yes", False: "no", None: NOT_RUN}[c.get("position_bias_flag")]
            cons = pct(c.get("position_consistency")) if "position_consistency" in c else NOT_RUN
            rows.append(
                [FAMILY_TITLES[fam], DIM_TITLES[dim], pct(c.get("two_order")), pct(c.get("one_order")), n_cell, flag]
                + [cons]
            )
    return Table(
        "Reward-model accuracy in detail",
        ["family", "dimension", "two-order %", "one-order %", "n pairs", "position bias", "order-consistent %"],
        rows,
        f"One-order accuracy alone flatters a judge that favours one position (PILOT.md 9). "
        f"'small' marks cells with fewer than {SMALL_N} pairs, where +-10 points is noise.",
        anchor="accuracy-detail",
    )


def accuracy_by_task_table(results: Mapping) -> Table:
    """Two-order accuracy per task row: Table 1's fill mixes text rendering into object fill, extend mixes extend
    without prompt into prompted extend, and the judge may read one and not the other (the RL gate reads these)."""
    by_task = results.get("reward_accuracy_by_task", {})
    on_policy = results.get("on_policy_accuracy")  # absent unless eval-reward ran with --on-policy
    rows = []
    for task in TASK_NAMES:
        for dim in TASKS[task].dimensions:
            c = by_task.get(task, {}).get(dim)
            if c is None:
                continue
            row = [TASK_TITLES[task], DIM_TITLES[dim], pct(c.get("two_order")), _n_pairs(c.get("n"))]
            if on_policy is not None:
                o = on_policy.get(task, {}).get(dim, {})
                row += [pct(o.get("two_order")), _n_pairs(o.get("n"))]
            rows.append(row)
    columns = ["task", "dimension", "two-order %", "n pairs"]
    note = "The pairs of Table 1's cells, split by task row. "
    if on_policy is not None:
        columns += ["on-policy %", "n on-policy"]
        note += (
            "On-policy: pairs of two samples of the base model at its own settings, the kind of pair RL asks about "
            "(labelled by the oracle, near-ties dropped). "
        )
    return Table(
        "Reward-model accuracy per task row",
        columns,
        rows,
        note + f"'small' marks cells with fewer than {SMALL_N} pairs, where +-10 points is noise.",
        anchor="accuracy-by-task",
    )


def usability_table(results: Mapping) -> Table:
    use = results.get("usability", {})
    rows = [[m] + [pct(use.get(m, {}).get(t)) for t in TASK_NAMES] for m in _models(results, "usability")]
    return Table("Usability (ours, %)", ["model", *TASK_TITLES.values()], rows, "Share of outputs judged usable.")


def paper_usability_table() -> Table:
    row = ["Seedream 3.0 Fill + OneReward"] + [
        f"{PAPER_USABILITY[t]:.2f}" if t in PAPER_USABILITY else NOT_APPLICABLE for t in TASK_NAMES
    ]
    return Table(
        f"Usability ({PAPER_LABEL}, %)",
        ["model", *TASK_TITLES.values()],
        [row],
        "The paper's human-judged usability on its own benchmark; text rendering is not reported apart.",
        paper=True,
    )


def binary_rates_table(results: Mapping) -> Table:
    ts, rq = results.get("text_success", {}), results.get("removal_quality_rate", {})
    rows = [[m, pct(ts.get(m)), pct(rq.get(m))] for m in _models(results, "text_success", "removal_quality_rate")]
    if not ts and not rq:
        rows = []
    return Table(
        "Binary rates (ours, %)",
        ["model", "text rendering success", "removal quality"],
        rows,
        "Share of text outputs whose text alignment passes, and of removals whose removal quality passes.",
    )


def dimension_table(results: Mapping) -> Table:
    scores = results.get("dimension_scores", {})
    rows = []
    for m in _models(results, "dimension_scores"):
        if m not in scores:
            rows.append([m, "all", *([NOT_RUN] * len(DIMENSIONS))])
            continue
        for t in TASK_NAMES:
            per_dim = scores.get(m, {}).get(t, {})
            rows.append(
                [m, t]
                + [_num(per_dim.get(d), ".3f") if d in TASKS[t].dimensions else NOT_APPLICABLE for d in DIMENSIONS]
            )
    if not scores:
        rows = []
    return Table(
        "Dimension scores (ours, mean in [0, 1])", ["model", "task", *DIM_TITLES.values()], rows, anchor="dimensions"
    )


def gsb_table(results: Mapping) -> Table:
    rows = []
    for comp, per_task in results.get("gsb", {}).items():
        row = [comp]
        for t in TASK_NAMES:
            c = per_task.get(t)
            row.append(NOT_RUN if c is None else " / ".join(pct(c.get(k)) for k in ("good", "same", "bad")))
        rows.append(row)
    return Table(
        "GSB (ours, Good / Same / Bad %)",
        ["comparison", *TASK_TITLES.values()],
        rows,
        "Image by image on the same conditions and seeds; the per-image mean of the task's dimension scores, "
        "with a tie band ('same' when the difference is within the margin, 0.02 by default).",
    )


def cost_table(results: Mapping) -> Table:
    times, mem = results.get("timings", {}), results.get("peak_memory_mb", {})
    stages = list(times) + [s for s in mem if s not in times]
    rows = [[s, _num(times.get(s), ".1f"), _num(mem.get(s), ".0f")] for s in stages]
    if results.get("total_seconds") is not None:  # the RL runs overlap: their sum is not the time taken
        rows.append(["total (stages side by side count once)", f"{results['total_seconds']:.1f}", ""])
    elif rows and any(v is not None for v in times.values()):
        rows.append(["total", f"{sum(v for v in times.values() if v is not None):.1f}", ""])
    return Table("Timings and peak memory per stage", ["stage", "time (s)", "peak memory (MB)"], rows)


def all_tables(results: Mapping) -> list[Table]:
    return [
        accuracy_table(results),
        paper_table1(),
        accuracy_detail_table(results),
        accuracy_by_task_table(results),
        usability_table(results),
        paper_usability_table(),
        binary_rates_table(results),
        dimension_table(results),
        gsb_table(results),
        cost_table(results),
    ]


def to_markdown(table: Table) -> str:
    lines = [f"### {table.title}", ""]
    if not table.rows:
        lines.append(f"_{NOT_RUN}_")
    else:
        lines.append("| " + " | ".join(table.header) + " |")
        lines.append("|" + "---|" * len(table.header))
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    if table.note:
        lines += ["", f"_{table.note}_"]
    return "\n".join(lines)


def markdown_tables(results: Mapping) -> str:
    """Table 1 form (ours beside the paper's), Table 2 form (usability per model and task, with the paper's), GSB,
    dimension scores and costs, as Markdown. Raises ValueError on a malformed results dict."""
    validate_results(results)
    return "\n\n".join(to_markdown(t) for t in all_tables(results)) + "\n"
