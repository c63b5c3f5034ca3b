"""CLI commands of the eval area (registered in onereward.cli). Thin: parse, call, show."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onereward.eval.report import write_report


def report(
    run_dir: Annotated[Path, typer.Argument(help="folder of a run, holding results.json (e.g. runs/demo)")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="the page to write [RUN_DIR/report.html]")] = None,
) -> Path:
    """Write a self-contained HTML report of a run: tables beside the paper's, RL curves, image grids, costs."""
    path = write_report(run_dir, out)
    typer.echo(f"wrote {path}")
    return path
