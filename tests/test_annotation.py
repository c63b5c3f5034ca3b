"""Preference data from people: `candidates` (N per condition, randomised settings, a labelling sheet) and
`import-labels` (best/worst rows -> preference pairs), with the toy oracle standing in for the annotators."""

import json

import numpy as np
import pytest
import torch
from cli_runner import run_cli

from onereward.data.annotation import CANDIDATES, TO_LABEL, CandidateConfig, candidates, import_labels
from onereward.data.prefs import as_dataset, load_pairs
from onereward.errors import UserError
from onereward.infer import fill
from onereward.io import load_rgb, to_uint8
from onereward.tasks import TASKS
from onereward.toyworld.oracle import score
from onereward.toyworld.world import load_condition, make_conditions, save_condition

FAST = CandidateConfig(n=3, steps=(1, 2), true_cfg=(1.0, 2.0), seed=0)


@pytest.fixture(scope="module")
def conds(tmp_path_factory):
    root = tmp_path_factory.mktemp("conds")
    for task in TASKS:
        save_condition(make_conditions(task, 1, seed=0, size=64, split="pref")[0], root / f"{task}-0")
    return root


@pytest.fixture(scope="module")
def made(tmp_path_factory, conds, tiny_fill_dir):
    out = tmp_path_factory.mktemp("cands") / "c"
    return out, candidates(str(tiny_fill_dir), conds, out, FAST, progress=False)


def test_candidates_per_condition_with_their_settings_and_the_sheet(made, conds, tiny_fill_dir):
    out, done = made
    assert done["generated"] == 5 and done["skipped"] == 0
    doc = json.loads((out / "fill-0" / CANDIDATES).read_text())
    assert [c["name"] for c in doc["candidates"]] == ["c0", "c1", "c2"] and doc["user_prompt"]
    every = [c for t in TASKS for c in json.loads((out / f"{t}-0" / CANDIDATES).read_text())["candidates"]]
    assert {c["steps"] for c in every} == {1, 2} and {c["true_cfg"] for c in every} == {1.0, 2.0}
    assert len({c["seed"] for c in every}) == len(every)
    # each candidate is `onereward fill` with its recorded settings
    cond = load_condition(conds / "fill-0")
    c = doc["candidates"][1]
    again = fill(cond.source, cond.mask, "fill", cond.prompt, c["negative_prompt"] or "", c["steps"], c["true_cfg"],
                 None, c["seed"], model=str(tiny_fill_dir))  # fmt: skip
    assert np.array_equal(to_uint8(again), to_uint8(load_rgb(out / "fill-0" / "c1.png")))
    rows = [json.loads(line) for line in (out / TO_LABEL).read_text().splitlines()]
    assert len(rows) == sum(len(t.dimensions) for t in TASKS.values())
    assert all(r["best"] is None and r["worst"] is None and r["candidates"] == ["c0", "c1", "c2"] for r in rows)


def test_a_rerun_makes_only_what_is_missing_and_refuses_other_settings(tmp_path, conds, tiny_fill_dir):
    out = tmp_path / "c"
    candidates(str(tiny_fill_dir), conds, out, FAST, progress=False)
    (out / "removal-0" / CANDIDATES).unlink()  # as a run killed inside that condition leaves it
    again = candidates(str(tiny_fill_dir), conds, out, FAST, progress=False)
    assert again["generated"] == 1 and again["skipped"] == 4
    with pytest.raises(UserError, match="use another --out or the same settings"):
        candidates(str(tiny_fill_dir), conds, out, CandidateConfig(n=4), progress=False)


def oracle_labels(out, conds, leave_out: int = 1) -> list[dict]:
    """The sheet filled in by the toy oracle (best and worst score per dimension); the first rows left empty."""
    rows = [json.loads(line) for line in (out / TO_LABEL).read_text().splitlines()]
    for r in rows[leave_out:]:
        cond = load_condition(conds / r["condition"])
        s = {c: score(cond, load_rgb(out / r["condition"] / f"{c}.png"))[r["dimension"]] for c in r["candidates"]}
        order = sorted(r["candidates"], key=lambda c: s[c])
        r["worst"], r["best"] = order[0], order[-1]
    return rows


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_labels_become_preference_pairs(tmp_path, made, conds):
    out, _ = made
    rows = oracle_labels(out, conds)
    meta = import_labels(out, write_jsonl(tmp_path / "labels.jsonl", rows), tmp_path / "prefs")
    pairs = load_pairs(tmp_path / "prefs")
    assert meta["pairs"] == len(pairs) == len(rows) - 1 and meta["unlabelled"] == 1
    assert {p["winner"] for p in pairs} == {"a", "b"}  # the winner's position is drawn, not fixed
    labelled = {(r["condition"], r["dimension"]): r for r in rows[1:]}
    for p in pairs:
        r = labelled[p["condition"], p["dimension"]]
        winner, loser = (p["image_a"], p["image_b"]) if p["winner"] == "a" else (p["image_b"], p["image_a"])
        assert winner.endswith(f"/{r['best']}.png") and loser.endswith(f"/{r['worst']}.png")
    assert len(as_dataset(tmp_path / "prefs")) == len(pairs)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r.update(condition="nope"), "line 2: condition 'nope' is not in"),
        (lambda r: r.update(dimension="removal_quality"), "line 2: dimension 'removal_quality' is not one of"),
        (lambda r: r.update(best="c9"), "line 2: best is 'c9'"),
        (lambda r: r.update(worst=r["best"]), "line 2: best and worst are both"),
    ],
)
def test_bad_label_rows_are_refused_by_line(tmp_path, made, conds, edit, message):
    out, _ = made
    rows = oracle_labels(out, conds, leave_out=0)[:3]
    edit(rows[1])
    with pytest.raises(UserError, match=message):
        import_labels(out, write_jsonl(tmp_path / "labels.jsonl", rows), tmp_path / "prefs")
    assert not (tmp_path / "prefs").exists()


