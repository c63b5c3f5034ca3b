"""A picture of the toy world for the README: per task, a few conditions as (source with the mask hatched, target)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from onereward.io import to_uint8
from onereward.tasks import TASK_NAMES
from onereward.toyworld.world import Condition, make_conditions

ZOOM = 2  # nearest-neighbour upscaling, so 64 px scenes stay crisp
LABEL_W, CAPTION_H, GAP, SEP = 120, 14, 10, 2  # SEP: between a source and its target


def hatched(cond: Condition) -> np.ndarray:
    """The source with white diagonal hatching over the mask: (H, W, 3) float32."""
    h, w = cond.mask.shape
    y, x = np.mgrid[0:h, 0:w]
    hatch = (cond.mask > 0.5) & ((x + y) % 6 < 2)  # (H, W) bool
    out = cond.source.copy()
    out[hatch] = 1.0
    return out


def world_grid(per_task: int = 3, seed: int = 0, size: int = 64) -> Image.Image:
    """Rows = tasks; each condition shows source+mask, then target, with its prompt underneath."""
    font = ImageFont.load_default()
    tile = size * ZOOM
    cell_w = 2 * tile + SEP + GAP
    width = LABEL_W + per_task * cell_w
    row_h = tile + CAPTION_H + GAP
    canvas = Image.new("RGB", (width, len(TASK_NAMES) * row_h + GAP), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, task in enumerate(TASK_NAMES):
        y = GAP + r * row_h
        draw.text((6, y + tile // 2 - 6), task, fill=(0, 0, 0), font=font)
        for c, cond in enumerate(make_conditions(task, per_task, seed=seed, size=size, split="eval")):
            x = LABEL_W + c * cell_w
            for k, img in enumerate((hatched(cond), cond.target)):
                pil = Image.fromarray(to_uint8(img)).resize((tile, tile), Image.Resampling.NEAREST)
                canvas.paste(pil, (x + k * (tile + SEP), y))
            prompt = cond.prompt if len(cond.prompt) <= 40 else cond.prompt[:37] + "..."
            draw.text((x, y + tile + 1), prompt, fill=(60, 60, 60), font=font)
    return canvas


def save_world_grid(path: str | Path, per_task: int = 3, seed: int = 0, size: int = 64) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    world_grid(per_task, seed, size).save(path, format="PNG", optimize=True)
    return path
