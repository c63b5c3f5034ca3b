"""`onereward eval-reward`: held-out accuracy in the paper's Table 1 form, the JSON the RL trainer gates on."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from onereward.errors import UserError
from onereward.eval.tables import validate_results
from onereward.reward.evaluate import evaluate_reward
from onereward.reward.train import RewardTrainConfig, train
from onereward.tasks import TASKS

sys.path.insert(0, str(Path(__file__).parent))
from test_reward_train import toy_prefs  # noqa: E402


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("rm_eval")
    prefs = root / "prefs"
    toy_prefs(prefs, ("fill", "extend", "removal"), 8, ("GT", "grey", "noise .15", "untouched"))
    out = train(RewardTrainConfig(prefs=str(prefs), out=str(root / "rm"), steps=2, batch_size=4, threads=1,
                                  held_out=0.5), progress=False)  # fmt: skip
    return prefs, out, root


def test_accuracy_json_schema(trained):
    prefs, model, root = trained
    result = evaluate_reward(model, prefs, root / "acc.json", markdown=root / "acc.md")
    on_disk = json.loads((root / "acc.json").read_text())
    assert on_disk["reward_accuracy"] == result["reward_accuracy"]
    validate_results(on_disk)  # the report's own schema check
    held = set(json.loads((model / "split.json").read_text())["held_out_conditions"])
    n_held = sum(
        1 for line in (prefs / "pairs.jsonl").read_text().splitlines() if json.loads(line)["condition"] in held
    )
    assert on_disk["n_pairs"] == n_held > 0
    assert on_disk["split"] == "held_out"
    total = 0
    for fam, dims in on_disk["reward_accuracy_detail"].items():
        for dim, cell in dims.items():
            assert set(cell) == {"two_order", "one_order", "n", "position_bias_flag", "position_consistency"}
            assert on_disk["reward_accuracy"][fam][dim] == cell["two_order"]
            assert 0 <= cell["two_order"] <= 1 and 0 <= cell["one_order"] <= 1
            assert cell["position_bias_flag"] == (abs(cell["one_order"] - cell["two_order"]) > 0.1 + 1e-9)
            total += cell["n"]
    assert total == on_disk["n_pairs"]
    assert set(on_disk["reward_accuracy"]) == {"fill", "extend", "removal"}
    # per task row: the same pairs, regrouped; a family's n is the sum of its rows'
    by_task = on_disk["reward_accuracy_by_task"]
    assert set(by_task) <= {"fill", "text", "extend", "extend_noprompt", "removal"} and by_task
    for fam, dims in on_disk["reward_accuracy_detail"].items():
        for dim, cell in dims.items():
            rows = [by_task[t][dim] for t in by_task if TASKS[t].family == fam and dim in by_task[t]]
            assert sum(r["n"] for r in rows) == cell["n"]
            two = sum(r["two_order"] * r["n"] for r in rows) / cell["n"]
            assert two == pytest.approx(cell["two_order"])
    md = (root / "acc.md").read_text()
    assert "Reward-model accuracy" in md and "83.77" in md  # ours beside the paper's Table 1


def test_rl_gate_reads_the_json(trained, tmp_path):
    """The RL trainer's dimension gate reads reward_accuracy[family][dimension]."""
    from onereward.config import Config
    from onereward.rl.trainer import dimension_gate

    prefs, model, _ = trained
    evaluate_reward(model, prefs, tmp_path / "acc.json")
    cfg = Config()
    cfg.model.reward_accuracy = str(tmp_path / "acc.json")
    cfg.train.min_reward_accuracy = 1.01  # nothing passes
    assert not any(bool(k.any()) for k in dimension_gate(cfg).values())
    cfg.train.min_reward_accuracy = 0.0  # gate off
    assert all(bool(k.all()) for k in dimension_gate(cfg).values())


def test_needs_the_split_or_all_pairs(trained, tmp_path):
    prefs, model, _ = trained
    (tmp_path / "m").mkdir()
    for f in model.iterdir():
        if f.is_file() and f.name != "split.json":
            (tmp_path / "m" / f.name).write_bytes(f.read_bytes())
    with pytest.raises(UserError, match="split.json"):
        evaluate_reward(tmp_path / "m", prefs, tmp_path / "a.json")
    result = evaluate_reward(tmp_path / "m", prefs, tmp_path / "a.json", all_pairs=True)
    assert result["split"] == "all" and result["n_pairs"] == len((prefs / "pairs.jsonl").read_text().splitlines())


