"""CLI commands of data: `select` (CLIP + K-means subset), `build-tiny-clip`, and preference data from people:
`candidates` and `import-labels`. Thin: parse, call, show.

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


def _numbers(text: str, kind, option: str) -> tuple:
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        from onereward.errors import UserError

        raise UserError(f"{option} {text!r}: give comma-separated numbers, e.g. 20,28,50") from None


def candidates_command(
    model: Annotated[str, Opt(help="fill model: a pipeline folder, FOLDER:transformer=DIR or FOLDER:lora=FILE")],
    conditions: Annotated[
        Path, Opt(help="folder of condition folders, flat (DIR/<id>/) or by task (DIR/<task>/<id>/)")
    ],
    out: Annotated[Path, Opt(help="folder: per condition its files + c0.png..; to_label.jsonl + label.html to label")],
    per_condition: Annotated[int, Opt(help="candidates per condition (the paper: 4)")] = 4,
    steps: Annotated[str, Opt(help="Euler step counts to draw from")] = "20,28,35,50",
    true_cfg: Annotated[str, Opt(help="true CFG scales to draw from (1 = off)")] = "1,2,4,6",
    guidance: Annotated[float | None, Opt(help="FLUX guidance (default: the model's)")] = None,
    seed: Annotated[int, Opt(help="seed of the candidates' settings and noise")] = 0,
    device: Annotated[str | None, Opt(help="cpu or cuda (default: cuda when available)")] = None,
) -> None:
    """N candidates per condition with randomised settings, and the sheet annotators fill in (best/worst)."""
    from onereward.data.annotation import TO_LABEL, CandidateConfig, candidates

    cfg = CandidateConfig(
        n=per_condition, steps=_numbers(steps, int, "--steps"), true_cfg=_numbers(true_cfg, float, "--true-cfg"),
        guidance=guidance, seed=seed,
    )  # fmt: skip
    done = candidates(model, conditions, out, cfg, device=device)
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    typer.echo(f"{done['generated']} conditions generated, {done['skipped']} already there; "
               f"label {out / TO_LABEL}, then `onereward import-labels`")  # fmt: skip


def import_labels_command(
    candidates: Annotated[Path, Opt(help="folder from `onereward candidates`")],
    labels: Annotated[Path, Opt(help="JSONL rows {condition, dimension, best, worst} (the filled-in to_label.jsonl)")],
    out: Annotated[Path, Opt(help="new preference folder (pairs.jsonl + images/) for train-reward / eval-reward")],
    seed: Annotated[int, Opt(help="seed of the image order within pairs")] = 0,
) -> None:
    """Best/worst labels per dimension -> (winner, loser) pairs in the preference-data format."""
    from onereward.data.annotation import import_labels

    meta = import_labels(candidates, labels, out, seed=seed)
    typer.echo(f"wrote {meta['pairs']} pairs to {out} ({meta['unlabelled']} rows left unlabelled)")
