"""Judges of a benchmark's outputs. Each one fills the results.json sections it can (schema in eval.tables).

- `OracleJudge` ("oracle"): the toy world's oracle scores every output of every model on its task's dimensions and
  says whether it is usable; that gives records {"id", "task", "scores", "usable"} (eval.metrics), so usability,
  dimension means, text-rendering success, removal quality and GSB against the base. Needs ground truth: the toy
  benchmark only.
- `PairwiseJudge` ("reward:DIR"): a judge behind the reward contract (a VLM reward model; the oracle also fits) for
  benchmarks without ground truth. Per item it asks P(model better than base) in BOTH orders and averages them,
      P(A > B) = (p_yes(first=A, second=B) + 1 - p_yes(first=B, second=A)) / 2,
  which cancels a judge's preference for a position (PILOT.md section 9). Results: `win_rate[A_vs_B][task][dim]`
  (the mean of P(A > B) over the task's items) and `gsb[A_vs_B][task]`: per item, "good" when P(A > B) averaged
  over the task's dimensions exceeds 0.5 + margin, "bad" below 0.5 - margin, else "same".
- `HumanJudge` ("human:FILE"): human annotations, a JSONL of {"id", "model_a", "model_b", "task", "winner"} with
  winner "a", "b" or "same", one line per vote, turned into GSB shares (every vote counts once).

`reward_accuracy` measures a reward model on held-out human pairs (a preference folder, onereward.data.prefs).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from onereward.errors import UserError
from onereward.eval import metrics
from onereward.eval.benchmark import BenchItem, has_truth
from onereward.eval.generate import load_output
from onereward.io import read_jsonl, save_json
from onereward.tasks import TASK_NAMES, get_task
from onereward.toyworld.oracle import THRESHOLDS, score, usable

TEXT_THRESHOLD = THRESHOLDS["text"]["text_alignment"]  # text rendering "succeeds" when its alignment is usable
REMOVAL_THRESHOLD = THRESHOLDS["removal"]["removal_quality"]
WINNERS = ("a", "b", "same")


class Judge(Protocol):
    """Judges outputs already on disk, eval_dir/<model>/<task>/<id>.png, and returns results.json sections."""

    spec: str  # how it was asked for ("oracle", "reward:DIR", "human:FILE"), recorded in results.json

    def evaluate(
        self, items: Sequence[BenchItem], eval_dir: Path, models: Sequence[str], base: str | None, margin: float
    ) -> dict[str, Any]: ...


def comparison(model: str, base: str) -> str:
    """The results.json key of a comparison (gsb, win_rate)."""
    return f"{model}_vs_{base}"


def _to_tensor(images: Sequence[np.ndarray]):
    import torch

    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()  # (B, 3, H, W) in [0, 1]


def _groups(items: Sequence[BenchItem], batch_size: int) -> list[list[BenchItem]]:
    """Items of one task and one size, in runs of at most batch_size (one judge call each)."""
    by: dict[tuple[str, tuple[int, ...]], list[BenchItem]] = {}
    for it in items:
        by.setdefault((it.task, it.cond.source.shape), []).append(it)
    return [g[i : i + batch_size] for g in by.values() for i in range(0, len(g), batch_size)]


# --- the oracle ---


def oracle_records(items: Sequence[BenchItem], images_dir: str | Path) -> list[dict[str, Any]]:
    """One record per item: the oracle's scores of images_dir/<task>/<id>.png and its usability verdict."""
    records = []
    for it in items:
        if not has_truth(it.cond):
            raise UserError(
                f"benchmark item {it.id!r} has no toy ground truth (target.png + scene); the oracle judges "
                "the toy benchmark only: use --judge reward:DIR or human:FILE"
            )
        s = score(it.cond, load_output(images_dir, it))
        records.append({"id": it.id, "task": it.task, "scores": s, "usable": usable(it.task, s)})
    return records


