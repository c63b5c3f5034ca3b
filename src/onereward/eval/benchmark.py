"""The evaluation benchmark: a folder of condition folders, either the toy one (with ground truth) or your own images.

Folder format (one folder per item, grouped by task; the item's folder name is its id, unique over the benchmark):

    BENCH/<task>/<id>/source.png    the image, any size, RGB (RGBA is composited on white, as io.load_rgb)
    BENCH/<task>/<id>/mask.png      same size; white (grey >= 50%) = the region to generate
    BENCH/<task>/<id>/meta.json     {"task": "<task>", "prompt": "<what to generate>"}
    BENCH/<task>/<id>/target.png    optional: the ground truth (the toy benchmark has it; real photos do not)

<task> is a row of onereward.tasks (fill, text, extend, extend_noprompt, removal) and must match meta.json's "task".
"prompt" is required (non-empty) for fill, text and extend; for extend_noprompt and removal it may be left out and
the task's fixed prompt is used, as at inference. Other keys of meta.json are kept in `Condition.meta`.

A real benchmark can be judged by a reward model or by human annotations (onereward.eval.judges); only the toy
benchmark, whose meta.json also holds the scene (`save_condition`'s {"task", "prompt", "meta": {..., "scene"}}), can
be judged by the toy oracle. For such items `Condition.prompt` is what the fill model sees, as everywhere else.

The toy benchmark mirrors the paper's composition (PAPER.md section 4): 130 image-fill items of which 30 are text
rendering, 200 image-extend items (100 with a prompt, 100 without) and 100 object removals, drawn from the toy
world's "bench" split, a seed namespace no training or validation code uses.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

from onereward.errors import UserError
from onereward.infer import check_pair
from onereward.io import load_json, load_mask, load_rgb, save_json
from onereward.tasks import TASK_NAMES, TASKS
from onereward.toyworld.world import FILES, Condition, load_condition, make_conditions, save_condition

# The paper's benchmark: 130 fill (a share of it text rendering; 30 is INFERRED, the paper gives no split),
# 100 + 100 extend, 100 removal.
PAPER_COUNTS: dict[str, int] = {"fill": 100, "text": 30, "extend": 100, "extend_noprompt": 100, "removal": 100}
SPLIT = "bench"
SPEC_FILE = "benchmark.json"  # written by toy_benchmark: how the folder was made, so a rerun can reuse it
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class BenchItem(NamedTuple):
    id: str  # the item folder's name, unique over the benchmark
    task: str
    cond: Condition  # cond.target is None when the folder has no target.png


def has_truth(cond: Condition) -> bool:
    """Whether the toy oracle can judge this condition (a toy-world scene and its ground truth)."""
    return cond.target is not None and "scene" in cond.meta


def item_id(task: str, index: int) -> str:
    return f"{task}-{index:04d}"


def check_counts(counts: dict[str, int] | None) -> dict[str, int]:
    """Items per task: the paper's composition, or `counts` (tasks left out get 0)."""
    if counts is None:
        return dict(PAPER_COUNTS)
    bad = [t for t in counts if t not in TASKS]
    if bad:
        raise UserError(f"benchmark counts name unknown task(s) {bad}; use {', '.join(TASK_NAMES)}")
    if any(not isinstance(n, int) or n < 0 for n in counts.values()) or not any(counts.values()):
        raise UserError(f"benchmark counts {counts} must be whole numbers >= 0, at least one of them > 0")
    return {t: int(counts.get(t, 0)) for t in TASK_NAMES}


def toy_benchmark(out_dir: str | Path, size: int = 64, seed: int = 0, counts: dict[str, int] | None = None) -> Path:
    """Write the held-out toy benchmark (split "bench") as out_dir/<task>/<id>/ condition folders; return out_dir.

    Reruns are cheap: items already on disk are kept. A folder made with another size, seed or counts is refused.
    """
    out = Path(out_dir)
    counts = check_counts(counts)
    spec = {"kind": "toy", "split": SPLIT, "size": int(size), "seed": int(seed), "counts": counts}
    if (out / SPEC_FILE).is_file():
        old = load_json(out / SPEC_FILE)
        if old != spec:
            raise UserError(
                f"{out / SPEC_FILE}: this benchmark was built with {old}, not {spec}; "
                "use another output folder or delete this one"
            )
    elif out.is_dir() and any(out.iterdir()):
        raise UserError(f"{out}: not empty and not a toy benchmark (no {SPEC_FILE}); choose an empty folder")
    for task, n in counts.items():
        missing = [i for i in range(n) if not all((out / task / item_id(task, i) / f).is_file() for f in FILES)]
        if not missing:
            continue
        # make_conditions is deterministic per index, so building all n and writing the missing ones is exact
        conds = make_conditions(task, n, seed=seed, size=size, split=SPLIT)
        for i in missing:
            save_condition(conds[i], out / task / item_id(task, i))
    save_json(out / SPEC_FILE, spec)
    return out


