"""Run logs: log.jsonl, and experiment trackers through accelerate (TensorBoard here; the others by name)."""

import json

import pytest
import torch
from accelerate import Accelerator
from accelerate.tracking import get_available_trackers

from onereward.config import Config, apply_overrides
from onereward.errors import UserError
from onereward.reward.train import RewardTrainConfig
from onereward.tracking import RunLogger, accelerator_kwargs, flat, tracker_names


def test_scalars_and_grids_reach_log_jsonl_images_and_tensorboard(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = Accelerator(cpu=True, **accelerator_kwargs(tmp_path, "tensorboard"))
    logger = RunLogger(tmp_path, acc, {"train": {"lr": 1e-3, "task_weights": {}}, "log": {"out": str(tmp_path)}})
    logger.scalars(1, {"loss": 0.5, "reward/fill/structure": 0.25, "broken": float("nan")})
    logger.scalars(2, {"loss": 0.4})
    src, msk = torch.rand(2, 3, 16, 16), (torch.rand(2, 1, 16, 16) > 0.5).float()
    logger.grid(2, src, msk, torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16))
    acc.end_training()

    lines = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert lines == [{"step": 1, "loss": 0.5, "reward/fill/structure": 0.25}, {"step": 2, "loss": 0.4}]
    assert (tmp_path / "images" / "step-0000002.png").is_file()
    events = [p.parent for p in (tmp_path / "tensorboard").rglob("events.out.tfevents.*")]
    tags = {}
    for folder in events:
        ea = EventAccumulator(str(folder))
        ea.Reload()
        for kind, names in ea.Tags().items():
            if isinstance(names, list):
                tags.setdefault(kind, set()).update(names)
        if "loss" in ea.Tags()["scalars"]:
            assert [(e.step, round(e.value, 6)) for e in ea.Scalars("loss")] == [(1, 0.5), (2, 0.4)]
    assert {"loss", "reward/fill/structure"} <= tags["scalars"] and "broken" not in tags["scalars"]
    assert "grid" in tags["images"]


def test_none_logs_the_jsonl_alone(tmp_path):
    assert accelerator_kwargs(tmp_path, "none") == {} and tracker_names(" none ") == []
    acc = Accelerator(cpu=True)
    logger = RunLogger(tmp_path, acc, {})
    logger.scalars(3, {"loss": 1.0})
    assert (tmp_path / "log.jsonl").is_file() and not (tmp_path / "tensorboard").exists()


def test_tracker_mistakes_are_one_line_and_stop_before_any_model_loads():
    with pytest.raises(UserError, match="unknown tracker 'tensorbord'; use none or any of") as e:
        apply_overrides(Config(), ["log.report_to=tensorbord"]).check()
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="unknown tracker"):
        RewardTrainConfig(prefs="p", out="o", steps=1, report_to="tensorboard,wb").check()
    missing = [t for t in ("wandb", "mlflow", "aim", "dvclive", "swanlab") if t not in get_available_trackers()]
    if missing:  # a tracker whose package this environment lacks
        with pytest.raises(UserError, match=f"{missing[0]} is not installed; pip install"):
            tracker_names(f"tensorboard,{missing[0]}")


def test_flat_config_holds_scalars_only():
    assert flat({"train": {"lr": 1e-5, "task_weights": {"fill": 2.0}, "empty": {}}, "tags": [1, 2], "on": True}) == {
        "train.lr": 1e-5,
        "train.task_weights.fill": 2.0,
        "train.empty": "{}",
        "tags": "[1, 2]",
        "on": True,
    }
