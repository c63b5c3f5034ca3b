"""Conditions of every task of the task table, drawn from the toy world, and their folders on disk.

A condition is the model's input triplet plus what judging needs (docs/ARCHITECTURE.md, "a condition"):
`Condition(task, source, mask, prompt, target, meta)`. Per task (PILOT.md section 1, with two additions):

- fill: one object of the scene is masked (its bounding box + 2-6 px, or brush strokes over a 3-5 px dilation of it)
  and removed from the source; prompt "<colour> <shape>", e.g. "red cross"; target: the scene with it.
- text: a letter of the toy block font (8-px cells at 64 px, on the grid) is masked (its box + 2-4 px, symmetric)
  and left out of the source; prompt `the words "T"`; target: the scene with the letter.
- extend: a band on the cell grid (one side 16 or 24 px, or all sides 8 px) hides 40-80% of one object, which the
  prompt names,
  so text alignment means something; other objects keep clear of the band; target: the full scene.
- extend_noprompt: the same bands, every object clear of the band; the task's fixed prompt; target: the full scene.
- removal: one object's silhouette dilated 1-3 px; the task's fixed prompt; target: the scene without it.

Pixel numbers are for 64 px and scale with the size. In extend sources the band is mid-grey, as in
`ExtendPlan.place`: a real extend has nothing there. `meta` is JSON-serialisable and holds the seed, the size, the
whole scene (background spec, objects with colour/shape/centre/size, the text line with its box and ink), the
requested object's id and how the mask was made.

Seeds: `make_condition(task, seed)` is deterministic in (task, seed, size). `make_conditions` derives one seed per
item from (seed, split, task, index) with numpy's SeedSequence, so the splits (train, pref, rl, val, eval, bench) are
separate namespaces: a benchmark item never reuses a training scene.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from onereward.data.masks import band_plan, bbox_mask, brush_mask, dilate, text_box_mask
from onereward.errors import UserError
from onereward.io import load_json, load_mask, load_rgb, save_image, save_json
from onereward.tasks import TASK_NAMES, TASKS, get_task
from onereward.toyworld.scene import (
    CELLS,
    COLORS,
    SHAPES,
    bbox_of,
    cell_px,
    check_size,
    object_silhouette,
    place_objects,
    place_text,
    render,
    sample_background,
    sample_object,
    sample_text,
    scale_of,
)

SPLITS = ("train", "pref", "rl", "val", "eval", "bench", "judge")  # seed namespaces
EXTEND_FILL = 0.5  # what the source shows in the band to be generated (nothing is known there)
FILES = ("source.png", "mask.png", "target.png", "meta.json")


@dataclass(eq=False)
class Condition:
    """One input triplet with its ground truth. Arrays: source/target (H, W, 3), mask (H, W), float32."""

    task: str
    source: np.ndarray  # (H, W, 3) in [0, 1]
    mask: np.ndarray  # (H, W) in {0, 1}, 1 = generate
    prompt: str  # what the fill model sees: the user prompt, or the task's fixed prompt
    target: np.ndarray  # (H, W, 3) in [0, 1], the ground truth
    meta: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable; everything the oracle needs

    @property
    def size(self) -> int:
        return int(self.mask.shape[0])


# --- seeds ---


def item_seed(seed: int, split: str, task: str, index: int) -> int:
    """The seed of item `index` of (split, task) under a run seed: distinct namespaces per split and task."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if seed < 0 or index < 0:
        raise ValueError(f"seed ({seed}) and index ({index}) must be >= 0")
    words = [int(seed), zlib.crc32(split.encode()), zlib.crc32(task.encode()), int(index)]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> np.uint64(1))  # 63 bits


# --- builders, one per task ---


def _px(v: float, s: float) -> int:
    """A pixel amount given at 64 px, at scale s (at least 1)."""
    return max(1, int(round(v * s)))


def _object_task(rng: np.random.Generator, size: int, removal: bool) -> dict[str, Any]:
    s = scale_of(size)
    background = sample_background(rng, size)
    colors = [str(c) for c in rng.permutation(list(COLORS))]
    occupied = np.zeros((size, size), dtype=bool)
    # 8 px between objects: more than the widest fill mask reaches (6 px pad, or a 5 px dilation + strokes)
    objects = place_objects(rng, size, int(rng.integers(1, 4)), occupied, _px(8, s), colors)
    obj = objects[int(rng.integers(0, len(objects)))]
    sil = object_silhouette(obj, size)
    if removal:
        d = _px(int(rng.integers(1, 4)), s)
        mask, mask_meta = dilate(sil, d), {"kind": "silhouette", "dilate_px": d}
    elif rng.random() < 0.6:
        pad = _px(int(rng.integers(2, 7)), s)
        mask, mask_meta = bbox_mask((size, size), bbox_of(sil), pad), {"kind": "box", "pad": pad}
    else:
        d = _px(int(rng.integers(3, 6)), s)
        y0, x0, y1, x1 = bbox_of(sil)
        region = (max(0, y0 - d), max(0, x0 - d), min(size, y1 + d), min(size, x1 + d))
        strokes = brush_mask((size, size), rng, strokes=(1, 3), region=region) * bbox_mask((size, size), region)
        mask, mask_meta = np.maximum(dilate(sil, d), strokes), {"kind": "brush", "dilate_px": d}
    scene = {"size": size, "background": background, "objects": objects, "text": None}
    full, _ = render(scene)
    without, _ = render(scene, skip=(obj["id"],))
    source, target = (full, without) if removal else (without, full)
    prompt = TASKS["removal"].fixed_prompt if removal else f"{obj['color']} {obj['shape']}"
    return dict(scene=scene, source=source, target=target, mask=mask, prompt=prompt, target_object=obj["id"],
                mask_meta=mask_meta)  # fmt: skip


