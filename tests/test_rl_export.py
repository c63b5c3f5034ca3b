"""`onereward export`: a training checkpoint as the same loadable folders the trainer writes at its end."""

import pytest
import torch
from cli_runner import run_cli
from diffusers import FluxTransformer2DModel
from safetensors.torch import load_file
from test_rl import config, weights

from onereward.rl.export import export_checkpoint
from onereward.rl.trainer import train


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_fill_dir, tiny_rm, pool):
    root = tmp_path_factory.mktemp("runs")
    full = train(config(tiny_fill_dir, "x", root / "full", "log.keep_checkpoints=2"), reward=tiny_rm, pool=pool)
    lora = train(config(tiny_fill_dir, "x", root / "lora", "log.keep_checkpoints=2", "model.lora_rank=4"),
                 reward=tiny_rm, pool=pool)  # fmt: skip
    return full, lora


@pytest.fixture(scope="module")
def pool():
    from onereward.rl.data import ConditionPool
    from onereward.tasks import TASKS
    from onereward.toyworld import make_conditions

    return ConditionPool([c for t in TASKS for c in make_conditions(t, 3, seed=0, size=64, split="rl")])


def transformer(folder):
    return weights(FluxTransformer2DModel.from_pretrained(folder / "transformer"))


def test_the_last_checkpoint_exports_what_the_run_exported(runs, tmp_path):
    full, lora = runs
    for w in ("policy", "ema"):
        got, want = (
            transformer(export_checkpoint(full, tmp_path / f"full-{w}", weights=w).parent),
            transformer(full / w),
        )
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got), w
    got = load_file(export_checkpoint(lora, tmp_path / "lora", step=2))
    want = load_file(lora / "policy" / "pytorch_lora_weights.safetensors")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in got)


def test_an_earlier_step_is_another_model(runs, tmp_path):
    full, _ = runs
    one, two = (transformer(export_checkpoint(full, tmp_path / f"s{s}", step=s).parent) for s in (1, 2))
    assert any(not torch.equal(one[k], two[k]) for k in one)


def test_export_mistakes_are_one_line(runs, tmp_path, monkeypatch, capsys):
    full, _ = runs
    for args, message in [
        (["--run", tmp_path, "--out", tmp_path / "o"], "no complete checkpoint"),
        (["--run", full, "--out", tmp_path / "o", "--step", "7"], "there are steps 1, 2"),
        (["--run", full, "--out", tmp_path / "o", "--weights", "best"], "choose policy or ema"),
        (["--run", full, "--out", full], "not an empty folder"),
    ]:
        code, _, err = run_cli(monkeypatch, capsys, "export", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()
