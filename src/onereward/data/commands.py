"""CLI commands of data curation: `select` (CLIP + K-means subset) and `build-tiny-clip`. Thin: parse, call, show.

Heavy imports happen inside the commands so that `onereward --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer import Option as Opt


def select_command(
    conditions: Annotated[
        Path, Opt(help="folder of condition folders, flat (DIR/<id>/) or by task (DIR/<task>/<id>/)")
    ],
    out: Annotated[Path, Opt(help="new folder: the chosen condition folders, same layout, + selection.json")],
    clip: Annotated[
        str, Opt(help="CLIP (vision) folder or hub id, e.g. openai/clip-vit-large-patch14; toy: build-tiny-clip")
    ],
    fraction: Annotated[float | None, Opt(help="keep this share of each task (rounded up)")] = None,
    per_task: Annotated[int | None, Opt(help="keep at most this many conditions of each task")] = None,
    seed: Annotated[int, Opt(help="K-means seed: the same seed, the same subset")] = 0,
    device: Annotated[str, Opt(help="cpu or cuda")] = "cpu",
) -> None:
    """Keep a diverse subset of conditions: CLIP embeddings, K-means per task, the condition nearest each centre."""
    from onereward.data.select import select

    report = select(conditions, out, clip, fraction=fraction, per_task=per_task, seed=seed, device=device)
    for task, r in report["tasks"].items():
        typer.echo(f"{task:16s} {r['chosen']:5d} of {r['available']:5d}")
    typer.echo(f"wrote {out}")


def build_tiny_clip_command(
    out: Annotated[Path, Opt(help="folder to write (CLIPVisionModel + image processor)")],
    size: Annotated[int, Opt(help="image side the processor resizes to")] = 64,
    seed: Annotated[int, Opt(help="seed of the random weights")] = 0,
) -> None:
    """Save a tiny CLIP vision tower with random weights (the embedded default has no pretrained CLIP)."""
    from onereward.data.select import build_tiny_clip

    typer.echo(f"wrote {build_tiny_clip(out, size=size, seed=seed)}")
