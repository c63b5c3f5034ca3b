"""Evaluation metrics on hand-made records and pair rows, where the right answer is known by construction."""

import pytest

from onereward.eval.metrics import (
    PAPER_TABLE1,
    PAPER_USABILITY,
    dimension_scores,
    gsb,
    markdown_tables,
    pairwise_accuracy,
    position_consistency,
    removal_quality_rate,
    text_success,
    usability,
)
from onereward.tasks import TASKS, family_dimensions


def rec(id_, task, score=0.5, usable=False, **scores):
    """A record whose task dimensions all score `score`, except those given by keyword."""
    dims = {d: score for d in TASKS[task].dimensions}
    return {"id": id_, "task": task, "scores": {**dims, **scores}, "usable": usable}


# --- usability, dimension scores, binary rates ---


def test_usability_is_per_task_with_text_and_extend_variants_kept_apart():
    records = [
        rec("f1", "fill", usable=True),
        rec("f2", "fill", usable=True),
        rec("f3", "fill", usable=True),
        rec("f4", "fill", usable=False),
        rec("t1", "text", usable=True),
        rec("t2", "text", usable=False),
        rec("e1", "extend_noprompt", usable=True),
        rec("r1", "removal", usable=False),
    ]
    u = usability(records)
    assert u == {"fill": 0.75, "text": 0.5, "extend_noprompt": 1.0, "removal": 0.0}
    assert list(u) == ["fill", "text", "extend_noprompt", "removal"]  # the task table's order
    assert usability([]) == {}


def test_dimension_scores_average_each_dimension_of_the_task_row():
    records = [
        rec("a", "fill", 0.2, text_alignment=1.0),
        rec("b", "fill", 0.4, text_alignment=0.0),
        rec("c", "removal", 0.9),
    ]
    s = dimension_scores(records)
    assert s["fill"] == pytest.approx({"text_alignment": 0.5, "consistency": 0.3, "structure": 0.3, "aesthetics": 0.3})
    assert s["removal"] == pytest.approx({"removal_quality": 0.9})
    assert "text_alignment" not in dimension_scores([rec("x", "extend_noprompt")])["extend_noprompt"]


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"id": "x", "task": "inpaint", "scores": {}, "usable": True}, "unknown task"),
        ({"id": "x", "task": "removal", "scores": {}, "usable": True}, "no score for removal_quality"),
        (rec("x", "removal", 1.5), r"in \[0, 1\]"),
        (rec("x", "removal", float("nan")), r"in \[0, 1\]"),
        ({"id": "x", "task": "removal", "scores": {"removal_quality": 1}, "usable": "yes"}, "True or False"),
        ({"id": "x", "task": "removal", "scores": {"removal_quality": 1}}, "lacks usable"),
    ],
)
def test_malformed_records_are_rejected_with_a_message(bad, match):
    with pytest.raises(ValueError, match=match):
        usability([bad])


def test_text_success_and_removal_rate_are_threshold_pass_rates():
    records = [rec(i, "text", text_alignment=ta) for i, ta in enumerate([0.95, 0.8, 0.5, 0.1])]
    records += [rec(f"r{i}", "removal", q) for i, q in enumerate([0.9, 0.6, 0.3])]
    records += [rec("f", "fill", text_alignment=1.0)]  # fill records never count as text rendering
    assert text_success(records, threshold=0.5) == 0.75  # >= threshold passes
    assert text_success(records, threshold=0.9) == 0.25
    assert removal_quality_rate(records, threshold=0.6) == pytest.approx(2 / 3)
    assert text_success([rec("f", "fill")], threshold=0.5) is None  # no text records: not run, not 0


# --- GSB ---


def test_gsb_matches_by_id_and_applies_the_tie_band():
    base = [rec(i, "fill", 0.60) for i in "abcdef"] + [rec("r", "removal", 0.5)]
    diffs = {"a": 0.10, "b": 0.02, "c": -0.02, "d": -0.019, "e": -0.05, "f": 0.021}
    policy = [rec(i, "fill", 0.60 + d) for i, d in diffs.items()] + [rec("r", "removal", 0.9)]
    out = gsb(list(reversed(policy)), base)  # order of the lists does not matter, ids do
    # a and f are good (> .02); b, c, d sit inside the inclusive band; e is bad
    assert out["fill"] == pytest.approx({"good": 2 / 6, "same": 3 / 6, "bad": 1 / 6})
    assert out["removal"] == {"good": 1.0, "same": 0.0, "bad": 0.0}
    assert sum(out["fill"].values()) == pytest.approx(1)
    assert gsb(policy, base, margin=0.0)["fill"] == pytest.approx({"good": 0.5, "same": 0, "bad": 0.5})


