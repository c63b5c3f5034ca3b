"""`onereward collect`: candidates from a fill model, the annotator's best/worst pairs, a valid preference folder."""

import json

import numpy as np
import pytest

from onereward.data.prefs import FIELDS, load_pairs
from onereward.errors import UserError
from onereward.reward.collect import CollectConfig, collect, draw_plan
from onereward.tasks import FAMILIES, TASK_NAMES, TASKS, family_dimensions


@pytest.fixture(scope="module")
def collected(tiny_fill_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("prefs") / "p"
    cfg = CollectConfig(conditions=2, batch_size=10, steps=(1, 2), workers=0, seed=0, target_pairs=0)
    meta = collect(tiny_fill_dir, out, cfg, progress=False)
    return out, meta, cfg


def test_collect_writes_a_valid_preference_folder(collected):
    out, meta, cfg = collected
    rows = load_pairs(out)  # validates every row and every image
    assert rows, "no pair survived the near-tie filter"
    assert all(set(FIELDS) <= set(r) for r in rows)
    conditions = {r["condition"] for r in rows}
    for r in rows:
        task = TASKS[r["task"]]
        assert r["dimension"] in task.dimensions
        assert r["image_a"] != r["image_b"]
        assert r["prompt"] == ("" if not task.uses_prompt else r["prompt"]) and (r["prompt"] or not task.uses_prompt)
    assert len({r["id"] for r in rows}) == len(rows)
    # one pair per (condition, dimension) at most, and every pair's images are candidates of its own condition
    assert len({(r["condition"], r["dimension"]) for r in rows}) == len(rows)
    assert all(r["image_a"].startswith(f"images/{r['condition']}/") for r in rows)
    assert len(conditions) <= cfg.conditions * len(TASK_NAMES)


def test_collect_meta_counts_and_drop_rate(collected):
    out, meta, cfg = collected
    rows = load_pairs(out)
    on_disk = json.loads((out / "meta.json").read_text())
    assert on_disk["pairs"] == meta["pairs"] == len(rows)
    judged = sum(len(TASKS[t].dimensions) * n for t, n in meta["conditions_per_task"].items())  # judgements
    assert meta["pairs"] + meta["dropped_near_ties"] == judged
    assert meta["drop_rate"] == pytest.approx(meta["dropped_near_ties"] / judged, abs=1e-4)
    for fam in FAMILIES:
        for dim in family_dimensions(fam):
            n = sum(r["dimension"] == dim and TASKS[r["task"]].family == fam for r in rows)
            assert meta["pairs_per_family"][fam][dim] == n
    assert meta["settings"]["candidates"] == 4


def test_candidates_file_rebuilds_conditions_and_records_settings(collected):
    from onereward.toyworld import make_condition

    out, _, cfg = collected
    cands = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    assert len(cands) == cfg.conditions * len(TASK_NAMES)
    for c in cands[:5]:
        assert len(c["candidates"]) == len(c["settings"]) == len(c["scores"]) == 4
        for s in c["settings"]:
            assert s["steps"] in cfg.steps and s["true_cfg"] in cfg.true_cfg
            assert cfg.noise_scale[0] <= s["noise_scale"] <= cfg.noise_scale[1]
            assert (s["negative_prompt"] is None) == (s["true_cfg"] == 1)
        cond = make_condition(c["task"], c["item_seed"], c["size"])
        assert cond.prompt == c["prompt"]


def test_top_up_feeds_short_cells_from_their_tasks():
    from onereward.reward.collect import top_up

    cfg = CollectConfig(conditions=100, target_pairs=100, max_conditions=250)
    judged = dict.fromkeys(TASK_NAMES, 100)
    rows = [{"task": t, "dimension": d} for t in TASK_NAMES for d in TASKS[t].dimensions for _ in range(100)]
    assert not any(top_up(rows, judged, cfg).values())  # every cell at target
    rows = [r for r in rows if (r["task"], r["dimension"]) != ("extend", "text_alignment")][:]
    rows += [{"task": "extend", "dimension": "text_alignment"}] * 40  # yield 0.4 per condition, 60 short
    extra = top_up(rows, judged, cfg)
    assert extra["extend"] == 150 and sum(extra.values()) == 150  # ceil(1.1 * 60 / 0.4) = 165, capped at 250 - 100


def test_settings_depend_on_seed_and_batch_only():
    cfg = CollectConfig(seed=3)
    assert draw_plan(cfg, 5, 10) == draw_plan(cfg, 5, 10)
    assert draw_plan(cfg, 5, 10) != draw_plan(cfg, 6, 10)
    plans = [draw_plan(cfg, b, 64) for b in range(40)]
    scales = np.array([s for p in plans for c in p for s in c["noise_scale"]])
    assert scales.min() < 0.6 and scales.max() > 1.4, "noise strength must vary widely (PILOT.md section 3)"
    assert len({c["steps"] for p in plans for c in p}) >= 4


def test_collect_refuses_an_existing_dataset(collected, tiny_fill_dir):
    out, _, cfg = collected
    with pytest.raises(UserError, match="already holds"):
        collect(tiny_fill_dir, out, cfg, progress=False)


def test_a_negative_top_up_target_is_a_user_error_before_any_work():
    with pytest.raises(UserError, match="--target-pairs -1"):
        CollectConfig(target_pairs=-1).check()
    CollectConfig(target_pairs=0).check()  # 0 = no top-up