def _fill(rng: np.random.Generator, size: int) -> dict[str, Any]:
    return _object_task(rng, size, removal=False)


def _removal(rng: np.random.Generator, size: int) -> dict[str, Any]:
    return _object_task(rng, size, removal=True)


def _text(rng: np.random.Generator, size: int) -> dict[str, Any]:
    s = scale_of(size)
    background = sample_background(rng, size)
    pad = _px(int(rng.integers(2, 5)), s)
    text = place_text(rng, size, sample_text(rng, size, background["tone"]), pad)
    mask = text_box_mask((size, size), tuple(text["box"]), pad)
    occupied = mask > 0.5
    colors = [str(c) for c in rng.permutation(list(COLORS))]
    objects = place_objects(rng, size, int(rng.integers(0, 3)), occupied, _px(3, s), colors)
    scene = {"size": size, "background": background, "objects": objects, "text": text}
    target, _ = render(scene)
    source, _ = render(scene, text=False)
    prompt = f'the words "{text["string"]}"'
    return dict(scene=scene, source=source, target=target, mask=mask, prompt=prompt, target_object=None,
                mask_meta={"kind": "text_box", "pad": pad})  # fmt: skip


def _band(rng: np.random.Generator, size: int):
    cell = cell_px(size)  # bands end on the grid of cells that shapes sit on (scene.py)
    if rng.random() < 0.5:
        side, px = ("top", "bottom", "left", "right")[int(rng.integers(0, 4))], cell * int(rng.integers(2, 4))
    else:
        side, px = "all", cell
    plan = band_plan(size, size, side, px)
    meta = {"kind": "band", "side": side, "px": px, "top": plan.top, "left": plan.left, "source": list(plan.source)}
    return plan, meta


def _straddling_object(rng: np.random.Generator, size: int, band: np.ndarray, side: str, px: int, color: str):
    """An object with 40-80% of its area under the band, on the cell grid (on `side`, or any side for "all"), whose
    hidden part no other shape in its box would have: the prompt, not the visible part, says how to finish it."""
    cell, under = cell_px(size), band > 0.5
    for _ in range(400):
        obj = sample_object(rng, size, 1, color)
        edge = side if side != "all" else ("top", "bottom", "left", "right")[int(rng.integers(0, 4))]
        near = cell * int(rng.integers(0, 2))  # the box starts 0 or 1 cells in from its edge of the canvas
        far = size - CELLS * cell - near  # ... counted from the far edge: the box's top-left coordinate there
        axis, start = {"top": ("cy", near), "bottom": ("cy", far), "left": ("cx", near), "right": ("cx", far)}[edge]
        obj[axis] = start + obj["r"] - 0.5
        sil = object_silhouette(obj, size)
        hidden = [under & object_silhouette({**obj, "shape": k}, size) for k in SHAPES if k != obj["shape"]]
        # the prompt decides what the band holds: every other shape in the same box would hide something else there
        if 0.4 <= float(under[sil].mean()) <= 0.8 and all((h != (under & sil)).any() for h in hidden):
            return obj
    raise RuntimeError(f"no object fits a {px}-px band on {side} at size {size}")  # not reached for 48-1024 px


def _extend(rng: np.random.Generator, size: int, prompted: bool = True) -> dict[str, Any]:
    s = scale_of(size)
    background = sample_background(rng, size)
    plan, mask_meta = _band(rng, size)
    band = plan.mask()
    occupied = dilate(band, _px(2, s)) > 0.5  # objects keep 2 px clear of the band
    colors = [str(c) for c in rng.permutation(list(COLORS))]
    objects: list[dict[str, Any]] = []
    if prompted:
        named = _straddling_object(rng, size, band, mask_meta["side"], mask_meta["px"], colors[0])
        y0, x0, y1, x1 = bbox_of(object_silhouette(named, size))
        occupied[y0:y1, x0:x1] = True
        objects.append(named)
    n_more = int(rng.integers(0, 3)) if prompted else int(rng.integers(1, 4))
    objects += place_objects(rng, size, n_more, occupied, _px(3, s), colors[len(objects) :], first_id=len(objects) + 1)
    scene = {"size": size, "background": background, "objects": objects, "text": None}
    target, _ = render(scene)
    source = plan.place(plan.crop(target), fill=EXTEND_FILL)
    if prompted:
        prompt, target_object = f"{objects[0]['color']} {objects[0]['shape']}", objects[0]["id"]
    else:
        prompt, target_object = TASKS["extend_noprompt"].fixed_prompt, None
    return dict(scene=scene, source=source, target=target, mask=band, prompt=prompt, target_object=target_object,
                mask_meta=mask_meta)  # fmt: skip


