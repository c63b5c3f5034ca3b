"""The embedded default's reward-model prior: graded auxiliary pairs from the toy world (NOT part of OneReward).

Why this exists. The paper fine-tunes Qwen2.5-VL-7B, which already sees: it knows colours, shapes, noise, seams.
The embedded default's reward model is a tiny Qwen2.5-VL built from scratch, with no perception at all, and PILOT.md
section 4 found that such a model trained on best/worst pairs alone stays at chance (loss 0.693 throughout). So,
in the toy world only, we give it a perception prior the way one would pre-train a vision model: extra pairs whose
order is known, mixed into training. This is a property of the toy setting, not of the method; with a pretrained
VLM (`train-reward --base Qwen2.5-VL-7B-Instruct`) or a preference folder that is not from `onereward collect`, no
auxiliary pairs are made.

What they are. For every TRAINING condition of the preference data (held-out conditions never contribute; the
trainer passes only training condition ids), the toy world rebuilds the condition from its coordinates in
candidates.jsonl and makes a pool of images: its 4 collected candidates and synthetic variants of its ground truth
and candidates (`VARIANT_NAMES`, each composited with the source like every candidate):
    gt, grey, noise (GT + N(0, s), s ~ U(.02, .2)), blur (3x3 or 5x5 box), two blends a * GT + (1 - a) * candidate
    (a ~ U(0, 1)), tint (GT + a constant offset per channel, |offset| ~ U(.03, .2)), candidate noise (a candidate
    + N(0, s), s ~ U(.02, .15)), shift (the requested object or text moved 2-6 px), cell edit (1-2 of the 3x3
    cells of the requested object or letter flipped: a clean shape that is none of the shapes), wrong colour,
    wrong shape (fill, extend), wrong text (text), background only (fill, text, extend), untouched source.
Every pool image is scored by the ORACLE on each of the task's dimensions, and every pair of pool images becomes an
auxiliary item labelled on each dimension where their scores differ by at least `margin` (the other dimensions are
masked out of the loss). Blends, tints and candidate noise put pairs in the neighbourhood of real candidates, so the
prior covers the differences real best/worst pairs show, not only the easy GT-versus-grey ones.

Sibling requests (fill and text). Text alignment needs the model to READ the prompt; a from-scratch model can fit
most pairs by "looks like a finished scene" instead. So each fill / text condition also gets a sibling with the same
source and mask but another request (the requested object in another colour or shape; other letters), and the same
pool is scored again against the sibling. The two prompts then order the same images differently, which only
reading the prompt explains. The purest such items, the ground truth against the sibling's ground truth (the pool
holds both), are flagged `binding`: the trainer's optional binding phase (`bind_steps`) starts on them alone.

Read-out targets (fill and extend). Every pool image, candidates included, is also measured with
`oracle.describe` (what it drew where the request is) and `oracle.describe_cells` (colours and shapes per token
square): the trainer's AnswerReadOut and CellReadOut learn them (reward/prior.py).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from onereward.tasks import MAX_DIMS, TASK_NAMES, TASKS

VARIANT_NAMES = (
    "gt",
    "grey",
    "noise",
    "blur",
    "blend",
    "blend",
    "tint",
    "candidate noise",
    "shift",
    "cell edit",
    "wrong colour",
    "wrong shape",
    "wrong text",
    "background only",
    "untouched",
)


def _composite(cond, image: np.ndarray) -> np.ndarray:
    m = cond.mask[..., None]  # (H, W, 1)
    return (cond.source * (1 - m) + np.clip(image, 0, 1) * m).astype(np.float32)  # (H, W, 3)


def _shifted(cond, rng: np.random.Generator) -> np.ndarray | None:
    """The ground truth with the requested object (fill, extend) or the text line (text) moved 2-6 px."""
    from onereward.toyworld.scene import render

    scene = cond.meta["scene"]
    dy, dx = (int(rng.integers(2, 7)) * int(rng.choice([-1, 1])) for _ in range(2))
    if cond.task in ("fill", "extend") and cond.meta.get("target_object") is not None:
        objs = [dict(o) for o in scene["objects"]]
        obj = next(o for o in objs if o["id"] == cond.meta["target_object"])
        obj["cy"], obj["cx"] = obj["cy"] + dy, obj["cx"] + dx
        return render({**scene, "objects": objs})[0]
    if cond.task == "text":
        y0, x0, y1, x1 = scene["text"]["box"]
        size = cond.size
        dy = int(np.clip(dy, -y0, size - y1))
        dx = int(np.clip(dx, -x0, size - x1))
        return render({**scene, "text": {**scene["text"], "box": [y0 + dy, x0 + dx, y1 + dy, x1 + dx]}})[0]
    return None


def _cell_edited(cond, rng: np.random.Generator) -> np.ndarray | None:
    """The ground truth with 1-2 of the 3x3 grid cells of the requested object (fill, extend) or letter (text)
    flipped, in or out: a silhouette that is none of the shapes (or letters), what fill's structure tells apart."""
    from onereward.toyworld.scene import CELLS, bbox_of, cell_px, object_silhouette, render

    scene, size = cond.meta["scene"], cond.size
    if cond.task in ("fill", "extend") and cond.meta.get("target_object") is not None:
        obj = next(o for o in scene["objects"] if o["id"] == cond.meta["target_object"])
        ink, (y0, x0, _, _) = obj["rgb"], bbox_of(object_silhouette(obj, size))
        empty = render(scene, skip=(obj["id"],))[0]
    elif cond.task == "text":
        ink, (y0, x0) = scene["text"]["ink"], scene["text"]["box"][:2]
        empty = render(scene, text=False)[0]
    else:
        return None
    out, c = cond.target.copy(), cell_px(size)
    ink = np.asarray(ink, dtype=np.float32)
    for k in rng.choice(CELLS * CELLS, int(rng.integers(1, 3)), replace=False):
        i, j = divmod(int(k), CELLS)
        cell = slice(y0 + i * c, y0 + (i + 1) * c), slice(x0 + j * c, x0 + (j + 1) * c)
        inked = np.abs(out[cell] - ink).max(axis=-1).mean() < 0.1  # the cell holds the object (or the letter)
        out[cell] = empty[cell] if inked else ink
    return out


