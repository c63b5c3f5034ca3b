"""Atomic training checkpoints that really resume.

A checkpoint is a folder `step-NNNNNNN/` written in full under a temporary name and renamed into place only when
complete (rename is atomic on POSIX), so a run killed mid-save leaves at worst a `.tmp-*` folder that nobody trusts
and the next save cleans up. `latest()` returns the newest complete checkpoint.

What a trainer saves is a dict of named parts; tensors-only dicts go to safetensors, the rest through torch.save.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from onereward.errors import UserError

_NAME = re.compile(r"^step-(\d{7})$")


def _is_flat_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def rng_state() -> dict[str, Any]:
    """Global RNG states (python, numpy, torch CPU and CUDA), for modules that draw from them (dropout)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(root: str | Path, step: int, parts: dict[str, Any], meta: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint `root/step-NNNNNNN` atomically; delete all but the newest `keep` complete ones."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name, obj in parts.items():
        if _is_flat_tensor_dict(obj):
            save_file({k: v.detach().contiguous().cpu() for k, v in obj.items()}, tmp / f"{name}.safetensors")
        else:
            torch.save(obj, tmp / f"{name}.pt")
    (tmp / "meta.json").write_text(json.dumps({**meta, "step": step, "saved_at": time.time()}, indent=2))
    for f in tmp.iterdir():  # make the bytes durable before the rename makes them visible
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():  # a re-save of the same step (e.g. after resume) replaces the old one
        shutil.rmtree(final)
    os.replace(tmp, final)
    _cleanup(root, keep)
    return final


def _cleanup(root: Path, keep: int) -> None:
    for stale in root.glob(".tmp-step-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid != str(os.getpid()):
            shutil.rmtree(stale, ignore_errors=True)
    for old in complete(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def complete(root: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name) and (p / "meta.json").is_file()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest(root: str | Path) -> Path | None:
    found = complete(root)
    return found[-1] if found else None


def load(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(parts, meta) of one checkpoint folder."""
    path = Path(path)
    if not (path / "meta.json").is_file():
        raise UserError(f"{path}: not a complete checkpoint (no meta.json); resume from another or start fresh")
    parts: dict[str, Any] = {}
    for f in sorted(path.iterdir()):
        if f.suffix == ".safetensors":
            parts[f.stem] = load_file(f)
        elif f.suffix == ".pt":
            parts[f.stem] = torch.load(f, map_location="cpu", weights_only=False)
    return parts, json.loads((path / "meta.json").read_text())