def test_cli_commands_are_registered(trained, tmp_path):
    from onereward.cli import app

    prefs, model, _ = trained
    runner = CliRunner()
    for cmd in ("collect", "train-reward", "eval-reward"):
        assert runner.invoke(app, [cmd, "--help"]).exit_code == 0
    res = runner.invoke(app, ["eval-reward", "--model", str(model), "--prefs", str(prefs), "--out",
                              str(tmp_path / "x.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "two-order" in res.output and (tmp_path / "x.json").is_file()


def test_cli_defaults_are_the_configs_defaults():
    """The demo calls the commands with their defaults: those must be the recipe in the config dataclasses."""
    import inspect

    from onereward.reward.collect import CollectConfig
    from onereward.reward.commands import collect_command, train_reward_command

    for command, config in ((collect_command, CollectConfig()), (train_reward_command, RewardTrainConfig())):
        for name, param in inspect.signature(command).parameters.items():
            if hasattr(config, name) and param.default is not inspect.Parameter.empty and param.default is not None:
                assert param.default == getattr(config, name), f"{command.__name__} --{name}"


class _Judge:
    """A hand-made judge: P(Yes) on every dimension is `read(prompt)`; no images are looked at."""

    def __init__(self, read):
        self.read, self.device = read, "cpu"
        self.model = torch.nn.Linear(1, 1)

    def p_yes(self, first, second, task, dimensions, prompts):
        return torch.tensor([[self.read(p)] * len(dimensions) for p in prompts])


def test_prompt_sensitivity_tells_a_judge_that_reads_the_prompt_from_one_that_does_not():
    from onereward.reward.evaluate import prompt_sensitivity
    from onereward.reward.train import Items

    bank = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
    prompts = ["red circle", "blue square", "red circle", "green triangle"]
    items = Items(np.zeros(4, dtype=np.int64), prompts, np.arange(4), np.arange(4), np.zeros((4, 4), dtype=np.int8))
    tasks = ["fill"] * 4
    dims = ["text_alignment", "text_alignment", "consistency", "text_alignment"]  # only text alignment is probed
    blind = prompt_sensitivity(_Judge(lambda p: 0.7), bank, items, tasks, dims)
    reads = prompt_sensitivity(_Judge(lambda p: 0.9 if p.startswith("red") else 0.1), bank, items, tasks, dims)
    assert blind["fill"] == 0.0 and blind["extend"] is None
    # row 0 (red) is always asked a non-red prompt: 0.8 apart; rows 1 and 3 are 0.8 apart when asked the red one
    assert 0.8 / 3 - 1e-6 <= reads["fill"] <= 0.8 + 1e-6


def test_two_processes_split_the_pairs_and_write_what_one_does(trained, tmp_path):
    """`torchrun --nproc_per_node 2 -m onereward.cli eval-reward`: each process judges every other pair, the main one
    merges; the accuracy cells and the prompt sensitivity are one process's."""
    import os
    import subprocess

    prefs, model, _ = trained
    one = evaluate_reward(model, prefs, tmp_path / "one.json")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29591", "-m",
           "onereward.cli", "eval-reward", "--model", str(model), "--prefs", str(prefs), "--out",
           str(tmp_path / "two.json")]  # fmt: skip
    res = subprocess.run(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.count("wrote ") == 1
    two = json.loads((tmp_path / "two.json").read_text())
    assert two["n_pairs"] == one["n_pairs"]
    assert two["reward_accuracy_detail"] == one["reward_accuracy_detail"]
    assert two["reward_accuracy_by_task"] == one["reward_accuracy_by_task"]
    for family, value in one["prompt_sensitivity"].items():
        assert (value is None) == (two["prompt_sensitivity"][family] is None)
        if value is not None:
            assert two["prompt_sensitivity"][family] == pytest.approx(value, rel=1e-6)


def test_on_policy_pairs_are_judged_in_both_orders_against_the_oracle(tiny_fill_dir, tiny_rm):
    """The oracle is always right about its own labels; a judge that says "Yes" to everything is right in one order
    only, so 50%: two-order accuracy on pairs of two samples of one fill model."""
    from onereward.reward.on_policy import on_policy_accuracy
    from onereward.toyworld.oracle import Oracle

    oracle = on_policy_accuracy(Oracle(), tiny_fill_dir, per_task=6)
    assert set(oracle) == set(TASKS) and all(set(oracle[t]) == set(TASKS[t].dimensions) for t in TASKS)
    judged = [c for dims in oracle.values() for c in dims.values() if c["n"] > 0]
    assert judged and all(c["two_order"] == 1.0 for c in judged)

    class SaysYes:
        def p_yes(self, first, second, task, dims, prompts, conditions=None):
            return torch.ones(len(first), len(dims))

    always = on_policy_accuracy(SaysYes(), tiny_fill_dir, per_task=6)
    assert [c["n"] for d in always.values() for c in d.values()] == [
        c["n"] for d in oracle.values() for c in d.values()
    ]
    assert all(c["two_order"] == 0.5 for d in always.values() for c in d.values() if c["n"] > 0)
    # the tiny reward model goes through the same contract
    assert all(0 <= c["two_order"] <= 1 for d in on_policy_accuracy(tiny_rm, tiny_fill_dir, 4).values()
               for c in d.values() if c["n"])  # fmt: skip


def test_eval_reward_on_policy_needs_a_fill_model_folder(trained, tmp_path, monkeypatch, capsys):
    from cli_runner import run_cli

    prefs, model, _ = trained
    args = ["--model", model, "--prefs", prefs, "--out", tmp_path / "x.json", "--on-policy", tmp_path]
    code, _, err = run_cli(monkeypatch, capsys, "eval-reward", *args)
    assert code == 2 and "not a fill-model folder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.json").exists()
