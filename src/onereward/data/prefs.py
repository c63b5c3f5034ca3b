"""Preference data: pairwise rows on disk, their validation, and loading as a Hugging Face dataset.

Format (a folder):
    pairs.jsonl         one JSON object per line (a pair judged on one dimension), fields below
    images/...          every image the rows name, paths relative to the folder
    meta.json           optional: how the data was made (generator, counts, drop rate)

Row fields:
    id          unique string
    condition   string naming the (source, mask, prompt) triplet; pairs sharing it must sit in the same split
    task        a task name from the task table (fill, text, extend, extend_noprompt, removal)
    prompt      the user prompt ("" for tasks without one)
    source      path of the source image          mask   path of the mask (white = generated region)
    image_a     path of one candidate              image_b  path of the other
    dimension   one of the task's evaluation dimensions
    winner      "a" or "b"

`load_pairs(folder)` validates every row and raises UserError naming the row and field; `as_dataset(folder)`
returns a `datasets.Dataset` of the same rows (image paths made absolute).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from PIL import Image

from onereward.errors import UserError
from onereward.io import atomic_write, read_jsonl
from onereward.tasks import TASKS

FIELDS = ("id", "condition", "task", "prompt", "source", "mask", "image_a", "image_b", "dimension", "winner")
IMAGE_FIELDS = ("source", "mask", "image_a", "image_b")
MANIFEST = "pairs.jsonl"


def validate_rows(rows: Iterable[dict[str, Any]], root: str | Path, check_images: bool = True) -> list[dict]:
    """Check each row; the first problem raises UserError naming the row (line number and id) and the field."""
    root = Path(root)
    seen: dict[str, int] = {}
    sizes: dict[Path, tuple[int, int]] = {}
    out = []
    for line, row in enumerate(rows, start=1):
        where = f"{root / MANIFEST} line {line} (id {row.get('id', '?')!r})"
        for f in FIELDS:
            if f not in row:
                raise UserError(f"{where}: field {f!r} is missing; every row needs {', '.join(FIELDS)}")
        if row["id"] in seen:
            raise UserError(f"{where}: field 'id' duplicates line {seen[row['id']]}; ids must be unique")
        seen[row["id"]] = line
        task = TASKS.get(row["task"])
        if task is None:
            raise UserError(f"{where}: field 'task' is {row['task']!r}; use one of {', '.join(TASKS)}")
        if row["dimension"] not in task.dimensions:
            raise UserError(
                f"{where}: field 'dimension' is {row['dimension']!r}, not a dimension of task {task.name!r}"
                f" ({', '.join(task.dimensions)})"
            )
        if row["winner"] not in ("a", "b"):
            raise UserError(f"{where}: field 'winner' is {row['winner']!r}; use 'a' or 'b'")
        if check_images:
            shape = None
            for f in IMAGE_FIELDS:
                path = root / row[f]
                if path not in sizes:
                    if not path.is_file():
                        raise UserError(f"{where}: field {f!r} names {row[f]!r}, which does not exist under {root}")
                    try:
                        with Image.open(path) as im:
                            sizes[path] = im.size
                    except OSError:
                        raise UserError(f"{where}: field {f!r} names {row[f]!r}, not a readable image") from None
                if shape is None:
                    shape = sizes[path]
                elif sizes[path] != shape:
                    raise UserError(
                        f"{where}: field {f!r} is {sizes[path][0]}x{sizes[path][1]} but source is"
                        f" {shape[0]}x{shape[1]}; all four images of a row must have one size"
                    )
        out.append(row)
    return out


def read_manifest(folder: str | Path) -> list[dict[str, Any]]:
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise UserError(f"{folder}: no {MANIFEST}; a preference folder holds {MANIFEST} and its images")
    return [row for _, row in read_jsonl(path, "{" + ", ".join(FIELDS) + "}")]


def load_pairs(folder: str | Path, check_images: bool = True) -> list[dict[str, Any]]:
    return validate_rows(read_manifest(folder), folder, check_images=check_images)


def write_pairs(folder: str | Path, rows: list[dict[str, Any]]) -> Path:
    """Validate and write the manifest atomically (images must already be in place)."""
    folder = Path(folder)
    validate_rows(rows, folder)
    text = "".join(json.dumps({f: r[f] for f in FIELDS}) + "\n" for r in rows)
    return atomic_write(folder / MANIFEST, lambda tmp: Path(tmp).write_text(text))


def as_dataset(folder: str | Path):
    """The validated rows as a `datasets.Dataset`, with absolute image paths."""
    import datasets

    folder = Path(folder).resolve()
    rows = load_pairs(folder)
    cols = {f: [r[f] for r in rows] for f in FIELDS}
    for f in IMAGE_FIELDS:
        cols[f] = [str(folder / p) for p in cols[f]]
    return datasets.Dataset.from_dict(cols)


def split_by_condition(rows: list[dict], held_out: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Train/held-out split by condition (never split one condition's pairs across the two)."""
    conds = sorted({r["condition"] for r in rows})
    random.Random(seed).shuffle(conds)
    held = set(conds[: round(len(conds) * held_out)])
    return [r for r in rows if r["condition"] not in held], [r for r in rows if r["condition"] in held]
