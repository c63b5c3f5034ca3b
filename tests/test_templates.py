"""Query templates: every (task, dimension) renders; each carries exactly what the paper's query carries."""

import pytest

from onereward.reward.templates import dimension_label, query_messages, query_text
from onereward.tasks import DIMENSIONS, TASKS

PAIRS = [(t.name, d) for t in TASKS.values() for d in t.dimensions]


@pytest.mark.parametrize("task,dim", PAIRS)
def test_query_names_task_and_defines_dimension(task, dim):
    text = query_text(task, dim, prompt="zebra")
    assert TASKS[task].title in text
    assert dimension_label(dim) in text and DIMENSIONS[dim] in text
    assert text.endswith("Answer Yes or No.")
    assert "Is the first image better than the second image" in text


@pytest.mark.parametrize("task,dim", PAIRS)
def test_prompt_only_for_text_alignment(task, dim):
    text = query_text(task, dim, prompt="zebra")
    assert ("zebra" in text) == (dim == "text_alignment")


def test_queries_of_a_task_differ_by_dimension():
    for task in TASKS.values():
        texts = {query_text(task.name, d, "zebra") for d in task.dimensions}
        assert len(texts) == len(task.dimensions)


def test_images_come_first_then_text():
    (msg,) = query_messages("fill", "structure")
    assert msg["role"] == "user"
    assert [c["type"] for c in msg["content"]] == ["image", "image", "text"]


def test_errors_teach():
    with pytest.raises(ValueError, match="removal_quality"):
        query_text("fill", "removal_quality")
    with pytest.raises(ValueError, match="needs the user's prompt"):
        query_text("fill", "text_alignment", prompt="")
    with pytest.raises(ValueError, match="unknown task"):
        query_text("inpaint", "structure")