def test_gsb_compares_the_mean_over_the_tasks_dimensions():
    # One dimension up by .2, another down by .2: the image as a whole is the same.
    a = [rec("x", "fill", 0.5, structure=0.7, consistency=0.3)]
    b = [rec("x", "fill", 0.5)]
    assert gsb(a, b)["fill"] == {"good": 0.0, "same": 1.0, "bad": 0.0}


def test_gsb_refuses_unmatched_duplicate_or_mislabelled_ids():
    b = [rec("x", "fill"), rec("y", "fill")]
    with pytest.raises(ValueError, match="same conditions"):
        gsb([rec("x", "fill"), rec("z", "fill")], b)
    with pytest.raises(ValueError, match="same conditions"):
        gsb([rec("x", "fill")], b)
    with pytest.raises(ValueError, match="twice"):
        gsb([rec("x", "fill"), rec("x", "fill"), rec("y", "fill")], b)
    with pytest.raises(ValueError, match="task"):
        gsb([rec("x", "fill"), rec("y", "text")], b)
    with pytest.raises(ValueError, match=">= 0"):
        gsb(b, b, margin=-0.1)


# --- reward-model accuracy ---


def pair(task, dim, wl, lw):
    return {"task": task, "dimension": dim, "p_yes_wl": wl, "p_yes_lw": lw}


def test_two_order_accuracy_exposes_a_position_biased_judge_that_one_order_flatters():
    # A judge that answers Yes whatever it sees (the PILOT's removal RM): perfect one-order, chance two-order.
    always_yes = [pair("removal", "removal_quality", 0.9, 0.8) for _ in range(60)]
    # A real judge: right in both orders on 50 pairs, wrong in both on 10.
    honest = [pair("fill", "structure", 0.8, 0.2)] * 50 + [pair("fill", "structure", 0.3, 0.7)] * 10
    acc = pairwise_accuracy(always_yes + honest)
    rq = acc["removal"]["removal_quality"]
    assert rq == {"two_order": 0.5, "one_order": 1.0, "n": 60, "position_bias_flag": True}
    st = acc["fill"]["structure"]
    assert st["two_order"] == pytest.approx(50 / 60) and st["one_order"] == pytest.approx(50 / 60)
    assert st["n"] == 60 and st["position_bias_flag"] is False
    cons = position_consistency(always_yes + honest)
    assert cons["removal"]["removal_quality"] == 0.0  # never flips its answer when the order is swapped
    assert cons["fill"]["structure"] == 1.0  # always flips (even when wrong)


def test_partial_position_bias_and_the_flag_threshold():
    # Prefers the first image: right in the winner-first order on all 10, right in the other order on only 4.
    rows = [pair("fill", "aesthetics", 0.8, 0.7)] * 6 + [pair("fill", "aesthetics", 0.8, 0.3)] * 4
    cell = pairwise_accuracy(rows)["fill"]["aesthetics"]
    assert cell["one_order"] == 1.0 and cell["two_order"] == pytest.approx(0.7) and cell["position_bias_flag"]
    assert position_consistency(rows)["fill"]["aesthetics"] == pytest.approx(0.4)
    # A gap of exactly .1 (one-order .6, two-order .5) is not flagged; the threshold is "more than".
    rows = [pair("fill", "aesthetics", 0.8, 0.2)] * 4 + [pair("fill", "aesthetics", 0.8, 0.8)] * 2
    rows += [pair("fill", "aesthetics", 0.2, 0.8)] * 4
    cell = pairwise_accuracy(rows)["fill"]["aesthetics"]
    assert (cell["one_order"], cell["two_order"]) == pytest.approx((0.6, 0.5)) and not cell["position_bias_flag"]