def test_a_duplicate_or_broken_line_is_refused(tmp_path, made, conds):
    out, _ = made
    rows = oracle_labels(out, conds, leave_out=0)[:2]
    with pytest.raises(UserError, match="line 3: .* is labelled again .*line 1"):
        import_labels(out, write_jsonl(tmp_path / "l.jsonl", [*rows, rows[0]]), tmp_path / "p")
    (tmp_path / "broken.jsonl").write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(UserError, match="line 2: not valid JSON"):
        import_labels(out, tmp_path / "broken.jsonl", tmp_path / "p")
    with pytest.raises(UserError, match="no labelled row"):
        import_labels(
            out, write_jsonl(tmp_path / "empty.jsonl", [dict(rows[0], best=None, worst=None)]), tmp_path / "p"
        )
    assert not (tmp_path / "p").exists()


def test_cli_candidates_and_import(tmp_path, conds, tiny_fill_dir, monkeypatch, capsys):
    out = tmp_path / "c"
    args = ["--model", tiny_fill_dir, "--conditions", conds, "--out", out, "--per-condition", "2", "--steps", "1",
            "--true-cfg", "1"]  # fmt: skip
    code, text, err = run_cli(monkeypatch, capsys, "candidates", *args)
    assert code == 0 and "5 conditions generated" in text, err
    write_jsonl(tmp_path / "labels.jsonl", oracle_labels(out, conds, leave_out=0))
    labels = tmp_path / "labels.jsonl"
    code, text, err = run_cli(monkeypatch, capsys, "import-labels", "--candidates", out, "--labels", labels, "--out",
                              tmp_path / "prefs")  # fmt: skip
    assert code == 0 and "pairs to" in text, err
    for args, message in [
        (["candidates", "--model", tiny_fill_dir, "--conditions", conds, "--out", tmp_path / "x", "--steps", "a"],
         "--steps 'a'"),
        (["candidates", "--model", "opencv", "--conditions", conds, "--out", tmp_path / "x"], "not OpenCV"),
        (["candidates", "--model", tiny_fill_dir, "--conditions", conds, "--out", tmp_path / "x",
          "--per-condition", "1"], "at least 2 candidates"),
        (["import-labels", "--candidates", conds, "--labels", tmp_path / "labels.jsonl", "--out", tmp_path / "y"],
         "not a folder from `onereward candidates`"),
    ]:  # fmt: skip
        code, _, err = run_cli(monkeypatch, capsys, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_real_data_pipeline_mixed_sizes_to_a_trained_and_evaluated_reward_model(tmp_path, tiny_fill_dir, tiny_rm_dir):
    """Conditions of two sizes -> candidates -> labels -> pairs -> train-reward as for Qwen2.5-VL-7B (a model folder
    by path, LoRA, bf16, checkpointing of both towers, images read from disk at one training size) -> eval-reward."""
    from transformers import Qwen2_5_VLForConditionalGeneration

    from onereward.reward.evaluate import evaluate_reward
    from onereward.reward.train import RewardTrainConfig, train

    conds = tmp_path / "conds"
    for size in (64, 96):
        for task in ("fill", "removal"):
            for i, c in enumerate(make_conditions(task, 3, seed=1, size=size, split="pref")):
                save_condition(c, conds / f"{task}-{size}-{i}")
    cands = tmp_path / "cands"
    candidates(str(tiny_fill_dir), conds, cands, CandidateConfig(n=2, steps=(1, 2), true_cfg=(1.0,)), progress=False)
    import_labels(cands, write_jsonl(tmp_path / "labels.jsonl", oracle_labels(cands, conds, 0)), tmp_path / "prefs")
    cfg = dict(prefs=str(tmp_path / "prefs"), base=str(tiny_rm_dir), lora_rank=4, steps=3, batch_size=2,
               held_out=0.34, threads=1)  # fmt: skip
    with pytest.raises(UserError, match="pass --image-size S"):  # in memory, the sizes must agree
        train(RewardTrainConfig(out=str(tmp_path / "no"), **cfg).check(), progress=False)
    out = train(RewardTrainConfig(out=str(tmp_path / "rm"), image_size=64, mixed_precision="bf16",
                                  gradient_checkpointing=True, **cfg).check(), progress=False)  # fmt: skip
    trained = Qwen2_5_VLForConditionalGeneration.from_pretrained(out)
    assert trained.dtype == torch.bfloat16  # the bf16 base, the adapters merged into it
    base = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_rm_dir, dtype=torch.bfloat16).state_dict()
    moved = [n for n, t in trained.state_dict().items() if not torch.equal(t, base[n])]
    assert moved and all("language_model" in n or "visual" in n for n in moved)  # LoRA steps reached the weights
    report = json.loads((out / "train_report.json").read_text())
    assert report["steps"] == 3 and report["pairs"]["images"] > 0 and not report["aux_pairs"]
    assert json.loads((out / "onereward.json").read_text()) == {"image_size": 64}  # how it judges other sizes
    result = evaluate_reward(out, tmp_path / "prefs", tmp_path / "acc.json")  # at its training size
    assert result["n_pairs"] > 0 and set(result["reward_accuracy"]) <= {"fill", "removal"}


