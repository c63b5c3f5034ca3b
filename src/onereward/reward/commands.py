"""CLI commands of the reward model: `onereward build-tiny-rm`. Thin: parse, call, show.

Heavy imports (torch, transformers) happen inside the commands, so `onereward --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer import Option as Opt

from onereward.errors import UserError


def build_tiny_rm_command(
    out: Annotated[Path, Opt(help="Folder to write the model to (Qwen2.5-VL-7B-Instruct layout).")],
    preset: Annotated[str, Opt(help="toy (the toy world's reward model) or test (smallest).")] = "toy",
    seed: Annotated[int, Opt(help="Initialisation seed.")] = 0,
    overwrite: Annotated[bool, Opt(help="Replace a model already in the folder.")] = False,
) -> None:
    """Build an untrained tiny Qwen2.5-VL reward model from code, offline."""
    from onereward.reward.tiny import PRESETS, build_tiny_qwen_vl

    if preset not in PRESETS:
        raise UserError(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    if (out / "config.json").exists() and not overwrite:
        raise UserError(f"{out} already holds a model; choose another folder or pass --overwrite")
    _quiet_transformers()
    path = build_tiny_qwen_vl(out, preset, seed, overwrite=overwrite)
    typer.echo(f"wrote {path}")


def _quiet_transformers() -> None:
    """Progress bars ("Writing model shards") are noise in a CLI."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
