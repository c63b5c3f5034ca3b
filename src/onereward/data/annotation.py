"""Preference data from people: candidates to label (`onereward candidates`), and labels to pairs (`import-labels`).

The paper's data (PAPER.md section 1): per condition, N = 4 candidates from the base model with randomised inference
settings; annotators pick the best and the worst candidate per evaluation dimension; each (best, worst) is a pair.
The toy world's `onereward collect` does it all at once with a simulated annotator. For real images and people:

1. `candidates(model, conditions, out)`: for every condition folder (flat or by task: onereward.data.conditions),
   N candidates, each with its own steps, true CFG, negative prompt ("nsfw" or none, when CFG is on) and noise seed,
   drawn from (seed, condition, candidate) alone. Each candidate is exactly `onereward fill` with those settings
   (candidates.json records them), so any one can be regenerated alone. Written:
       OUT/<condition>/  the input folder's files, c0.png .. c<N-1>.png, candidates.json (written last)
       OUT/run.json      the model and the settings' ranges (a rerun with others is refused)
       OUT/to_label.jsonl one row per (condition, dimension): condition, task, prompt, dimension, its definition,
                         candidates, and "best": null, "worst": null for the annotator to fill in
       OUT/label.html    the same rows as a page to label them in a browser, which downloads labels.jsonl
   A condition whose candidates.json exists is done: a killed run continues where it stopped. Launched as several
   processes (torchrun, accelerate launch --multi_gpu), they split the conditions; the main one writes the sheet.
2. `import_labels(candidates_dir, labels, out)`: the filled-in rows (any JSONL with condition, dimension, best,
   worst; best/worst name candidates, "c2"; a row left null is skipped and counted) become a preference folder in
   onereward.data.prefs' format, ready for `train-reward` and `eval-reward`. Image order within a pair is drawn at
   random (seeded), so position says nothing about the winner. Every problem names the labels file's line.
"""

from __future__ import annotations

import json
import shutil
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onereward.data.conditions import find_conditions
from onereward.data.label_page import write_label_page
from onereward.errors import UserError
from onereward.io import atomic_dir, atomic_write, load_json, occupied, read_jsonl, save_image, save_json
from onereward.tasks import DIMENSIONS, NEGATIVE_PROMPT, TASK_NAMES, TASKS

RUN = "run.json"
CANDIDATES = "candidates.json"
TO_LABEL = "to_label.jsonl"


@dataclass
class CandidateConfig:
    n: int = 4  # candidates per condition (the paper: 4)
    steps: tuple[int, ...] = (20, 28, 35, 50)  # Euler steps, one drawn per candidate
    true_cfg: tuple[float, ...] = (1.0, 2.0, 4.0, 6.0)  # true CFG scales (1 = off), one drawn per candidate
    negative_prob: float = 0.5  # with true CFG on: P(negative prompt "nsfw"), else the empty negative prompt
    guidance: float | None = None  # FLUX distilled guidance; None = the model's default
    seed: int = 0

    def check(self) -> None:
        if self.n < 2:
            raise UserError(
                f"--per-condition {self.n}: an annotator needs at least 2 candidates to pick a best and a worst"
            )
        if not self.steps or any(s < 1 for s in self.steps):
            raise UserError(f"--steps {list(self.steps)}: give step counts >= 1")
        if not self.true_cfg or any(c < 1 for c in self.true_cfg):
            raise UserError(f"--true-cfg {list(self.true_cfg)}: give scales >= 1 (1 = off)")
        if not 0 <= self.negative_prob <= 1:
            raise UserError(f"negative_prob {self.negative_prob}: give a probability in [0, 1]")


