"""THE task table: every other module reads a task's mask kind, prompts, dimensions and weight from here.

OneReward (arXiv 2508.21066) trains one mask-guided model on four tasks that share the input triplet
(source image, mask, prompt). Text rendering is a kind of image fill (prompt like `the words "AB"`), and image
extend comes with or without a user prompt; we keep those apart as rows because they differ in prompt handling,
evaluation dimensions and the paper reports them apart. `family` groups rows the way the paper's Table 1 does.
"""

from __future__ import annotations

from dataclasses import dataclass

# Fixed prompts of the official inference code (github.com/bytedance/OneReward).
REMOVAL_PROMPT = "remove"
EXTEND_NOPROMPT_PROMPT = "high-definition, perfect composition"
NEGATIVE_PROMPT = "nsfw"

# Evaluation dimensions and their one-line definitions (PAPER.md section 1). Query templates and the oracle
# document how each is judged; this is the single list of their names.
DIMENSIONS: dict[str, str] = {
    "text_alignment": "the generated content matches the prompt in semantics, attributes and position",
    "consistency": "colour, texture and illumination are continuous with the surrounding image",
    "structure": "geometric coherence: clean contours, plausible perspective and topology",
    "aesthetics": "overall composition, realism and fidelity, free of noise and artefacts",
    "removal_quality": "the target is fully gone, the area is cleanly filled and nothing new appears",
}


@dataclass(frozen=True)
class Task:
    name: str  # CLI and file name
    family: str  # the paper's task: fill, extend or removal (Table 1 rows)
    title: str  # human-readable name, used in reward-model queries
    mask_kind: str  # which generator in onereward.data.masks makes its masks
    uses_prompt: bool  # whether the user's prompt is fed to the model
    fixed_prompt: str | None  # the prompt fed instead when uses_prompt is False
    dimensions: tuple[str, ...]  # evaluation dimensions, in the order rewards are returned
    weight: float  # sampling probability in multi-task RL

    def prompt_for(self, user_prompt: str | None) -> str:
        """The prompt the fill model sees: the user's, or this task's fixed one."""
        if self.uses_prompt:
            if not user_prompt:
                raise ValueError(f"task {self.name!r} needs a prompt; pass one (e.g. --prompt 'red circle')")
            return user_prompt
        return self.fixed_prompt or ""


_FILL_DIMS = ("text_alignment", "consistency", "structure", "aesthetics")

# Weights: the paper's Seedream 3.0 Fill mix, 50% fill / 25% extend / 25% removal. Within fill, a quarter of the
# samples are text rendering (INFERRED: the paper does not give the share); extend splits evenly.
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("fill", "fill", "image fill", "box_or_brush", True, None, _FILL_DIMS, 0.375),
        Task("text", "fill", "image fill (text rendering)", "text_box", True, None, _FILL_DIMS, 0.125),
        Task("extend", "extend", "image extend", "border", True, None, _FILL_DIMS, 0.125),
        Task(
            "extend_noprompt",
            "extend",
            "image extend",
            "border",
            False,
            EXTEND_NOPROMPT_PROMPT,
            ("consistency", "structure", "aesthetics"),
            0.125,
        ),
        Task("removal", "removal", "object removal", "object", False, REMOVAL_PROMPT, ("removal_quality",), 0.25),
    )
}

TASK_NAMES: tuple[str, ...] = tuple(TASKS)
FAMILIES: tuple[str, ...] = ("fill", "extend", "removal")
MAX_DIMS = max(len(t.dimensions) for t in TASKS.values())  # the most dimensions a task has: per-dimension array width


def get_task(name: str) -> Task:
    """Look a task up by name, with an error that lists the valid names."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}") from None


def family_dimensions(family: str) -> tuple[str, ...]:
    """All dimensions any task of a family is judged on, in table order (the columns of the paper's Table 1)."""
    dims: list[str] = []
    for task in TASKS.values():
        if task.family == family:
            dims += [d for d in task.dimensions if d not in dims]
    return tuple(dims)


def task_weights(overrides: dict[str, float] | None = None) -> dict[str, float]:
    """Sampling weights, normalised to sum to 1; `overrides` replaces some of them (0 turns a task off)."""
    weights = {name: task.weight for name, task in TASKS.items()}
    for name, w in (overrides or {}).items():
        get_task(name)
        if w < 0:
            raise ValueError(f"task weight for {name!r} is {w}; weights must be >= 0")
        weights[name] = w
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("all task weights are 0; give at least one task a positive weight")
    return {name: w / total for name, w in weights.items()}
