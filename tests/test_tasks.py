import pytest

from onereward.tasks import DIMENSIONS, TASKS, family_dimensions, get_task, task_weights


def test_table_matches_the_paper():
    assert get_task("removal").fixed_prompt == "remove"
    assert get_task("extend_noprompt").fixed_prompt == "high-definition, perfect composition"
    assert get_task("removal").dimensions == ("removal_quality",)
    assert "text_alignment" not in get_task("extend_noprompt").dimensions
    assert family_dimensions("fill") == ("text_alignment", "consistency", "structure", "aesthetics")
    for task in TASKS.values():
        assert set(task.dimensions) <= set(DIMENSIONS)


def test_default_weights_follow_the_seedream_mix():
    w = task_weights()
    fam = {f: sum(w[n] for n, t in TASKS.items() if t.family == f) for f in ("fill", "extend", "removal")}
    assert fam == pytest.approx({"fill": 0.5, "extend": 0.25, "removal": 0.25})
    assert w["extend"] == pytest.approx(w["extend_noprompt"])


def test_weight_overrides_renormalise_and_reject_bad_values():
    w = task_weights({"removal": 0.0})
    assert w["removal"] == 0 and sum(w.values()) == pytest.approx(1)
    with pytest.raises(ValueError, match="unknown task"):
        task_weights({"inpaint": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        task_weights({"fill": -1.0})


def test_prompt_for_uses_fixed_prompts_and_demands_user_prompts():
    assert get_task("removal").prompt_for("anything") == "remove"
    assert get_task("fill").prompt_for("red circle") == "red circle"
    with pytest.raises(ValueError, match="needs a prompt"):
        get_task("fill").prompt_for(None)
