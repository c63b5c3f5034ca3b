"""Known-quality images for a condition: the ground truth and degraded versions of it.

They calibrate the oracle (docs/ORACLE.md, tests) and can serve as graded auxiliary pairs for reward-model
training (PILOT.md section 4). Each variant is `fn(cond, rng) -> (H, W, 3)` float32 in [0, 1]; only the masked
region matters, since every judge composites with the source.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from onereward.toyworld.font import ALPHABET
from onereward.toyworld.scene import COLORS, SHAPES, render, render_background
from onereward.toyworld.world import Condition

Variant = Callable[[Condition, np.random.Generator], np.ndarray]


def ground_truth(cond: Condition, rng: np.random.Generator) -> np.ndarray:
    return cond.target.copy()


def grey(cond: Condition, rng: np.random.Generator) -> np.ndarray:
    """The mask filled with flat mid-grey."""
    return np.full_like(cond.target, 0.5)


def noisy(sigma: float) -> Variant:
    """The ground truth plus N(0, sigma) per pixel and channel, clipped to [0, 1]."""

    def fn(cond: Condition, rng: np.random.Generator) -> np.ndarray:
        return np.clip(cond.target + rng.normal(0, sigma, cond.target.shape), 0, 1).astype(np.float32)

    fn.__name__ = f"noise_{sigma}"
    return fn


def blurred(cond: Condition, rng: np.random.Generator) -> np.ndarray:
    """The ground truth under a 5x5 box blur."""
    return cv2.blur(cond.target, (5, 5), borderType=cv2.BORDER_REFLECT)


def background_only(cond: Condition, rng: np.random.Generator) -> np.ndarray:
    """The scene's background with no object and no text."""
    return render_background(cond.meta["scene"]["background"], cond.size).copy()


def untouched(cond: Condition, rng: np.random.Generator) -> np.ndarray:
    """The source as it is (for removal: the object is still there)."""
    return cond.source.copy()


def wrong_color(cond: Condition, rng: np.random.Generator) -> np.ndarray:
    """The ground truth with its content in the mask recoloured.

    Object pixels take another named colour, text ink a named colour; where the mask holds only background
    (removal, extend without prompt), the background is tinted by +0.3 in its weakest channel.
    """
    out = cond.target.copy()
    scene = cond.meta["scene"]
    M = cond.mask > 0.5
    _, seg = render(scene, text=False)
    target_has_text = cond.task == "text"
    changed = False
    for obj in scene["objects"]:
        pix = M & (seg == obj["id"]) & (np.abs(cond.target - np.asarray(obj["rgb"])).max(-1) < 0.01)
        if pix.any():
            other = [c for c in COLORS if c != obj["color"]]
            out[pix] = COLORS[other[int(rng.integers(0, len(other)))]]
            changed = True
    if target_has_text:
        ink = M & (np.abs(cond.target - np.asarray(scene["text"]["ink"])).max(-1) < 0.01)
        out[ink] = COLORS[list(COLORS)[int(rng.integers(0, len(COLORS)))]]
        changed = True
    if not changed:
        weakest = int(np.argmin(cond.target[M].mean(axis=0)))
        out[..., weakest] = np.clip(out[..., weakest] + 0.3, 0, 1)
    return out


def wrong_shape(cond: Condition, rng: np.random.Generator) -> np.ndarray:
    """fill / extend: the requested object drawn as another shape (same colour, centre and size)."""
    oid = cond.meta.get("target_object")
    if oid is None or cond.task not in ("fill", "extend"):
        raise ValueError(f"wrong_shape needs a requested object (fill or extend), not task {cond.task!r}")
    scene = cond.meta["scene"]
    objs = [dict(o) for o in scene["objects"]]
    obj = next(o for o in objs if o["id"] == oid)
    others = [s for s in SHAPES if s != obj["shape"]]
    obj["shape"] = others[int(rng.integers(0, len(others)))]
    return render({**scene, "objects": objs})[0]


def wrong_text(cond: Condition, rng: np.random.Generator) -> np.ndarray:
    """text: the same box drawn with other letters (each letter replaced by a different one)."""
    if cond.task != "text":
        raise ValueError(f"wrong_text is for the text task, not {cond.task!r}")
    scene = cond.meta["scene"]
    string = "".join(
        [c for c in ALPHABET if c != ch][int(rng.integers(0, len(ALPHABET) - 1))] for ch in scene["text"]["string"]
    )
    return render({**scene, "text": {**scene["text"], "string": string}})[0]


VARIANTS: dict[str, Variant] = {
    "GT": ground_truth,
    "grey": grey,
    "noise .05": noisy(0.05),
    "noise .15": noisy(0.15),
    "blur 5x5": blurred,
    "background only": background_only,
    "wrong colour": wrong_color,
    "wrong shape": wrong_shape,
    "wrong text": wrong_text,
    "untouched": untouched,
}
APPLIES = {"wrong shape": ("fill", "extend"), "wrong text": ("text",)}  # variants that exist for some tasks only


def applies(variant: str, task: str) -> bool:
    return task in APPLIES.get(variant, (task,))


def calibration(
    n: int = 300, size: int = 64, seed: int = 0, split: str = "eval", variants: tuple[str, ...] | None = None
) -> dict[str, dict[str, float | None]]:
    """Usable % per task (rows) and variant (columns) over n conditions each; None where a variant does not apply."""
    from onereward.tasks import TASK_NAMES
    from onereward.toyworld.oracle import score, usable
    from onereward.toyworld.world import make_conditions

    names = variants or tuple(VARIANTS)
    table: dict[str, dict[str, float | None]] = {}
    for task in TASK_NAMES:
        conds = make_conditions(task, n, seed=seed, size=size, split=split)
        table[task] = {}
        for name in names:
            if not applies(name, task):
                table[task][name] = None
                continue
            rng = np.random.default_rng([seed, list(VARIANTS).index(name)])
            hits = [usable(task, score(c, VARIANTS[name](c, rng))) for c in conds]
            table[task][name] = 100.0 * float(np.mean(hits))
    return table


def markdown(table: dict[str, dict[str, float | None]]) -> str:
    """The calibration table as Markdown: tasks as rows, variants as columns, '-' where a variant does not apply."""
    cols = list(next(iter(table.values())))
    lines = ["| task | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for task, row in table.items():
        cells = ["-" if row[c] is None else f"{row[c]:.0f}" for c in cols]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
