"""The presets: the toy one checks as is; flux-fill-dev asks for the user's reward model and conditions."""

import pytest
from cli_runner import run_cli

from onereward.config import Config, apply_overrides, load_yaml
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


def test_print_config_gives_a_config_file_that_rebuilds_the_same_run(monkeypatch, capsys, tmp_path, tiny_fill_dir):
    sets = ["--set", f"model.policy={tiny_fill_dir}", "--set", f"model.reward={tiny_fill_dir}"]
    sets += ["--set", "data.pool=conditions", "--set", "train.grad_accum=4"]
    code, out, _ = run_cli(monkeypatch, capsys, "train", "--preset", "flux-fill-dev", *sets, "--print-config")
    assert code == 0 and "grad_accum: 4" in out and not (tmp_path / "runs").exists()
    (tmp_path / "run.yaml").write_text(out)
    rebuilt = load_yaml(Config(), tmp_path / "run.yaml")
    expected = apply_overrides(get_preset("flux-fill-dev"), [s for s in sets if s != "--set"])
    assert rebuilt.to_dict() == expected.to_dict()


def test_the_anchor_needs_a_reference_model_and_a_positive_weight():
    with pytest.raises(UserError, match="train.anchor=-1.0"):
        apply_overrides(Config(), ["train.anchor=-1"]).check()
    with pytest.raises(UserError, match="data.ref_cache holds only its images"):
        apply_overrides(Config(), ["train.anchor=10", "data.ref_cache=refs"]).check()
