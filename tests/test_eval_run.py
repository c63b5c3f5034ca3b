"""`evaluate()` and `onereward eval`: the judges (oracle, reward model, human votes), results, resume, bad input."""

import json
import sys

import numpy as np
import pytest
import torch
from cli_runner import run_cli
from PIL import Image

from onereward.data.prefs import write_pairs
from onereward.errors import UserError
from onereward.eval import tables
from onereward.eval.benchmark import load_benchmark, toy_benchmark
from onereward.eval.evaluate import evaluate, parse_model_args
from onereward.eval.generate import generate, output_path
from onereward.eval.judges import (
    HumanJudge,
    human_gsb,
    load_annotations,
    reward_accuracy,
    win_gsb,
    win_rates,
    win_rows,
)
from onereward.io import save_image
from onereward.tasks import TASK_NAMES
from onereward.toyworld import Oracle

COUNTS = {"fill": 2, "text": 1, "extend": 1, "extend_noprompt": 1, "removal": 2}
FAST = dict(steps=2, true_cfg=1.0, guidance=1.0)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    return toy_benchmark(tmp_path_factory.mktemp("bench") / "benchmark", counts=COUNTS)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, bench):
    """Two models' outputs on the small benchmark: OpenCV Telea ("base") and the ground truth itself ("truth")."""
    eval_dir = tmp_path_factory.mktemp("run") / "eval"
    items = load_benchmark(bench)
    generate("opencv", items, eval_dir / "base", progress=False)
    for it in items:
        save_image(output_path(eval_dir / "truth", it), it.cond.target)
    return items, eval_dir


# --- the whole evaluation ---


def test_evaluate_with_the_oracle_end_to_end_and_resume(tmp_path, tiny_fill_dir):
    models = {"base": str(tiny_fill_dir), "twin": str(tiny_fill_dir), "cv": "opencv"}
    res = evaluate(tmp_path, models, toy=True, toy_counts=COUNTS, seed=3, batch_size=4, progress=False, **FAST)
    tables.validate_results(res)
    assert res["benchmark"]["items"] == COUNTS
    for model in models:  # usability per task, extend with and without prompt apart
        assert list(res["usability"][model]) == list(TASK_NAMES)
        assert set(res["dimension_scores"][model]["extend_noprompt"]) == {"consistency", "structure", "aesthetics"}
        assert 0 <= res["text_success"][model] <= 1 and 0 <= res["removal_quality_rate"][model] <= 1
        records = json.loads((tmp_path / "eval" / model / "records.json").read_text())
        assert len(records) == 7 and {"id", "task", "scores", "usable"} <= set(records[0])
    # the same model twice, under the same seeds: every image is "same" (PILOT.md section 9)
    assert res["gsb"]["twin_vs_base"] == {t: {"good": 0.0, "same": 1.0, "bad": 0.0} for t in TASK_NAMES}
    assert set(res["gsb"]) == {"twin_vs_base", "cv_vs_base"}
    on_disk = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert on_disk["gsb"] == res["gsb"] and on_disk["usability"] == res["usability"]
    md = (tmp_path / "eval" / "results.md").read_text()
    assert "### Usability (ours, %)" in md and "| twin_vs_base |" in md
    # a second run generates nothing and gives the same numbers
    again = evaluate(tmp_path, models, toy=True, toy_counts=COUNTS, seed=3, batch_size=4, progress=False, **FAST)
    assert all(g["generated"] == 0 and g["skipped"] == 7 for g in again["generation"].values())
    assert again["usability"] == res["usability"] and again["gsb"] == res["gsb"]


