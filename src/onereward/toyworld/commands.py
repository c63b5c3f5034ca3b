"""CLI commands of the toy world: `world`, `score` and `world-grid`. Thin: parse, call, show.

Heavy imports happen inside the commands so that `onereward --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from typer import Option as Opt

from onereward.errors import UserError


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)


def world(
    task: Annotated[str, Opt(help="fill, text, extend, extend_noprompt or removal")],
    out: Annotated[Path, Opt(help="output folder: OUT/000, OUT/001, ... each a condition folder")],
    n: Annotated[int, Opt("--n", help="how many conditions")] = 1,
    seed: Annotated[int, Opt(help="run seed; each item's seed is derived from (seed, split, task, index)")] = 0,
    size: Annotated[int, Opt(help="image size in pixels (a multiple of 8, e.g. 64, 96, 128)")] = 64,
    split: Annotated[str, Opt(help="seed namespace: train, pref, rl, val, eval or bench")] = "train",
) -> None:
    """Write toy-world conditions (source.png, mask.png, target.png, meta.json) for one task."""
    from onereward.tasks import TASK_NAMES
    from onereward.toyworld.world import SPLITS, make_conditions, save_condition

    _check(task in TASK_NAMES, f"--task {task!r} is not a task; use one of {', '.join(TASK_NAMES)}")
    _check(n >= 1, f"--n {n}: give at least 1")
    _check(seed >= 0, f"--seed {seed}: give a seed >= 0")
    _check(split in SPLITS, f"--split {split!r}: use one of {', '.join(SPLITS)}")
    _check(size % 8 == 0 and 48 <= size <= 1024, f"--size {size}: use a multiple of 8 between 48 and 1024")
    _check(not out.exists() or out.is_dir(), f"--out {out}: exists and is not a folder; pick another path")
    width = max(3, len(str(n - 1)))
    for i, cond in enumerate(make_conditions(task, n, seed=seed, size=size, split=split)):
        save_condition(cond, out / f"{i:0{width}d}")
    typer.echo(f"wrote {n} {task} condition(s) of {size}x{size} to {out}")


def score(
    condition: Annotated[Path, Opt(help="a condition folder written by `onereward world`")],
    image: Annotated[Path, Opt(help="the generated image (PNG/JPEG), the condition's size")],
) -> None:
    """Score an image against a toy-world condition with the oracle; prints {"scores": {...}, "usable": bool}."""
    from onereward.io import load_rgb
    from onereward.toyworld.oracle import score as oracle_score
    from onereward.toyworld.oracle import usable
    from onereward.toyworld.world import load_condition

    cond = load_condition(condition)
    img = load_rgb(image)
    h, w = cond.source.shape[:2]
    _check(img.shape[:2] == (h, w), f"{image}: is {img.shape[1]}x{img.shape[0]}, the condition is {w}x{h}; resize it")
    scores = oracle_score(cond, img)
    rounded = {k: round(v, 4) for k, v in scores.items()}
    typer.echo(json.dumps({"scores": rounded, "usable": usable(cond.task, scores)}))


def world_grid(
    out: Annotated[Path, Opt(help="PNG to write")] = Path("docs/toyworld.png"),
    per_task: Annotated[int, Opt(help="conditions per task")] = 3,
    seed: Annotated[int, Opt(help="run seed")] = 0,
    size: Annotated[int, Opt(help="image size")] = 64,
) -> None:
    """Render a picture of the toy world: per task, conditions as source with mask overlay beside the target."""
    from onereward.toyworld.grid import save_world_grid

    _check(1 <= per_task <= 8, f"--per-task {per_task}: give 1 to 8")
    _check(size % 8 == 0 and 48 <= size <= 256, f"--size {size}: use a multiple of 8 between 48 and 256")
    path = save_world_grid(out, per_task=per_task, seed=seed, size=size)
    typer.echo(f"wrote {path} ({path.stat().st_size // 1024} KB)")
