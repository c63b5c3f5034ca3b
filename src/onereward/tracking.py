"""What a training run logs, for `onereward train` and `onereward train-reward`.

Always `log.jsonl` (one line of scalars per logged step) and image grids as PNG files under `images/`. Besides, the
experiment trackers a user picks (`report_to`, comma-separated), through accelerate's tracking API: `tensorboard` by
default (event files under `tensorboard/`), or `wandb`, `mlflow`, `comet_ml`, `aim`, `clearml`, `dvclive`,
`swanlab`, `trackio` when their package is installed, or `none`. The run's configuration goes to each tracker at the
start; image grids go to TensorBoard and W&B. Everything happens on the main process only; the trainer's
`acc.end_training()` ends the trackers' runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from onereward.errors import UserError

PROJECT = "onereward"  # the trackers' project name (W&B: the project; the run is named after the run folder)
_PACKAGES = {"comet_ml": "comet-ml"}  # pip names that differ from the tracker's


def tracker_names(report_to: str) -> list[str]:
    """The trackers of `report_to` ("tensorboard,wandb", "none", ...), each checked to be known and installed."""
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    known = [t for t in LoggerType.list() if t != "all"]
    names = list(dict.fromkeys(n.strip() for n in report_to.split(",") if n.strip() not in ("", "none")))
    for n in names:
        if n not in known:
            raise UserError(f"report_to: unknown tracker {n!r}; use none or any of {', '.join(known)}")
        if LoggerType(n) not in get_available_trackers():
            raise UserError(f"report_to: {n} is not installed; pip install {_PACKAGES.get(n, n)}, or leave it out")
    return names


def accelerator_kwargs(out: Path, report_to: str) -> dict[str, Any]:
    """The Accelerator's arguments for these trackers (TensorBoard writes under out/tensorboard/)."""
    from accelerate.utils import ProjectConfiguration

    names = tracker_names(report_to)
    if not names:
        return {}
    return {"log_with": names, "project_config": ProjectConfiguration(str(out), logging_dir=str(out / "tensorboard"))}


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1e-5}} -> {"train.lr": 1e-5}; values other than bool/int/float/str as JSON text (trackers
    such as TensorBoard's hparams take scalars only)."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flat(v, key + "."))
        else:
            out[key] = v if isinstance(v, bool | int | float | str) else json.dumps(v)
    return out


class RunLogger:
    """Scalars to log.jsonl and the trackers, image grids to images/ and the trackers that take images."""

    def __init__(self, out: Path, acc, config: dict[str, Any]):
        self.acc, self.out = acc, out
        self.enabled = acc.is_main_process
        if self.enabled:
            out.mkdir(parents=True, exist_ok=True)
            if acc.log_with:
                acc.init_trackers(PROJECT, config=flat(config), init_kwargs={"wandb": {"name": out.name}})

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in values.items() if math.isfinite(float(v))}
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **clean}) + "\n")
        if self.acc.log_with:
            self.acc.log(clean, step=step)

    def grid(self, step: int, src, msk, ref, pol, n: int = 4) -> None:
        """Rows: source with the mask shown white, reference, policy; columns: the first n conditions."""
        if not self.enabled:
            return
        import torch

        from onereward.io import save_image

        shown = src[:n] * (1 - msk[:n]) + msk[:n]  # (n, 3, H, W)
        rows = [torch.cat(list(x[:n].float().cpu()), dim=2) for x in (shown, ref, pol)]  # (3, H, n W) each
        grid = torch.cat(rows, dim=1).permute(1, 2, 0).numpy()  # (3H, nW, 3) in [0, 1]
        save_image(self.out / "images" / f"step-{step:07d}.png", grid)
        for tracker in self.acc.trackers:
            if tracker.name == "tensorboard":
                tracker.log_images({"grid": grid[None]}, step=step, dataformats="NHWC")
            elif tracker.name == "wandb":
                tracker.log_images({"grid": [grid]}, step=step)