# --- loading ---


def _load_real(folder: Path, task: str) -> Condition:
    """An item folder without a toy scene: source, mask, meta.json {task, prompt}, optional target."""
    for name in ("source.png", "mask.png", "meta.json"):
        if not (folder / name).is_file():
            raise UserError(f"{folder / name}: missing; a benchmark item holds source.png, mask.png and meta.json")
    doc = load_json(folder / "meta.json")
    if not isinstance(doc, dict):
        raise UserError(f'{folder / "meta.json"}: must be a JSON object like {{"task": "fill", "prompt": "..."}}')
    prompt = doc.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise UserError(f"{folder / 'meta.json'}: 'prompt' is {prompt!r}; give a string")
    try:
        model_prompt = TASKS[task].prompt_for(prompt)
    except ValueError:
        raise UserError(
            f"{folder / 'meta.json'}: task {task!r} needs a non-empty 'prompt' (what to generate)"
        ) from None
    source, mask = load_rgb(folder / "source.png"), load_mask(folder / "mask.png")
    check_pair(source, mask, task, name=str(folder))
    target = None
    if (folder / "target.png").is_file():
        target = load_rgb(folder / "target.png")
        if target.shape != source.shape:
            raise UserError(f"{folder / 'target.png'}: is {target.shape[1]}x{target.shape[0]}, source.png is "
                            f"{source.shape[1]}x{source.shape[0]}; give them one size")  # fmt: skip
    meta = {k: v for k, v in doc.items() if k not in ("task", "prompt")}
    meta["user_prompt"] = prompt or ""
    return Condition(task, source, mask, model_prompt, target, meta)  # type: ignore[arg-type]  (target may be None)


def load_item(folder: Path, task: str) -> Condition:
    """One condition folder of `task`: the toy format (with its scene) or a real one (source, mask, meta.json)."""
    doc = load_json(folder / "meta.json") if (folder / "meta.json").is_file() else None
    if isinstance(doc, dict) and doc.get("task") != task:
        raise UserError(
            f"{folder / 'meta.json'}: says task {doc.get('task')!r} but the item sits in the {task!r} folder; "
            "move it or fix the task"
        )
    toy = isinstance(doc, dict) and isinstance(doc.get("meta"), dict) and "scene" in doc["meta"]
    if toy:
        return load_condition(folder)  # the toy format, fully validated (target.png required)
    return _load_real(folder, task)


def load_benchmark(bench_dir: str | Path, limit: int | None = None) -> list[BenchItem]:
    """Every item of a benchmark folder (format above), in task-table order then by id; `limit` caps items per task.

    Any problem raises UserError naming the file and what to do.
    """
    root = Path(bench_dir)
    if not root.is_dir():
        raise UserError(f"{root}: no such benchmark folder; build one with `onereward eval --toy` or see the format "
                        "in onereward.eval.benchmark")  # fmt: skip
    if limit is not None and limit < 1:
        raise UserError(f"limit {limit}: use at least 1 item per task")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in subdirs if p.name not in TASKS]
    if unknown:
        raise UserError(f"{root / unknown[0]}: not a task folder; a benchmark holds folders named after tasks "
                        f"({', '.join(TASK_NAMES)})")  # fmt: skip
    items: list[BenchItem] = []
    seen: dict[str, str] = {}
    for task in TASK_NAMES:
        if not (root / task).is_dir():
            continue
        folders = sorted(p for p in (root / task).iterdir() if p.is_dir() and not p.name.startswith("."))
        for folder in folders[:limit]:
            if not _ID.match(folder.name):
                raise UserError(f"{folder}: item names may hold letters, digits, '_', '.', '-' only (it becomes a "
                                "file name); rename it")  # fmt: skip
            if folder.name in seen:
                raise UserError(f"{folder}: id {folder.name!r} is also an item of {seen[folder.name]!r}; ids must be "
                                "unique over the benchmark (GSB matches outputs by id)")  # fmt: skip
            seen[folder.name] = task
            items.append(BenchItem(folder.name, task, load_item(folder, task)))
    if not items:
        raise UserError(f"{root}: no benchmark items; expected {root}/<task>/<id>/source.png, mask.png, meta.json")
    return items


def composition(items: list[BenchItem]) -> dict[str, int]:
    """Items per task, in task-table order."""
    counts = {t: sum(1 for it in items if it.task == t) for t in TASK_NAMES}
    return {t: n for t, n in counts.items() if n}