def test_two_processes_split_the_generation_and_give_the_single_process_results(tmp_path, tiny_fill_dir):
    """`torchrun --nproc_per_node 2 -m onereward.cli eval`: each process generates half the images, the main one
    judges; the images and results equal one process's, and the parts are merged into the manifest."""
    import os
    import subprocess

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}  # the same threads: the same float sums

    def run(launcher: list[str], out):
        args = ["eval", "--toy", "--limit", "3", "--model", f"base={tiny_fill_dir}", "--model", "cv=opencv",
                "--seed", "3", "--batch-size", "1", "--steps", "2", "--true-cfg", "1", "--guidance", "1"]  # fmt: skip
        res = subprocess.run([sys.executable, "-m", *launcher, "onereward.cli", *args, "--out", str(out)],
                             env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
        assert res.stdout.count("wrote ") == 1  # one process reports
        return json.loads((out / "eval" / "results.json").read_text())

    two = run(["torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29551", "-m"], tmp_path / "two")
    one = run([], tmp_path / "one")
    assert two["usability"] == one["usability"] and two["gsb"] == one["gsb"]
    assert two["generation"]["base"]["generated"] == sum(one["benchmark"]["items"].values()) == 15
    for model in ("base", "cv"):
        a, b = tmp_path / "one" / "eval" / model, tmp_path / "two" / "eval" / model
        pngs = sorted(p.relative_to(a) for p in a.rglob("*.png"))
        assert len(pngs) == 15 and pngs == sorted(p.relative_to(b) for p in b.rglob("*.png"))
        assert all(np.array_equal(np.asarray(Image.open(a / f)), np.asarray(Image.open(b / f))) for f in pngs)
        manifest = json.loads((b / "generation.json").read_text())
        assert len(manifest["items"]) == len(pngs) and not list(b.glob("generation.part*.json"))


def test_a_killed_multi_process_run_resumes_from_its_parts(tmp_path, bench):
    """Parts left by processes killed before the merge count as finished: a rerun (any process count) skips them,
    merges them into the manifest and removes them."""
    items = load_benchmark(bench)
    out = tmp_path / "cv"
    generate("opencv", items, out, progress=False)
    manifest = json.loads((out / "generation.json").read_text())
    ids = sorted(manifest["items"])
    for r, share in enumerate((ids[0::2], ids[1::2])):  # as two killed processes would have left them
        part = {"settings": manifest["settings"], "items": {i: manifest["items"][i] for i in share}}
        (out / f"generation.part{r}.json").write_text(json.dumps(part))
    (out / "generation.json").unlink()
    again = generate("opencv", items, out, progress=False)
    assert again["generated"] == 0 and again["skipped"] == len(items)
    assert json.loads((out / "generation.json").read_text())["items"] == manifest["items"]
    assert not list(out.glob("generation.part*.json"))


def test_oracle_judge_refuses_a_benchmark_without_ground_truth(tmp_path, bench):
    mine = tmp_path / "mine" / "removal" / "x"
    mine.mkdir(parents=True)
    for name in ("source.png", "mask.png"):
        (mine / name).write_bytes((bench / "removal" / "removal-0000" / name).read_bytes())
    (mine / "meta.json").write_text('{"task": "removal"}')
    with pytest.raises(UserError, match="no toy ground truth"):
        evaluate(tmp_path / "run", {"base": "opencv"}, benchmark=tmp_path / "mine", progress=False)
    assert (tmp_path / "run" / "eval" / "benchmark" / "removal" / "x" / "source.png").is_file()  # the report sees it


# --- the reward-model judge ---


class AlwaysYes:
    """A judge with total position bias: it prefers the first image whatever it is."""

    def p_yes(self, first, second, task, dimensions, prompts, conditions=None):
        return torch.full((first.shape[0], len(dimensions)), 0.9)


def test_reward_judge_averages_both_orders(outputs):
    items, eval_dir = outputs
    biased = win_rows(AlwaysYes(), items, eval_dir / "truth", eval_dir / "base")
    assert all(p == pytest.approx(0.5) for r in biased for p in r["p_win"].values())  # bias cancels out
    assert all(c["same"] == 1.0 for c in win_gsb(biased).values())
    oracle = win_rows(Oracle(), items, eval_dir / "truth", eval_dir / "base", batch_size=2)
    rates = win_rates(oracle)
    assert list(rates) == list(TASK_NAMES) and all(0.5 <= p <= 1 for d in rates.values() for p in d.values())
    assert rates["fill"]["text_alignment"] > 0.9  # the truth draws the object, OpenCV cannot
    assert win_gsb(oracle)["fill"]["good"] == 1.0


def test_reward_judge_with_the_tiny_reward_model(tmp_path, tiny_rm_dir, bench):
    models = {"base": "opencv", "ns": "opencv:ns"}
    prefs = _prefs(tmp_path / "prefs")
    res = evaluate(tmp_path, models, benchmark=bench, judge=f"reward:{tiny_rm_dir}", prefs=prefs, progress=False)
    rates = res["win_rate"]["ns_vs_base"]
    assert list(rates) == list(TASK_NAMES)
    assert all(0.0 <= p <= 1.0 for dims in rates.values() for p in dims.values())
    assert set(res["gsb"]["ns_vs_base"]) == set(TASK_NAMES) and "usability" not in res
    rows = json.loads((tmp_path / "eval" / "ns" / "win_vs_base.json").read_text())
    assert len(rows) == 7 and all(0 <= p <= 1 for r in rows for p in r["p_win"].values())
    assert "Win rate against the base" in (tmp_path / "eval" / "results.md").read_text()
    assert set(res["reward_accuracy"]) == {"fill", "removal"}  # the judge's accuracy on the held-out pairs
    assert res["reward_accuracy_detail"]["removal"]["removal_quality"]["n"] == 3


# --- the reward model's accuracy on held-out pairs ---


class Brighter:
    """Prefers the brighter first image: P = sigmoid(20 (mean(first) - mean(second)))."""

    def p_yes(self, first, second, task, dimensions, prompts, conditions=None):
        gap = first.mean(dim=(1, 2, 3)) - second.mean(dim=(1, 2, 3))  # (B,)
        return torch.sigmoid(20 * gap)[:, None].expand(-1, len(dimensions))


def _prefs(folder, n=6):
    """Pairs whose winner is always the brighter image, listed as image_a or image_b alternately."""
    rows = []
    for i in range(n):
        for name, v in (("src", 0.5), ("m", 1.0), ("hi", 0.8), ("lo", 0.2)):
            img = np.full((32, 32), v, np.float32) if name == "m" else np.full((32, 32, 3), v, np.float32)
            save_image(folder / f"{name}{i}.png", img)
        a, b, winner = (f"hi{i}.png", f"lo{i}.png", "a") if i % 2 else (f"lo{i}.png", f"hi{i}.png", "b")
        task, dim = ("removal", "removal_quality") if i < 3 else ("fill", "consistency")
        rows.append(dict(id=f"p{i}", condition=f"c{i}", task=task, prompt="", source=f"src{i}.png", mask=f"m{i}.png",
                         image_a=a, image_b=b, dimension=dim, winner=winner))  # fmt: skip
    write_pairs(folder, rows)
    return folder


def test_reward_accuracy_two_orders(tmp_path, tiny_rm):
    prefs = _prefs(tmp_path / "prefs")
    acc = reward_accuracy(Brighter(), prefs, batch_size=4)
    assert acc["reward_accuracy"] == {"fill": {"consistency": 1.0}, "removal": {"removal_quality": 1.0}}
    assert acc["reward_accuracy_detail"]["fill"]["consistency"]["n"] == 3
    assert acc["reward_accuracy_detail"]["fill"]["consistency"]["position_consistency"] == 1.0
    assert (
        acc["reward_accuracy_by_task"]["fill"]["consistency"] == acc["reward_accuracy_detail"]["fill"]["consistency"]
    )
    biased = reward_accuracy(AlwaysYes(), prefs)["reward_accuracy_detail"]["removal"]["removal_quality"]
    assert (biased["two_order"], biased["one_order"], biased["position_bias_flag"]) == (0.5, 1.0, True)
    real = reward_accuracy(tiny_rm, prefs)  # the real RewardModel through the same call
    assert all(0 <= v <= 1 for dims in real["reward_accuracy"].values() for v in dims.values())
    tables.validate_results(real)


# --- human votes ---


def _votes(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_human_votes_become_gsb_shares(tmp_path, outputs):
    items, eval_dir = outputs
    votes = [
        {"id": "fill-0000", "model_a": "ours", "model_b": "base", "task": "fill", "winner": "a"},
        {"id": "fill-0001", "model_a": "base", "model_b": "ours", "task": "fill", "winner": "a"},  # base first
        {"id": "fill-0001", "model_a": "ours", "model_b": "base", "task": "fill", "winner": "same"},
        {"id": "fill-0000", "model_a": "ours", "model_b": "base", "task": "fill", "winner": "a"},
        {"id": "removal-0000", "model_a": "base", "model_b": "ours", "task": "removal", "winner": "b"},
    ]
    path = _votes(tmp_path / "votes.jsonl", votes)
    gsb = human_gsb(load_annotations(path, items), base="base")
    assert gsb == {
        "ours_vs_base": {
            "fill": {"good": 0.5, "same": 0.25, "bad": 0.25},
            "removal": {"good": 1.0, "same": 0.0, "bad": 0.0},
        }
    }
    assert HumanJudge(path).evaluate(items, eval_dir, ["base"], "base", 0.02) == {"gsb": gsb}
    bad = [
        ({"id": "fill-0000", "model_a": "x", "model_b": "y", "task": "fill", "winner": "tie"}, "winner 'tie'"),
        ({"id": "nope", "model_a": "x", "model_b": "y", "task": "fill", "winner": "a"}, "not in the benchmark"),
        ({"id": "fill-0000", "model_a": "x", "model_b": "y", "task": "removal", "winner": "a"}, "is a 'fill' item"),
        ({"id": "fill-0000", "model_a": "x", "task": "fill", "winner": "a"}, "'model_b' is missing"),
        ({"id": "fill-0000", "model_a": "x", "model_b": "x", "task": "fill", "winner": "a"}, "both 'x'"),
    ]
    for row, message in bad:
        _votes(path, [votes[0], row])
        with pytest.raises(UserError, match=f"line 2: .*{message}"):
            load_annotations(path, items)


def test_human_judge_through_evaluate_checks_votes_before_generating(tmp_path, bench):
    good = {"id": "removal-0001", "model_a": "ns", "model_b": "base", "task": "removal", "winner": "a"}
    path = _votes(tmp_path / "votes.jsonl", [good, good | {"id": "removal-0007"}])
    models = {"base": "opencv", "ns": "opencv:ns"}
    with pytest.raises(UserError, match="line 2: id 'removal-0007' is not in the benchmark"):
        evaluate(tmp_path / "run", models, benchmark=bench, judge=f"human:{path}", progress=False)
    assert not (tmp_path / "run" / "eval" / "base").exists()  # nothing generated
    _votes(path, [good])
    res = evaluate(tmp_path / "run", models, benchmark=bench, judge=f"human:{path}", progress=False)
    assert res["gsb"] == {"ns_vs_base": {"removal": {"good": 1.0, "same": 0.0, "bad": 0.0}}}
    assert res["judge"] == f"human:{path}" and "usability" not in res


# --- the CLI ---


def test_cli_runs_and_reports(monkeypatch, capsys, tmp_path, bench):
    code, out, err = run_cli(
        monkeypatch, capsys, "eval", "--benchmark", bench, "--model", "base=opencv", "--model", "ns=opencv:ns",
        "--out", tmp_path, "--limit", "1",
    )  # fmt: skip
    assert code == 0, err
    assert "GSB ns_vs_base" in out and "results.json" in out
    res = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert res["benchmark"]["items"] == dict.fromkeys(TASK_NAMES, 1)
    assert Image.open(tmp_path / "eval" / "ns" / "removal" / "removal-0000.png").size == (64, 64)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "base=opencv"], "give exactly one of --benchmark"),
        (["--toy", "--benchmark", "{bench}", "--model", "base=opencv"], "give exactly one of"),
        (["--toy", "--model", "opencv"], "write NAME=SPEC"),
        (["--toy", "--model", "base=opencv:fast"], "unknown OpenCV method"),
        (["--toy", "--model", "base=opencv", "--model", "base=opencv:ns"], "given twice"),
        (["--toy", "--model", "benchmark=opencv"], "model name 'benchmark'"),
        (["--toy", "--model", "a=opencv", "--model", "b=opencv"], "--base 'base' is not one of the models"),
        (["--toy", "--model", "base=opencv", "--judge", "gpt"], "--judge 'gpt'"),
        (["--toy", "--model", "base=opencv", "--judge", "reward:{tmp}/none"], "not a reward-model folder"),
        (["--toy", "--model", "base=opencv", "--judge", "human:{tmp}/none.jsonl"], "no such annotation file"),
        (["--toy", "--model", "base=opencv", "--prefs", "{tmp}"], "--prefs needs a reward model"),
        (["--toy", "--model", "base=opencv", "--same-margin", "-1"], "tie band"),
        (["--benchmark", "{tmp}/none", "--model", "base=opencv"], "no such benchmark folder"),
        (["--toy", "--model", "base={tmp}/none"], "no folder"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(monkeypatch, capsys, tmp_path, bench, args, message):
    args = [a.format(bench=bench, tmp=tmp_path) for a in args]
    code, out, err = run_cli(monkeypatch, capsys, "eval", "--out", tmp_path / "run", *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "run" / "eval" / "results.json").exists()


def test_parse_model_args_keeps_order():
    assert list(parse_model_args(["b=opencv", "a=opencv:ns"])) == ["b", "a"]
