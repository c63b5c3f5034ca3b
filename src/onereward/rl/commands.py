"""`onereward train`, `onereward refs` and `onereward export`: preset -> YAML -> --set overrides -> the trainer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from onereward.config import Config, apply_overrides, load_yaml
from onereward.errors import UserError
from onereward.presets import get_preset

PresetOpt = Annotated[str, typer.Option(help="named run: toy (embedded default) or flux-fill-dev (GPUs)")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML file of overrides: {section: {field: value}}")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override one field: section.field=value (repeat)")]


def build_config(preset: str, config: Path | None, overrides: list[str] | None) -> Config:
    cfg = get_preset(preset)
    if config is not None:
        load_yaml(cfg, config)
    apply_overrides(cfg, overrides or [])
    for name in ("policy", "reward"):
        path = getattr(cfg.model, name)
        if not path:
            raise UserError(f"model.{name} is empty; pass --set model.{name}=FOLDER")
        if not Path(path).exists() and os.environ.get("HF_HUB_OFFLINE", "1") == "1":
            raise UserError(
                f"model.{name}: no folder {path} (and the hub is off); build it first, pass --set model.{name}=DIR,"
                " or set HF_HUB_OFFLINE=0 to fetch a hub id"
            )
    return cfg.check()


def train_command(
    preset: PresetOpt = "toy",
    config: ConfigOpt = None,
    set_: SetOpt = None,
    resume: Annotated[bool, typer.Option(help="continue from the newest complete checkpoint in log.out")] = False,
    print_config: Annotated[
        bool, typer.Option(help="print the resolved config as YAML (a valid --config file) and exit")
    ] = False,
) -> None:
    """Multi-task reward feedback learning (OneReward Algorithm 1 'standard' or 2 'dynamic')."""
    from onereward.rl.trainer import train

    cfg = build_config(preset, config, set_)
    if print_config:
        import yaml

        typer.echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False).rstrip())
        return
    if cfg.model.reward_accuracy and not Path(cfg.model.reward_accuracy).is_file():
        cfg.model.reward_accuracy = ""  # no measured accuracy: every dimension enters the loss
    out = train(cfg, resume=resume)
    from accelerate import PartialState

    if PartialState().is_main_process:  # one line, however many processes trained
        typer.echo(f"run folder: {out}")


def refs_command(
    out: Annotated[Path, typer.Option(help="folder for the reference images (refs-*.safetensors)")],
    preset: PresetOpt = "toy",
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Precompute the frozen reference's images for the RL pool (Algorithm 1); run under torchrun to parallelise."""
    from onereward.rl.trainer import build_ref_cache

    cfg = build_config(preset, config, set_)
    cfg.data.ref_cache = ""
    typer.echo(f"reference cache: {build_ref_cache(cfg, out)}")


def export_command(
    run: Annotated[Path, typer.Option(help="run folder of `onereward train` (its log.out)")],
    out: Annotated[Path, typer.Option(help="new folder: transformer/ (full) or pytorch_lora_weights.safetensors")],
    step: Annotated[int | None, typer.Option(help="checkpoint step (default: the newest)")] = None,
    weights: Annotated[str, typer.Option(help="policy, or ema (the EMA of the trained tensors)")] = "policy",
) -> None:
    """Write one training checkpoint as a loadable transformer folder or LoRA file (to evaluate it with `eval`)."""
    from onereward.rl.export import export_checkpoint

    typer.echo(f"wrote {export_checkpoint(run, out, step=step, weights=weights)}")