def record_sections(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One model's usability, dimension means and binary rates, all from eval.metrics."""
    out: dict[str, Any] = {
        "usability": metrics.usability(records),
        "dimension_scores": metrics.dimension_scores(records),
    }
    text = metrics.text_success(records, TEXT_THRESHOLD)
    removal = metrics.removal_quality_rate(records, REMOVAL_THRESHOLD)
    if text is not None:
        out["text_success"] = text
    if removal is not None:
        out["removal_quality_rate"] = removal
    return out


class OracleJudge:
    spec = "oracle"

    def evaluate(self, items, eval_dir, models, base, margin) -> dict[str, Any]:
        """Writes eval_dir/<model>/records.json; sections usability, dimension_scores, binary rates, gsb."""
        eval_dir = Path(eval_dir)
        records = {m: oracle_records(items, eval_dir / m) for m in models}
        out: dict[str, Any] = {k: {} for k in ("usability", "dimension_scores", "text_success",
                                               "removal_quality_rate", "gsb")}  # fmt: skip
        for m, rs in records.items():
            save_json(eval_dir / m / "records.json", rs)
            for key, value in record_sections(rs).items():
                out[key][m] = value
        if base is not None:
            for m in models:
                if m != base:
                    out["gsb"][comparison(m, base)] = metrics.gsb(records[m], records[base], margin)
        return {k: v for k, v in out.items() if v}


# --- a judge behind the reward contract ---


def two_order_win(reward, a, b, task: str, dims: list[str], prompts: list, conditions=None):
    """(B, D) float32 CPU: P(a better than b) over both orders, (P(Yes | a, b) + 1 - P(Yes | b, a)) / 2.

    a, b: (B, 3, H, W) in [0, 1]; reward: anything with the contract's p_yes. Called without grad by its users.
    """
    p_ab = reward.p_yes(a, b, task, dims, prompts, conditions=conditions).float().cpu()  # (B, D)
    p_ba = reward.p_yes(b, a, task, dims, prompts, conditions=conditions).float().cpu()  # (B, D)
    return (p_ab + 1 - p_ba) / 2


def win_rows(reward, items: Sequence[BenchItem], dir_a: Path, dir_b: Path, batch_size: int = 8) -> list[dict]:
    """Per item, P(A better than B) on each of its task's dimensions, over both orders (module docstring).

    reward: anything with the contract's p_yes (RewardModel, Oracle). Returns [{"id", "task", "p_win": {dim: P}}].
    """
    import torch

    rows = []
    for group in _groups(items, batch_size):
        task = group[0].task
        dims = list(get_task(task).dimensions)
        a = _to_tensor([load_output(dir_a, it) for it in group])  # (B, 3, H, W)
        b = _to_tensor([load_output(dir_b, it) for it in group])  # (B, 3, H, W)
        prompts = [it.cond.prompt for it in group]
        conds = [it.cond for it in group]
        with torch.no_grad():
            p = two_order_win(reward, a, b, task, dims, prompts, conds).numpy()  # (B, D) two-order P(A > B)
        for it, row in zip(group, p, strict=True):
            rows.append({"id": it.id, "task": task, "p_win": {d: float(v) for d, v in zip(dims, row, strict=True)}})
    return rows


def win_rates(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean two-order P(A > B) per task and dimension, in task-table order."""
    by: dict[str, list[Mapping]] = {}
    for r in rows:
        by.setdefault(r["task"], []).append(r)
    return {
        t: {d: float(np.mean([r["p_win"][d] for r in by[t]])) for d in get_task(t).dimensions}
        for t in TASK_NAMES
        if t in by
    }


def win_gsb(rows: Iterable[Mapping[str, Any]], margin: float = metrics.GSB_MARGIN) -> dict[str, dict[str, float]]:
    """GSB from win probabilities, through eval.metrics.gsb: A is scored P(A > B), B an even 0.5 on each dimension,
    so an item is "good" when its mean P(A > B) exceeds 0.5 + margin."""
    rows = list(rows)
    a = [{"id": r["id"], "task": r["task"], "scores": dict(r["p_win"]), "usable": False} for r in rows]
    b = [{"id": r["id"], "task": r["task"], "scores": dict.fromkeys(r["p_win"], 0.5), "usable": False} for r in rows]
    return metrics.gsb(a, b, margin)


class PairwiseJudge:
    def __init__(self, reward, spec: str = "reward", batch_size: int = 8):
        self.reward, self.spec, self.batch_size = reward, spec, batch_size

    @classmethod
    def from_folder(cls, path: str | Path, device: str | None = None, batch_size: int = 8) -> PairwiseJudge:
        """A Qwen2.5-VL reward model folder (tiny or 7B): CUDA in bfloat16 when there is one, else CPU float32."""
        from onereward.reward.model import RewardModel

        check_reward_folder(path)
        return cls(RewardModel.for_judging(path, device), f"reward:{path}", batch_size)

    def evaluate(self, items, eval_dir, models, base, margin) -> dict[str, Any]:
        """Writes eval_dir/<model>/win_vs_<base>.json (per-item P(A > B)); sections win_rate and gsb."""
        if base is None:
            raise UserError("the reward judge compares each model with a base; pass --base NAME (one of the models)")
        eval_dir = Path(eval_dir)
        out: dict[str, Any] = {"win_rate": {}, "gsb": {}}
        for m in models:
            if m == base:
                continue
            rows = win_rows(self.reward, items, eval_dir / m, eval_dir / base, self.batch_size)
            save_json(eval_dir / m / f"win_vs_{base}.json", rows)
            out["win_rate"][comparison(m, base)] = win_rates(rows)
            out["gsb"][comparison(m, base)] = win_gsb(rows, margin)
        return out


def check_reward_folder(path: str | Path) -> None:
    if not (Path(path) / "config.json").is_file():
        raise UserError(f"{path}: not a reward-model folder (no config.json); give a Qwen2.5-VL folder, e.g. one "
                        "made by `onereward build-tiny-rm`")  # fmt: skip


# --- human annotations ---


def load_annotations(path: str | Path, items: Sequence[BenchItem] | None = None) -> list[dict[str, Any]]:
    """Read and check a JSONL of votes {"id", "model_a", "model_b", "task", "winner"}; UserError names the line.

    With `items`, every id must be a benchmark item of the stated task.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such annotation file; give a JSONL of {{id, model_a, model_b, task, winner}}")
    tasks = {it.id: it.task for it in items} if items is not None else None
    rows = []
    for n, row in read_jsonl(path, "{id, model_a, model_b, task, winner}"):
        where = f"{path} line {n}"
        for key in ("id", "model_a", "model_b", "task", "winner"):
            if not isinstance(row.get(key), str) or not row[key]:
                raise UserError(f"{where}: field {key!r} is missing or not a non-empty string")
        if row["task"] not in TASK_NAMES:
            raise UserError(f"{where}: task {row['task']!r} is not one of {', '.join(TASK_NAMES)}")
        if row["winner"] not in WINNERS:
            raise UserError(f"{where}: winner {row['winner']!r}; use 'a', 'b' or 'same'")
        if row["model_a"] == row["model_b"]:
            raise UserError(f"{where}: model_a and model_b are both {row['model_a']!r}; a vote compares two models")
        if tasks is not None and tasks.get(row["id"]) != row["task"]:
            what = "is not in the benchmark" if row["id"] not in tasks else f"is a {tasks[row['id']]!r} item"
            raise UserError(f"{where}: id {row['id']!r} {what}, the line says task {row['task']!r}")
        rows.append(row)
    if not rows:
        raise UserError(f"{path}: no annotations in the file")
    return rows


def human_gsb(rows: Iterable[Mapping[str, Any]], base: str | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """GSB shares per comparison and task from votes. A vote is oriented so that `base` is the second model (a vote
    for the base is "bad"); a pair without the base keeps the orientation it was first seen in."""
    counts: dict[str, dict[str, list[int]]] = {}
    for r in rows:
        a, b, winner = r["model_a"], r["model_b"], r["winner"]
        if a == base or (b != base and comparison(b, a) in counts):
            a, b, winner = b, a, {"a": "b", "b": "a"}.get(winner, winner)
        c = counts.setdefault(comparison(a, b), {}).setdefault(r["task"], [0, 0, 0])
        c[{"a": 0, "same": 1, "b": 2}[winner]] += 1
    return {
        comp: {t: dict(zip(("good", "same", "bad"), (n / sum(per[t]) for n in per[t]), strict=True))
               for t in TASK_NAMES if t in per}
        for comp, per in counts.items()
    }  # fmt: skip


class HumanJudge:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.spec = f"human:{path}"

    def evaluate(self, items, eval_dir, models, base, margin) -> dict[str, Any]:
        """Section gsb from the votes (the margin does not apply: a human says "same" or not)."""
        return {"gsb": human_gsb(load_annotations(self.path, items), base)}


def parse_judge(spec: str, device: str | None = None, batch_size: int = 8) -> Judge:
    """ "oracle", "reward:DIR" or "human:FILE" -> a Judge (a reward model is loaded here)."""
    kind, _, arg = spec.partition(":")
    if kind == "oracle" and not arg:
        return OracleJudge()
    if kind == "reward" and arg:
        return PairwiseJudge.from_folder(arg, device, batch_size)
    if kind == "human" and arg:
        return HumanJudge(arg)
    raise UserError(f"--judge {spec!r}: use oracle, reward:DIR (a reward-model folder) or human:FILE (a JSONL)")


def check_judge(spec: str) -> None:
    """parse_judge's checks without loading anything (to fail before generation, which is slow)."""
    kind, _, arg = spec.partition(":")
    if kind == "reward" and arg:
        check_reward_folder(arg)
    elif kind == "human" and arg:
        if not Path(arg).is_file():
            raise UserError(f"--judge {spec}: no such annotation file {arg}")
    elif not (kind == "oracle" and not arg):
        raise UserError(f"--judge {spec!r}: use oracle, reward:DIR (a reward-model folder) or human:FILE (a JSONL)")


# --- the reward model's own accuracy ---


def reward_accuracy(reward, prefs_dir: str | Path, batch_size: int = 8) -> dict[str, Any]:
    """Two-order accuracy of a reward model on a preference folder's pairs (judged as held-out; eval.metrics).

    Returns results.json sections reward_accuracy[family][dim] (two-order), reward_accuracy_detail (with
    one-order accuracy, n, the position-bias flag and the order consistency) and the same per task row
    (reward_accuracy_by_task).
    """
    import torch
    from PIL import Image

    from onereward.data.prefs import load_pairs
    from onereward.io import load_rgb

    root = Path(prefs_dir)
    pairs = load_pairs(root)
    by: dict[tuple[str, str, tuple[int, int]], list[dict]] = {}
    for r in pairs:
        with Image.open(root / r["source"]) as im:  # the header only; load_pairs checked all four have one size
            size = im.size
        by.setdefault((r["task"], r["dimension"], size), []).append(r)
    rows = []
    for (task, dim, _), group in by.items():
        for i in range(0, len(group), batch_size):
            part = group[i : i + batch_size]
            win = _to_tensor([load_rgb(root / (r["image_a"] if r["winner"] == "a" else r["image_b"])) for r in part])
            lose = _to_tensor([load_rgb(root / (r["image_b"] if r["winner"] == "a" else r["image_a"])) for r in part])
            prompts = [r["prompt"] for r in part]
            with torch.no_grad():
                wl = reward.p_yes(win, lose, task, [dim], prompts)[:, 0].float().cpu().tolist()  # (B,)
                lw = reward.p_yes(lose, win, task, [dim], prompts)[:, 0].float().cpu().tolist()  # (B,)
            rows += [
                {"task": task, "dimension": dim, "p_yes_wl": a, "p_yes_lw": b} for a, b in zip(wl, lw, strict=True)
            ]
    detail = metrics.accuracy_detail(rows)
    accuracy = {fam: {dim: cell["two_order"] for dim, cell in dims.items()} for fam, dims in detail.items()}
    return {
        "reward_accuracy": accuracy,
        "reward_accuracy_detail": detail,
        "reward_accuracy_by_task": metrics.accuracy_detail(rows, by="task"),
    }
