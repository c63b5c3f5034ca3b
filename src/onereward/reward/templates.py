"""The reward model's query templates: the only place the wording of a reward query lives.

OneReward asks one VLM, for one (task, dimension) at a time, whether the first of two images is better than the
second, and reads P("Yes") off the next token (PAPER.md section 2). The paper does not publish its template, so the
wording below is INFERRED, built from what the paper says the query carries:

- the task's title (`tasks.Task.title`), so one model can judge every task;
- the dimension's name and its one-line definition (`tasks.DIMENSIONS`), so the model knows what to compare;
- the user's prompt, ONLY for text_alignment: the other dimensions do not depend on it, and leaving it out keeps
  a prompt from leaking into judgements that must ignore it;
- the question "Is the first image better than the second image in <dimension>? Answer Yes or No." The answer
  format is spelled out so that an instruction-tuned model (Qwen2.5-VL-7B-Instruct) puts its mass on "Yes"/"No".

The text, for fill / text_alignment with prompt "red circle" (<...> is read from tasks.py):

    Task: <TASKS["fill"].title>.
    Dimension: text alignment, meaning <DIMENSIONS["text_alignment"]>.
    Prompt: red circle.
    Is the first image better than the second image in text alignment? Answer Yes or No.

Chat layout: one user turn, the two images FIRST (first, then second), then the text. Putting the images first makes
everything up to the second image's <|vision_end|> identical across the 1-4 dimension queries of a pair, so the
images' tokens (the bulk of the sequence) are computed once and shared (`onereward.reward.model`). The system turn
is whatever the checkpoint's chat template adds by default (Qwen2.5-VL: "You are a helpful assistant.").
"""

from __future__ import annotations

from onereward.tasks import DIMENSIONS, TASKS, get_task

# The answer words; each must be a single token in the reward model's tokenizer (checked when a model is loaded).
YES, NO = "Yes", "No"
QUESTION = "Is the first image better than the second image in {dimension}? Answer Yes or No."


def dimension_label(dimension: str) -> str:
    """The dimension's name as a query shows it: `text_alignment` -> `text alignment`."""
    return dimension.replace("_", " ")


def query_text(task: str, dimension: str, prompt: str | None = None) -> str:
    """The text of one query (the part after the two images). `prompt` is used only for text_alignment."""
    row = get_task(task)
    if dimension not in row.dimensions:
        raise ValueError(
            f"task {task!r} is not judged on {dimension!r}; its dimensions are {', '.join(row.dimensions)}"
        )
    label = dimension_label(dimension)
    lines = [f"Task: {row.title}.", f"Dimension: {label}, meaning {DIMENSIONS[dimension]}."]
    if dimension == "text_alignment":
        if not prompt:
            raise ValueError(f"the text_alignment query of task {task!r} needs the user's prompt; got {prompt!r}")
        lines.append(f"Prompt: {prompt}.")
    lines.append(QUESTION.format(dimension=label))
    return "\n".join(lines)


def query_messages(task: str, dimension: str, prompt: str | None = None) -> list[dict]:
    """The chat of one query: one user turn with the two images first, then the query text."""
    content = [{"type": "image"}, {"type": "image"}, {"type": "text", "text": query_text(task, dimension, prompt)}]
    return [{"role": "user", "content": content}]


def template_texts() -> list[str]:
    """Every query text (with a one-word prompt): the fixed wording the tiny tokenizer learns whole words of."""
    return [query_text(t.name, d, "x") for t in TASKS.values() for d in t.dimensions]