def _extend_noprompt(rng: np.random.Generator, size: int) -> dict[str, Any]:
    return _extend(rng, size, prompted=False)


_BUILDERS = {"fill": _fill, "text": _text, "extend": _extend, "extend_noprompt": _extend_noprompt, "removal": _removal}
assert set(_BUILDERS) == set(TASK_NAMES), "every task of the task table needs a toy-world builder"


def make_condition(task: str, seed: int, size: int = 64) -> Condition:
    """One condition of `task`, fully determined by (task, seed, size)."""
    get_task(task)
    size = check_size(size)
    if seed < 0:
        raise ValueError(f"seed {seed} must be >= 0")
    rng = np.random.default_rng([int(seed), zlib.crc32(task.encode())])
    c = _BUILDERS[task](rng, size)
    meta = {"seed": int(seed), "size": size, "scene": c["scene"], "target_object": c["target_object"],
            "mask": c["mask_meta"]}  # fmt: skip
    return Condition(task, c["source"].astype(np.float32), c["mask"].astype(np.float32), c["prompt"],
                     c["target"].astype(np.float32), meta)  # fmt: skip


def make_conditions(task: str, n: int, seed: int = 0, size: int = 64, split: str = "train") -> list[Condition]:
    """n conditions of `task` from the `split` namespace of run seed `seed` (see item_seed)."""
    out = []
    for i in range(n):
        cond = make_condition(task, item_seed(seed, split, task, i), size)
        cond.meta.update(split=split, index=i)
        out.append(cond)
    return out


def segmentation(cond: Condition) -> np.ndarray:
    """(H, W) int32 object ids of the condition's full scene (removal: with the object still in it), 0 = background."""
    return render(cond.meta["scene"])[1]


# --- folders ---


def save_condition(cond: Condition, folder: str | Path) -> Path:
    """Write source.png, mask.png, target.png and meta.json ({task, prompt, meta}) into `folder`, each atomically."""
    folder = Path(folder)
    save_image(folder / "source.png", cond.source)
    save_image(folder / "mask.png", cond.mask)
    save_image(folder / "target.png", cond.target)
    save_json(folder / "meta.json", {"task": cond.task, "prompt": cond.prompt, "meta": cond.meta})
    return folder


def _check_scene(task: str, meta: dict[str, Any]) -> None:
    """Raise KeyError/TypeError/ValueError when meta lacks what the oracle reads for `task`."""
    scene = meta["scene"]
    if scene["size"] != meta["size"]:
        raise ValueError(f"scene size {scene['size']} != size {meta['size']}")
    render(scene)
    ids = [o["id"] for o in scene["objects"]]
    if task in ("fill", "extend", "removal") and meta["target_object"] not in ids:
        raise ValueError(f"target_object {meta.get('target_object')!r} is not one of the object ids {ids}")
    if task == "text" and not scene["text"]["string"]:
        raise ValueError("the text line is empty")


def load_condition(folder: str | Path) -> Condition:
    """Read a condition folder back; any problem raises UserError naming the file and what to do."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such condition folder; make one with `onereward world --out DIR`")
    for name in FILES:
        if not (folder / name).is_file():
            raise UserError(f"{folder / name}: missing; a condition folder holds {', '.join(FILES)}")
    doc = load_json(folder / "meta.json")
    if not isinstance(doc, dict) or not {"task", "prompt", "meta"} <= set(doc):
        raise UserError(f"{folder / 'meta.json'}: needs the keys task, prompt and meta; regenerate the folder")
    if doc["task"] not in TASKS:
        raise UserError(f"{folder / 'meta.json'}: unknown task {doc['task']!r}; use one of {', '.join(TASK_NAMES)}")
    meta = doc["meta"]
    if not isinstance(meta, dict) or not {"size", "scene"} <= set(meta):
        raise UserError(f"{folder / 'meta.json'}: 'meta' needs size and scene; regenerate the folder")
    source, target = load_rgb(folder / "source.png"), load_rgb(folder / "target.png")
    mask = load_mask(folder / "mask.png")
    want = (meta["size"], meta["size"])
    for name, arr in (("source.png", source), ("mask.png", mask), ("target.png", target)):
        if arr.shape[:2] != want:
            raise UserError(
                f"{folder / name}: is {arr.shape[1]}x{arr.shape[0]}, meta.json says {want[1]}x{want[0]}; "
                "regenerate the folder with `onereward world`"
            )
    if not mask.any():
        raise UserError(f"{folder / 'mask.png'}: is all black (nothing to generate); regenerate the folder")
    try:
        _check_scene(doc["task"], meta)
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise UserError(
            f"{folder / 'meta.json'}: 'meta' does not describe a {doc['task']} scene ({e.__class__.__name__}: {e}); "
            "regenerate the folder with `onereward world`"
        ) from None
    return Condition(doc["task"], source, mask, str(doc["prompt"]), target, meta)