def draw_settings(cfg: CandidateConfig, condition: str) -> list[dict[str, Any]]:
    """The N candidates' settings of one condition, from (seed, condition name, candidate index) alone."""
    out = []
    for j in range(cfg.n):
        rng = np.random.default_rng([cfg.seed, zlib.crc32(condition.encode()), j])
        true_cfg = float(rng.choice(cfg.true_cfg))
        negative = (NEGATIVE_PROMPT if rng.random() < cfg.negative_prob else "") if true_cfg != 1 else None
        out.append(
            {
                "name": f"c{j}",
                "steps": int(rng.choice(cfg.steps)),
                "true_cfg": true_cfg,
                "negative_prompt": negative,
                "seed": int(rng.integers(0, 2**31 - 1)),
            }
        )
    return out


def candidates(
    model: str,
    conditions: str | Path,
    out: str | Path,
    cfg: CandidateConfig,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write N candidates per condition and the labelling sheet (module docstring); return run.json's content +
    {"generated", "skipped"} (conditions, over all processes)."""
    import torch
    from accelerate import PartialState
    from tqdm import tqdm

    from onereward.eval.benchmark import load_item
    from onereward.eval.generate import parse_model_spec
    from onereward.infer import fill, load_model

    cfg.check()
    src, out = Path(conditions), Path(out)
    by_task = find_conditions(src)
    spec = parse_model_spec(model)
    if spec.kind != "fill":
        raise UserError(f"--model {model}: candidates come from a fill model (a pipeline folder), not OpenCV")
    run = {"model": spec.key(), "settings": asdict(cfg)}
    if (out / RUN).is_file():
        old = load_json(out / RUN)
        if old != json.loads(json.dumps(run)):
            raise UserError(f"{out}: made with {old}, not {run}; use another --out or the same settings")
    elif occupied(out):
        raise UserError(f"--out {out}: exists and is not a candidates folder; pick a new path")
    if out.resolve().is_relative_to(src.resolve()):
        raise UserError(f"--out {out}: inside the conditions folder {src}; pick a path outside it")
    state = PartialState(cpu=not torch.cuda.is_available())
    rank, world = state.process_index, state.num_processes
    todo = [
        (t, d) for t in TASK_NAMES for d in by_task.get(t, []) if not (out / d.relative_to(src) / CANDIDATES).is_file()
    ]
    state.wait_for_everyone()  # every process has listed what is left before any of them writes
    if rank == 0:
        save_json(out / RUN, run)
    mine = todo[rank::world]
    device = device or (str(state.device) if world > 1 else None)
    loaded = load_model(spec.path, spec.transformer, spec.lora, device=device) if mine else None
    desc = "candidates" + (f" [{rank + 1}/{world}]" if world > 1 else "")
    for task, d in tqdm(mine, desc=desc, unit="condition", disable=not progress or rank > 0):
        rel = d.relative_to(src)
        cond = load_item(d, task)  # validates the folder (UserError names the file)
        settings = draw_settings(cfg, str(rel))
        dest = out / rel
        if dest.exists():
            shutil.rmtree(dest)  # a condition cut off half-way starts again
        shutil.copytree(d, dest)
        for s in settings:
            negative = s["negative_prompt"] or ""
            img = fill(cond.source, cond.mask, task, cond.prompt, negative, s["steps"], s["true_cfg"], cfg.guidance,
                       s["seed"], model=loaded)  # fmt: skip
            save_image(dest / f"{s['name']}.png", img)
        save_json(dest / CANDIDATES, {"task": task, "user_prompt": _user_prompt(task, cond), "candidates": settings})
    state.wait_for_everyone()
    if rank == 0:
        _write_sheet(src, out, by_task)
    state.wait_for_everyone()
    return {**run, "generated": len(todo), "skipped": sum(map(len, by_task.values())) - len(todo)}


def _user_prompt(task: str, cond) -> str:
    return cond.prompt if TASKS[task].uses_prompt else ""


def _write_sheet(src: Path, out: Path, by_task: dict[str, list[Path]]) -> None:
    rows = []
    for task in TASK_NAMES:
        for d in by_task.get(task, []):
            rel = d.relative_to(src)
            doc = load_json(out / rel / CANDIDATES)
            names = [c["name"] for c in doc["candidates"]]
            for dim in TASKS[task].dimensions:
                rows.append({"condition": str(rel), "task": task, "prompt": doc["user_prompt"], "dimension": dim,
                             "definition": DIMENSIONS[dim], "candidates": names,
                             "best": None, "worst": None})  # fmt: skip
    text = "".join(json.dumps(r) + "\n" for r in rows)
    atomic_write(out / TO_LABEL, lambda tmp: Path(tmp).write_text(text))
    write_label_page(out, rows)


def _read_labels(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if not path.is_file():
        raise UserError(f"--labels {path}: no such file; fill in {TO_LABEL} from `onereward candidates`")
    return read_jsonl(path, "{condition, dimension, best, worst}")


def import_labels(candidates_dir: str | Path, labels: str | Path, out: str | Path, seed: int = 0) -> dict[str, Any]:
    """Turn labelled rows into a preference folder (module docstring); return its meta.json content."""
    from onereward.data.prefs import write_pairs

    root, labels, out = Path(candidates_dir), Path(labels), Path(out)
    if not (root / RUN).is_file():
        raise UserError(f"--candidates {root}: not a folder from `onereward candidates` (no {RUN})")
    if occupied(out):
        raise UserError(f"--out {out}: exists and is not an empty folder; pick a new path")
    rng = np.random.default_rng(seed)
    pairs, used, seen, unlabelled = [], set(), {}, 0
    for line, row in _read_labels(labels):
        where = f"{labels} line {line}"
        cond, dim = row.get("condition"), row.get("dimension")
        doc_path = root / str(cond) / CANDIDATES
        if not isinstance(cond, str) or not doc_path.is_file():
            raise UserError(f"{where}: condition {cond!r} is not in {root} (no {CANDIDATES} there)")
        doc = load_json(doc_path)
        task = doc["task"]
        if dim not in TASKS[task].dimensions:
            raise UserError(f"{where}: dimension {dim!r} is not one of task {task!r}'s "
                            f"({', '.join(TASKS[task].dimensions)})")  # fmt: skip
        if (cond, dim) in seen:
            raise UserError(f"{where}: ({cond}, {dim}) is labelled again (first on line {seen[cond, dim]}); keep one")
        seen[cond, dim] = line
        best, worst = row.get("best"), row.get("worst")
        if best in (None, "") and worst in (None, ""):
            unlabelled += 1
            continue
        names = [c["name"] for c in doc["candidates"]]
        for field, value in (("best", best), ("worst", worst)):
            if value not in names:
                raise UserError(f"{where}: {field} is {value!r}; name one of the candidates {', '.join(names)}")
        if best == worst:
            raise UserError(f"{where}: best and worst are both {best!r}; pick two different candidates")
        first, second = (best, worst) if rng.random() < 0.5 else (worst, best)
        img = f"images/{cond}"
        pairs.append({
            "id": f"{cond}/{dim}", "condition": cond, "task": task, "prompt": doc["user_prompt"],
            "source": f"{img}/source.png", "mask": f"{img}/mask.png", "image_a": f"{img}/{first}.png",
            "image_b": f"{img}/{second}.png", "dimension": dim, "winner": "a" if first == best else "b",
        })  # fmt: skip
        used.add(cond)
    if not pairs:
        raise UserError(f"{labels}: no labelled row (every best/worst is empty); label some, then import")
    counts: dict[str, dict[str, int]] = {}
    for p in pairs:
        counts.setdefault(p["task"], {}).setdefault(p["dimension"], 0)
        counts[p["task"]][p["dimension"]] += 1
    meta = {"generator": "onereward import-labels", "candidates": str(root), "labels": str(labels), "seed": seed,
            "pairs": len(pairs), "unlabelled": unlabelled, "pairs_per_task": counts}  # fmt: skip
    with atomic_dir(out) as tmp:
        for cond in sorted(used):
            shutil.copytree(root / cond, tmp / "images" / cond, ignore=shutil.ignore_patterns("*.json", "target.png"))
        write_pairs(tmp, pairs)  # validated as every preference folder is, before the folder is put in place
        save_json(tmp / "meta.json", meta)
    return meta