def synthetic_variants(cond, candidates: np.ndarray, rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    """(name, composited (H, W, 3) image) for the variants that apply to the condition's task.

    candidates: (N, H, W, 3) in [0, 1], the condition's collected candidates (blends and candidate noise use them).
    """
    from onereward.toyworld import variants as V

    gt = cond.target
    n = len(candidates)
    out: list[tuple[str, np.ndarray | None]] = [
        ("gt", gt),
        ("grey", V.grey(cond, rng)),
        ("noise", gt + rng.normal(0, rng.uniform(0.02, 0.2), gt.shape)),
        ("blur", cv2.blur(gt, (k := int(rng.choice([3, 5])), k), borderType=cv2.BORDER_REFLECT)),
    ]
    for _ in range(2):
        a = rng.uniform(0, 1)
        out.append(("blend", a * gt + (1 - a) * candidates[int(rng.integers(0, n))]))
    offset = rng.uniform(0.03, 0.2, 3) * rng.choice([-1, 1], 3)
    out.append(("tint", gt + offset.astype(np.float32)))
    cand = candidates[int(rng.integers(0, n))]
    out.append(("candidate noise", cand + rng.normal(0, rng.uniform(0.02, 0.15), gt.shape)))
    out.append(("shift", _shifted(cond, rng)))
    out.append(("cell edit", _cell_edited(cond, rng)))
    out.append(("wrong colour", V.wrong_color(cond, rng)))
    if V.applies("wrong shape", cond.task):
        out.append(("wrong shape", V.wrong_shape(cond, rng)))
    if V.applies("wrong text", cond.task):
        out.append(("wrong text", V.wrong_text(cond, rng)))
    if cond.task in ("fill", "text", "extend"):  # elsewhere the background IS the truth: a duplicate of gt
        out.append(("background only", V.background_only(cond, rng)))
    out.append(("untouched", V.untouched(cond, rng)))
    return [(name, _composite(cond, img)) for name, img in out if img is not None]


def sibling(cond, rng: np.random.Generator):
    """The same source and mask with another request, or None: fill -> the requested object in another colour or
    shape; text -> other letters of the same count. The source does not show the requested content, so it is
    unchanged; the sibling's ground truth is the scene drawn as the new request asks."""
    from onereward.toyworld.font import ALPHABET
    from onereward.toyworld.scene import COLORS, MIN_COLOR_GAP, SHAPES, color_gap, render
    from onereward.toyworld.world import Condition

    scene = copy.deepcopy(cond.meta["scene"])
    if cond.task == "fill":
        obj = next(o for o in scene["objects"] if o["id"] == cond.meta["target_object"])
        if rng.random() < 0.5:
            others = [
                c for c in COLORS if c != obj["color"] and color_gap(COLORS[c], scene["background"]) > MIN_COLOR_GAP
            ]
            if not others:
                return None
            obj["color"] = others[int(rng.integers(len(others)))]
            obj["rgb"] = list(COLORS[obj["color"]])
        else:
            others = [k for k in SHAPES if k != obj["shape"]]
            obj["shape"] = others[int(rng.integers(len(others)))]
        prompt = f"{obj['color']} {obj['shape']}"
    elif cond.task == "text":
        text = scene["text"]
        text["string"] = "".join(
            [c for c in ALPHABET if c != ch][int(rng.integers(len(ALPHABET) - 1))] for ch in text["string"]
        )
        prompt = f'the words "{text["string"]}"'
    else:
        return None
    target = render(scene)[0]
    return Condition(cond.task, cond.source, cond.mask, prompt, target, {**cond.meta, "scene": scene})


def quantise_u8(images: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) float in [0, 1] -> (..., 3, H, W) uint8 (channels first, as the trainer keeps its images)."""
    u8 = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
    return np.moveaxis(u8, -1, -3)


@dataclass
class AuxPool:
    """Auxiliary items: pairs of images in `images` (appended to the trainer's bank), labelled per dimension."""

    images: np.ndarray  # (M, 3, H, W) uint8: the synthetic variants (candidates stay in the trainer's bank)
    tasks: list[str]  # per item
    prompts: list[str | None]  # per item: the user prompt (text_alignment reads it)
    first: np.ndarray  # (K,) int64 index into the trainer's bank (candidates) or, offset, into `images`
    second: np.ndarray  # (K,) int64
    labels: np.ndarray  # (K, MAX_DIMS) int8: +1 first better, -1 second better, 0 masked (gap < margin or no such dim)
    strength: np.ndarray  # (K,) float32: the largest score gap of the item over its dimensions
    sibling: np.ndarray  # (K,) bool: labelled under a sibling request (the prompt decides the order)
    binding: np.ndarray  # (K,) bool: the ground truth against the sibling request's, on text alignment (either prompt)
    conditions: list[str]  # per item, for auditing that no held-out condition is in
    image_scores: np.ndarray  # (M, MAX_DIMS) float32: each synthetic image's oracle scores (NaN past the task's dims)
    image_tasks: np.ndarray  # (M,) int64: its task's index in TASK_NAMES
    descriptors: np.ndarray  # (len(bank) + M, DESCRIPTOR_SIZE) float32: oracle.describe of every image of the
    # trainer's bank and of `images` under its own condition's request; NaN: held out, not used, or no object named
    cells: np.ndarray  # (len(bank) + M, cells, DESCRIPTOR_SIZE) float32: oracle.describe_cells of the same images


def _executor(workers: int):
    """A process pool of `workers` (spawned: forking a process that already runs torch's threads can hang), or a
    null context when one process does it all."""
    import contextlib
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if workers <= 1:
        return contextlib.nullcontext(None)
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def read_candidates(prefs_dir: str | Path) -> list[dict]:
    path = Path(prefs_dir) / "candidates.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _condition_items(job: tuple) -> dict:
    """One training condition's share of the pool (run in a worker process or in this one).

    job: (candidates.jsonl row, its candidates (N, 3, H, W) uint8, margin, seed, cell). Images are numbered locally:
    0..N-1 the candidates, N.. the synthetic variants in `synth` order; the caller maps them into the bank. The
    condition's own generator, seeded by (seed, its task and index), makes the result the same in any process.
    """
    from onereward.toyworld import make_condition
    from onereward.toyworld.oracle import describe, describe_cells, score

    r, cands_u8, margin, seed, cell = job
    rng = np.random.default_rng([seed, 7, TASK_NAMES.index(r["task"]), int(r["index"])])
    cond = make_condition(r["task"], int(r["item_seed"]), int(r["size"]))
    dims = TASKS[r["task"]].dimensions
    cands = np.moveaxis(cands_u8, 1, -1).astype(np.float32) / 255.0  # (N, H, W, 3)
    pool = [q.astype(np.float32) for q in cands]  # (H, W, 3) each, on the 8-bit grid
    synth = []
    twin = sibling(cond, rng)
    extra = [] if twin is None else [("sibling gt", _composite(cond, twin.target))]
    for _, img in synthetic_variants(cond, cands, rng) + extra:
        q = (np.round(np.clip(img, 0, 1) * 255) / 255.0).astype(np.float32)  # scored as stored: 8 bits
        synth.append(quantise_u8(q))
        pool.append(q)
    described = {}  # local index -> (describe, describe_cells)
    for k, q in enumerate(pool):
        if (d := describe(cond, q)) is not None:
            described[k] = (d, describe_cells(q, cell))
    # the binding pair: the ground truth (the first variant) against the sibling request's ground truth (the last)
    binding = set() if twin is None else {len(cands), len(pool) - 1}
    items = []  # ((local first, local second), labels, strength, under the sibling's request, user prompt, binding)
    img_scores = []
    for view in [cond] if twin is None else [cond, twin]:  # each request orders the same pool its own way
        if view is cond:  # the candidates' scores come from the annotator's oracle call, the rest from ours
            S = [[s[d] for d in dims] for s in r["scores"]]
            S += [[v[d] for d in dims] for v in (score(view, q) for q in pool[len(cands) :])]
        else:
            S = [[v[d] for d in dims] for v in (score(view, q) for q in pool)]
        S = np.asarray(S, dtype=np.float32)  # (V, D)
        if view is cond:  # per-image scores under the condition's own request, for the image-score head
            img_scores = [
                np.pad(S[k], (0, MAX_DIMS - len(dims)), constant_values=np.nan) for k in range(len(cands), len(S))
            ]
        user_prompt = view.prompt if TASKS[r["task"]].uses_prompt else None
        for i in range(len(pool)):
            for j in range(i + 1, len(pool)):
                gap = S[i] - S[j]  # (D,)
                lab = np.where(np.abs(gap) >= margin, np.sign(gap), 0).astype(np.int8)
                if not lab.any():
                    continue
                flip = rng.random() < 0.5  # which image is "first" carries no information
                row = np.zeros(MAX_DIMS, dtype=np.int8)
                row[: len(dims)] = -lab if flip else lab
                pair = (j, i) if flip else (i, j)
                items.append((pair, row, float(np.abs(gap).max()), view is not cond, user_prompt, {i, j} == binding))
    return {"synth": synth, "described": described, "items": items, "img_scores": img_scores}


def build_aux_pool(
    prefs_dir: str | Path,
    train_conditions: set[str],
    bank_index: dict[str, int],
    bank: np.ndarray,
    margin: float = 0.05,
    seed: int = 0,
    progress: bool = False,
    per_task: int = 0,
    cell: int = 16,
    workers: int = 1,
) -> AuxPool:
    """Auxiliary items from the TRAINING conditions of a `onereward collect` folder.

    bank_index maps an image path (relative to the folder) to its row in `bank` (N, 3, H, W) uint8, the trainer's
    images; candidate images are referred to there. Synthetic variants get indices len(bank) + row of `images`.
    per_task > 0 uses at most that many training conditions per task (a seeded choice): scoring the variants with
    the oracle is the slow part (~1 ms an image), and a few hundred scenes per task already cover the toy world.
    cell: the reward model's merged-token side in pixels (describe_cells' grid). workers > 1 spreads the conditions
    over that many processes (the oracle is numpy and OpenCV on one core): the same pool, in about 1 / workers of
    the time.
    """
    from tqdm import tqdm

    from onereward.toyworld.oracle import DESCRIPTOR_SIZE

    rows = [r for r in read_candidates(prefs_dir) if r["condition"] in train_conditions]
    rng = np.random.default_rng([seed, 7])
    if per_task > 0:
        keep = []
        for task in TASK_NAMES:
            mine = [r for r in rows if r["task"] == task]
            keep += [mine[i] for i in sorted(rng.permutation(len(mine))[:per_task])]
        rows = keep
    jobs = ((r, bank[[bank_index[p] for p in r["candidates"]]], margin, seed, cell) for r in rows)
    synth: list[np.ndarray] = []
    tasks, prompts, conds = [], [], []
    first, second, labels, strength, is_twin, is_binding = [], [], [], [], [], []
    img_scores, img_tasks = [], []  # per synthetic image
    descriptors: dict[int, np.ndarray] = {}  # bank-plus-images index -> describe(cond, image)
    cell_maps: dict[int, np.ndarray] = {}  # ... -> describe_cells(image), for the same images
    base = len(bank)
    with _executor(workers) as ex:
        results = ex.map(_condition_items, jobs, chunksize=8) if ex else map(_condition_items, jobs)
        done = tqdm(zip(rows, results, strict=True), total=len(rows), desc="auxiliary pairs", disable=not progress)
        for r, got in done:
            # local image numbers -> the trainer's bank (candidates) or base + row of `images` (variants)
            idx = [bank_index[p] for p in r["candidates"]] + [base + len(synth) + k for k in range(len(got["synth"]))]
            synth += got["synth"]
            for k, (d, c) in got["described"].items():
                descriptors[idx[k]], cell_maps[idx[k]] = d, c
            img_scores += got["img_scores"]
            img_tasks += [TASK_NAMES.index(r["task"])] * len(got["img_scores"])
            for (i, j), row, gap, twin, prompt, binds in got["items"]:
                is_binding.append(binds)
                first.append(idx[i])
                second.append(idx[j])
                labels.append(row)
                strength.append(gap)
                is_twin.append(twin)
                tasks.append(r["task"])
                prompts.append(prompt)
                conds.append(r["condition"])
    images = np.stack(synth) if synth else np.zeros((0, *bank.shape[1:]), dtype=np.uint8)
    desc = np.full((base + len(images), DESCRIPTOR_SIZE), np.nan, dtype=np.float32)
    for k, d in descriptors.items():
        desc[k] = d
    n_cells = (bank.shape[-2] // cell) * (bank.shape[-1] // cell)
    cells = np.full((base + len(images), n_cells, DESCRIPTOR_SIZE), np.nan, dtype=np.float32)
    for k, c in cell_maps.items():
        cells[k] = c
    return AuxPool(
        images=images,
        tasks=tasks,
        prompts=prompts,
        first=np.asarray(first, dtype=np.int64),
        second=np.asarray(second, dtype=np.int64),
        labels=np.asarray(labels, dtype=np.int8).reshape(-1, MAX_DIMS),
        strength=np.asarray(strength, dtype=np.float32),
        sibling=np.asarray(is_twin, dtype=bool),
        binding=np.asarray(is_binding, dtype=bool),
        conditions=conds,
        image_scores=np.asarray(img_scores, dtype=np.float32).reshape(-1, MAX_DIMS),
        image_tasks=np.asarray(img_tasks, dtype=np.int64),
        descriptors=desc,
        cells=cells,
    )
