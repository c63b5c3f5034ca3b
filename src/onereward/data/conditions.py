"""A folder of condition folders, as `select`, `candidates` and the RL pool (rl.data.FolderPool) take it: flat
(FOLDER/<id>/, as `onereward world` writes) or grouped by task (FOLDER/<task>/<id>/, a benchmark). Each condition
folder holds source.png, mask.png and meta.json naming its task (onereward.eval.benchmark gives the format)."""

from __future__ import annotations

from pathlib import Path

from onereward.errors import UserError
from onereward.io import load_json
from onereward.tasks import TASK_NAMES


def find_conditions(folder: str | Path) -> dict[str, list[Path]]:
    """{task: condition folders, sorted} under `folder`, flat or grouped by task (module docstring)."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(
            f"{root}: no such folder; pass a folder of condition folders (source.png, mask.png, meta.json)"
        )
    dirs = sorted({p.parent for pattern in ("*/meta.json", "*/*/meta.json") for p in root.glob(pattern)})
    if not dirs:
        raise UserError(f"{root}: no condition folders found (each needs source.png, mask.png and meta.json)")
    by_task: dict[str, list[Path]] = {}
    for d in dirs:
        meta = load_json(d / "meta.json")
        task = meta.get("task") if isinstance(meta, dict) else None
        if task not in TASK_NAMES:
            raise UserError(f"{d / 'meta.json'}: task {task!r} is not one of {', '.join(TASK_NAMES)}")
        if not (d / "source.png").is_file():
            raise UserError(f"{d}: no source.png; every condition folder needs source.png, mask.png and meta.json")
        by_task.setdefault(task, []).append(d)
    return by_task