def test_two_processes_split_the_conditions_and_make_the_same_candidates(tmp_path, conds, tiny_fill_dir):
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}  # the same threads: the same float sums
    args = ["candidates", "--model", str(tiny_fill_dir), "--conditions", str(conds), "--per-condition", "2",
            "--steps", "1,2", "--true-cfg", "1,2"]  # fmt: skip
    for name, launcher in (("two", ["torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29561", "-m"]),
                           ("one", [])):  # fmt: skip
        cmd = [sys.executable, "-m", *launcher, "onereward.cli", *args, "--out", str(tmp_path / name)]
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
        assert res.stdout.count("conditions generated") == 1  # one process reports
    one, two = tmp_path / "one", tmp_path / "two"
    pngs = sorted(p.relative_to(one) for p in one.rglob("c*.png"))
    assert len(pngs) == 10 and pngs == sorted(p.relative_to(two) for p in two.rglob("c*.png"))
    assert all(np.array_equal(load_rgb(one / f), load_rgb(two / f)) for f in pngs)
    assert (one / TO_LABEL).read_text() == (two / TO_LABEL).read_text()


def test_the_labelling_page_in_headless_chromium_keeps_choices_and_downloads_the_labels(tmp_path, made):
    """label.html: images load, a candidate chosen as best and worst keeps only the last choice, a reload keeps the
    choices (localStorage), and the downloaded labels.jsonl imports as pairs."""
    from test_report import CHROMIUM, CHROMIUM_ARGS, _browser

    out, _ = made
    sync_playwright = _browser()
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(accept_downloads=True)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((out / "label.html").as_uri(), wait_until="load")
            card0 = page.locator("#card-0 img")
            card0.first.scroll_into_view_if_needed()
            page.wait_for_function("[...document.querySelectorAll('#card-0 img')].every(i => i.complete)")
            widths = page.evaluate("[...document.querySelectorAll('#card-0 img')].map(i => i.naturalWidth)")
            page.check("#card-0 input[data-which=best][value=c1]")
            page.check("#card-0 input[data-which=worst][value=c0]")
            page.check("#card-1 input[data-which=worst][value=c2]")
            page.check("#card-1 input[data-which=best][value=c2]")  # clears worst c2: row 1 stays half-labelled
            # Chromium commits localStorage to the browser process asynchronously: reload until it has (10 s at most)
            for _ in range(50):
                page.wait_for_timeout(200)
                page.reload(wait_until="load")
                kept = page.evaluate(
                    "[...document.querySelectorAll('input:checked')].map(b => b.name + '=' + b.value)"
                )
                if len(kept) == 3:
                    break
            progress = page.inner_text("#progress")
            with page.expect_download() as download:
                page.click("#download")
            download.value.save_as(tmp_path / "labels.jsonl")
        finally:
            browser.close()
    assert errors == []
    assert len(widths) == 5 and all(w == 64 for w in widths)  # source, mask, c0..c2
    assert sorted(kept) == ["best-0=c1", "best-1=c2", "worst-0=c0"] and progress.startswith("1 of ")
    rows = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert [(r["best"], r["worst"]) for r in rows[:2]] == [("c1", "c0"), (None, None)]
    meta = import_labels(out, tmp_path / "labels.jsonl", tmp_path / "prefs")
    assert meta["pairs"] == 1 and meta["unlabelled"] == len(rows) - 1
