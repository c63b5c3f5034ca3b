"""`onereward demo --quick`: every stage runs end to end as its own process, results.json holds every field the
issue names (filled from the stages' own outputs), the report and the image grids are written, and a rerun continues
from the cache instead of redoing the work.

Quick budgets make numbers meaningless; this checks the mechanics only (the full demo's numbers are in README.md).
"""

import json
import subprocess
import sys

import pytest

from onereward.demo import Stage, groups, rl_skip_reason, run_group, stages
from onereward.errors import UserError
from onereward.io import save_json
from onereward.tasks import TASK_NAMES

MODELS = ("base", "onereward", "onereward_dynamic", "opencv")


def demo(out):
    return subprocess.run(
        [sys.executable, "-m", "onereward.cli", "demo", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = demo(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_results_json_has_every_field_from_the_stages(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    for task, dims in results["reward_accuracy"].items():
        assert task in ("fill", "extend", "removal")
        assert all(0.0 <= v <= 1.0 for v in dims.values())
    for field in ("usability", "dimension_scores"):
        assert set(results[field]) == set(MODELS)
        assert all(set(per) == set(TASK_NAMES) for per in results[field].values())
    assert set(results["gsb"]) == {f"{m}_vs_base" for m in MODELS if m != "base"}
    for per_task in results["gsb"].values():
        for shares in per_task.values():
            assert sum(shares[k] for k in ("good", "same", "bad")) == pytest.approx(1.0)
    # the stages the issue names, in results.json as timings[stage] and peak_memory_mb[stage]
    names = {
        "world", "pretrain", "collect", "train_reward", "eval_reward", "rl_onereward", "rl_onereward_dynamic", "eval",
    }  # fmt: skip
    assert set(results["timings"]) == names and all(v > 0 for v in results["timings"].values())
    assert set(results["peak_memory_mb"]) == names and all(v > 0 for v in results["peak_memory_mb"].values())
    # the two RL runs ran side by side: the total counts them once
    times = results["timings"]
    overlap = min(times["rl_onereward"], times["rl_onereward_dynamic"])
    assert results["total_seconds"] == pytest.approx(sum(times.values()) - overlap, abs=0.3)
    for name in ("base", "reward", "onereward", "onereward_dynamic"):
        assert (run_dir / results["models"][name]).is_dir(), name


def test_report_image_grids_and_rl_curves_are_written(run_dir):
    assert "<html" in (run_dir / "report.html").read_text()
    assert sorted(p.name for p in (run_dir / "figures").glob("*.png")) == [
        "grid_extend_removal.png",
        "grid_fill_text.png",
        "rl_reward_onereward.png",
        "rl_reward_onereward_dynamic.png",
        "rl_usability.png",
    ]


def test_a_rerun_uses_the_cache(run_dir):
    marker = run_dir / "stages" / "pretrain.json"
    before = marker.read_text()
    proc = demo(run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count(": cached (") == len(stages(seed=0, quick=True))  # every stage, none rerun
    assert marker.read_text() == before


def test_stages_killed_after_a_checkpoint_continue_from_it(run_dir):
    """A kill after the reward model's and an RL run's checkpoints, before their exports: the rerun resumes both
    (without --resume the trainers refuse a folder that holds checkpoints) and the cache still counts them."""
    import shutil

    for gone in ("models/reward/config.json", "stages/train_reward.json", "rl/onereward/policy",
                 "rl/onereward/ema", "stages/rl_onereward.json"):  # fmt: skip
        path = run_dir / gone
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    proc = demo(run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = [line for line in proc.stdout.splitlines() if "--resume" in line]
    assert len(resumed) == 2 and any("train-reward" in x for x in resumed), proc.stdout
    assert (run_dir / "models" / "reward" / "config.json").is_file() and (
        run_dir / "rl" / "onereward" / "policy"
    ).is_dir()
    again = demo(run_dir)
    assert again.returncode == 0 and again.stdout.count(": cached (") == len(stages(seed=0, quick=True))


def _accuracy(tmp_path, cells):
    save_json(tmp_path / "reward_accuracy.json", {"reward_accuracy": cells})
    return tmp_path


def test_rl_is_skipped_only_when_no_reward_dimension_passes_the_gate(tmp_path):
    out = _accuracy(tmp_path, {"fill": {"consistency": 0.69, "structure": 0.5}, "removal": {"removal_quality": 0.5}})
    reason = rl_skip_reason(out, 0.7)
    assert reason is not None and "best 0.69" in reason and "\n" not in reason
    _accuracy(tmp_path, {"fill": {"consistency": 0.71, "structure": 0.5}, "removal": {"removal_quality": 0.5}})
    assert rl_skip_reason(out, 0.7) is None
    # gated by task, one good dimension is not enough: some task must pass on every one of its dimensions
    reason = rl_skip_reason(out, 0.7, gate="task")
    assert reason is not None and "no task has every reward dimension" in reason
    _accuracy(tmp_path, {"fill": {"consistency": 0.71, "structure": 0.5}, "removal": {"removal_quality": 0.72}})
    assert rl_skip_reason(out, 0.7, gate="task") is None


def test_a_skipped_stage_runs_nothing_and_leaves_no_marker(tmp_path, capsys):
    _accuracy(tmp_path, {"fill": {"consistency": 0.5}})
    rl = next(s for s in stages(seed=0, quick=False) if s.name == "rl_onereward")
    info = run_group([rl], tmp_path, 6, 8)["rl_onereward"]
    assert set(info) == {"skipped"} and "SKIPPED" in capsys.readouterr().out
    assert not (tmp_path / "stages").exists()  # the next run asks again
    # the evaluation then compares only the models that exist
    evaluate = next(s for s in stages(seed=0, quick=False) if s.name == "eval")
    models = [a.split("=")[0] for a in evaluate.args(tmp_path) if "=" in a]
    assert models == ["base", "opencv"]
    # once an RL run exists the evaluation's command changes, so its cached marker no longer counts
    (tmp_path / "rl" / "onereward" / "policy" / "transformer").mkdir(parents=True)
    models = [a.split("=")[0] for a in evaluate.args(tmp_path) if "=" in a]
    assert models == ["base", "onereward", "opencv"]


def test_the_two_rl_runs_run_side_by_side_and_the_rest_alone():
    plan = stages(seed=0, quick=False)
    assert [[s.name for s in g] for g in groups(plan)] == [
        ["world"], ["pretrain"], ["collect"], ["train_reward"], ["eval_reward"],
        ["rl_onereward", "rl_onereward_dynamic"], ["eval"],
    ]  # fmt: skip


def test_a_failed_stage_of_a_group_fails_the_demo_after_the_others_finish(tmp_path):
    def stage(name, args):
        return Stage(name, name, lambda o: args, lambda o: False, together="g")

    ok, bad = stage("ok", ["--help"]), stage("bad", ["train", "--preset", "no-such-preset"])
    with pytest.raises(UserError, match=r"stage bad \(exit \d+; see .*bad.log\) failed"):
        run_group([bad, ok], tmp_path, 1, 2)
    assert json.loads((tmp_path / "stages" / "ok.json").read_text())["command"] == ["onereward", "--help"]
    assert not (tmp_path / "stages" / "bad.json").exists()
    assert "unknown preset 'no-such-preset'" in (tmp_path / "stages" / "bad.log").read_text()


def test_a_group_with_one_stage_left_runs_it_alone_in_the_terminal(tmp_path, capsys):
    def stage(name):
        return Stage(name, name, lambda o: ["--help"], lambda o: True, together="g")

    save_json(tmp_path / "stages" / "a.json", {"command": ["onereward", "--help"], "seconds": 5.0, "peak_mb": 1.0})
    infos = run_group([stage("a"), stage("b")], tmp_path, 1, 2)
    assert infos["a"]["seconds"] == 5.0 and infos["b"]["command"] == ["onereward", "--help"]
    out = capsys.readouterr().out
    assert "a: cached (5 s)" in out and "(output:" not in out  # b alone: all cores, its output on the terminal
    assert not (tmp_path / "stages" / "b.log").exists()
