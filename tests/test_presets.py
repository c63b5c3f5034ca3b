"""The presets: the toy one checks as is; flux-fill-dev asks for the user's reward model and conditions."""

import pytest
from cli_runner import run_cli

from onereward.config import apply_overrides
from onereward.errors import UserError
from onereward.presets import get_preset


def test_toy_preset_checks_as_it_is():
    assert get_preset("toy").check().sampling.size == 64


def test_flux_fill_dev_needs_the_reward_model_and_the_conditions():
    cfg = get_preset("flux-fill-dev")
    assert (cfg.model.lora_rank, cfg.model.mixed_precision, cfg.model.gradient_checkpointing) == (64, "bf16", True)
    with pytest.raises(UserError, match="model.reward has no default"):
        cfg.check()
    apply_overrides(cfg, ["model.reward=runs/rm"])
    with pytest.raises(UserError, match="pass --set data.pool=DIR"):
        cfg.check()
    apply_overrides(cfg, ["data.pool=my_conditions"])
    assert cfg.check() is cfg


def test_train_with_the_preset_alone_is_one_line(monkeypatch, capsys, tiny_fill_dir):
    args = ["--preset", "flux-fill-dev", "--set", f"model.policy={tiny_fill_dir}"]
    code, _, err = run_cli(monkeypatch, capsys, "train", *args)
    assert code == 2 and "--set model.reward=DIR" in err and len(err.strip().splitlines()) == 1