def test_accuracy_groups_tasks_by_family_and_a_tie_is_wrong_both_ways():
    rows = [
        pair("fill", "text_alignment", 0.9, 0.1),
        pair("text", "text_alignment", 0.5, 0.5),  # undecided: wrong in both orders
        pair("extend", "consistency", 0.9, 0.1),
        pair("extend_noprompt", "consistency", 0.9, 0.1),
    ]
    acc = pairwise_accuracy(rows)
    assert set(acc) == {"fill", "extend"}
    assert acc["fill"]["text_alignment"]["n"] == 2 and acc["fill"]["text_alignment"]["two_order"] == 0.5
    assert acc["extend"]["consistency"] == {"two_order": 1.0, "one_order": 1.0, "n": 2, "position_bias_flag": False}
    with pytest.raises(ValueError, match="not judged on"):
        pairwise_accuracy([pair("removal", "text_alignment", 0.9, 0.1)])
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        pairwise_accuracy([pair("fill", "structure", 1.2, 0.1)])


# --- tables ---


def test_paper_constants_cover_table1_and_the_headline_usability():
    for family, row in PAPER_TABLE1.items():
        assert tuple(row) == family_dimensions(family)
    assert PAPER_TABLE1["fill"]["text_alignment"] == 83.77 and PAPER_TABLE1["removal"]["removal_quality"] == 84.93
    assert PAPER_USABILITY == {"fill": 69.04, "extend": 64.72, "extend_noprompt": 87.54, "removal": 82.22}


def test_markdown_tables_show_ours_beside_the_labelled_papers_and_mark_gaps():
    results = {
        "reward_accuracy": {"fill": {"text_alignment": 0.97, "structure": 0.92}, "removal": {"removal_quality": 0.5}},
        "reward_accuracy_detail": {
            "removal": {"removal_quality": {"two_order": 0.5, "one_order": 1.0, "n": 24, "position_bias_flag": True}}
        },
        "reward_accuracy_by_task": {
            "text": {"text_alignment": {"two_order": 0.828, "n": 64}},
            "extend_noprompt": {"aesthetics": {"two_order": 0.843, "n": 35}},
        },
        "usability": {"base": {"fill": 0.165, "removal": 0.73}, "onereward": {"fill": 0.285, "removal": 0.75}},
        "gsb": {"onereward_vs_base": {"fill": {"good": 0.59, "same": 0.38, "bad": 0.03}}},
        "timings": {"data": 54.0, "rl": 120.5},
    }
    md = markdown_tables(results)
    assert "| text | Text Align | 82.8 | 64 |" in md  # per task row, beside Table 1's families
    assert "| extend (no prompt) | Aesthetics | 84.3 | 35 (small) |" in md
    assert "| Image Fill | 97.0 | not run | 92.0 | not run | - |" in md
    assert "| Object Removal | - | - | - | - | 50.0 † |" in md  # flagged position bias
    assert "| Image Fill | 83.77 | 74.23 | 74.63 | 72.10 | - |" in md  # the paper's Table 1
    assert "paper, on its benchmark" in md
    assert "| base | 16.5 | not run | not run | not run | 73.0 |" in md
    assert "| Seedream 3.0 Fill + OneReward | 69.04 | - | 64.72 | 87.54 | 82.22 |" in md
    assert "| onereward_vs_base | 59.0 / 38.0 / 3.0 | not run |" in md
    assert "24 (small)" in md
    assert "| total | 174.5 |" in md
    assert "_not run_" in md  # dimension scores were not given
    with pytest.raises(ValueError, match="fractions"):
        markdown_tables({"usability": {"base": {"fill": 16.5}}})
    with pytest.raises(ValueError, match="unknown name 'inpaint'"):
        markdown_tables({"usability": {"base": {"inpaint": 0.5}}})
    with pytest.raises(ValueError, match="reward_accuracy_by_task.extend_noprompt: unknown name 'text_alignment'"):
        markdown_tables(
            {"reward_accuracy_by_task": {"extend_noprompt": {"text_alignment": {"two_order": 0.5, "n": 3}}}}
        )


def test_on_policy_accuracy_joins_the_per_task_table_when_measured():
    by_task = {"removal": {"removal_quality": {"two_order": 0.954, "n": 76}}}
    assert "on-policy" not in markdown_tables({"reward_accuracy_by_task": by_task})
    on_policy = {"removal": {"removal_quality": {"two_order": 0.529, "n": 34}}}
    md = markdown_tables({"reward_accuracy_by_task": by_task, "on_policy_accuracy": on_policy})
    assert "| removal | Removal Quality | 95.4 | 76 | 52.9 | 34 (small) |" in md
    with pytest.raises(ValueError, match="on_policy_accuracy.removal: unknown name 'structure'"):
        markdown_tables({"on_policy_accuracy": {"removal": {"structure": {"two_order": 0.5, "n": 3}}}})
