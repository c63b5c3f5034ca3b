"""Mask generators for every task's mask kind (tasks.Task.mask_kind), on images of any size.

Every mask is float32 (H, W) in {0, 1}, 1 = the region to generate. Every random generator takes an explicit seed
or numpy Generator and reads no global state, so the same seed gives the same mask.

- fill (`box_or_brush`): a random box, or free-form brush strokes (a thick random walk, as in LaMa/DeepFill masks)
- text rendering (`text_box`): a text box plus a symmetric margin
- extend (`border`): the new canvas area around a source image; `ExtendPlan` says where the source sits in the
  canvas, from an aspect-ratio preset (16:9, 4:3, 1:1, 3:4, 9:16), a band on one side, or a band on all sides
- removal (`object`): an object's silhouette from a segmentation map, dilated
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

Seed = int | np.random.Generator
Box = tuple[int, int, int, int]  # (y0, x0, y1, x1), half-open: rows y0..y1-1, columns x0..x1-1

ASPECT_PRESETS: dict[str, Fraction] = {  # width : height
    "16:9": Fraction(16, 9),
    "4:3": Fraction(4, 3),
    "1:1": Fraction(1, 1),
    "3:4": Fraction(3, 4),
    "9:16": Fraction(9, 16),
}
SIDES = ("top", "bottom", "left", "right", "all")


def as_rng(seed: Seed) -> np.random.Generator:
    """An int seed -> a fresh Generator; a Generator is used as is (and advanced)."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise ValueError(f"mask shape {shape} must be at least 1x1")
    return h, w


def _disk(px: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))


def dilate(mask: np.ndarray, px: int) -> np.ndarray:
    """Grow a binary mask by `px` pixels with a disk; returns float32 (H, W) in {0, 1}."""
    m = (np.asarray(mask) > 0.5).astype(np.uint8)
    if px > 0:
        m = cv2.dilate(m, _disk(int(px)))
    return m.astype(np.float32)


# --- fill: boxes and brush strokes ---


def bbox_mask(shape: tuple[int, int], box: Box, pad: int = 0) -> np.ndarray:
    """1 inside `box` grown by `pad` pixels on every side, clipped to the image."""
    h, w = _check_shape(shape)
    y0, x0, y1, x1 = box
    m = np.zeros((h, w), dtype=np.float32)
    m[max(0, y0 - pad) : min(h, y1 + pad), max(0, x0 - pad) : min(w, x1 + pad)] = 1.0
    return m


def box_mask(
    shape: tuple[int, int],
    seed: Seed,
    area: tuple[float, float] = (0.05, 0.35),
    aspect: tuple[float, float] = (0.5, 2.0),
) -> np.ndarray:
    """A random axis-aligned box covering a fraction `area` of the image, width/height ratio in `aspect`."""
    h, w = _check_shape(shape)
    rng = as_rng(seed)
    frac = rng.uniform(*area)
    ratio = np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1])))  # width / height, log-uniform
    bh = int(np.clip(round(np.sqrt(frac * h * w / ratio)), 1, h))
    bw = int(np.clip(round(np.sqrt(frac * h * w * ratio)), 1, w))
    y0 = int(rng.integers(0, h - bh + 1))
    x0 = int(rng.integers(0, w - bw + 1))
    return bbox_mask((h, w), (y0, x0, y0 + bh, x0 + bw))


def brush_mask(
    shape: tuple[int, int],
    seed: Seed,
    strokes: tuple[int, int] = (1, 4),
    vertices: tuple[int, int] = (3, 8),
    width: tuple[float, float] = (0.04, 0.10),
    region: Box | None = None,
) -> np.ndarray:
    """Free-form brush strokes: each a random walk of thick lines (cv2.line) with round joints.

    strokes, vertices: inclusive ranges per mask and per stroke; width: stroke thickness as a fraction of the shorter
    side of `region` (the whole image by default); vertices stay inside `region`, so strokes spill out of it by at
    most half a stroke width.
    """
    h, w = _check_shape(shape)
    rng = as_rng(seed)
    ry0, rx0, ry1, rx1 = region if region is not None else (0, 0, h, w)
    rh, rw = max(1, ry1 - ry0), max(1, rx1 - rx0)
    side = min(rh, rw)
    canvas = np.zeros((h, w), dtype=np.uint8)
    for _ in range(int(rng.integers(strokes[0], strokes[1] + 1))):
        thick = max(1, int(round(rng.uniform(*width) * side)))
        y, x = rng.uniform(ry0, ry0 + rh), rng.uniform(rx0, rx0 + rw)
        angle = rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(vertices[0], vertices[1] + 1))):
            angle += rng.uniform(-np.pi / 2, np.pi / 2)  # a walk that bends, not a zig-zag
            step = rng.uniform(0.15, 0.4) * side
            ny = float(np.clip(y + step * np.sin(angle), ry0, ry0 + rh - 1))
            nx = float(np.clip(x + step * np.cos(angle), rx0, rx0 + rw - 1))
            p0, p1 = (int(round(x)), int(round(y))), (int(round(nx)), int(round(ny)))  # cv2 wants (x, y)
            cv2.line(canvas, p0, p1, 1, thickness=thick)
            cv2.circle(canvas, p1, thick // 2, 1, thickness=-1)
            y, x = ny, nx
    return canvas.astype(np.float32)


def box_or_brush_mask(shape: tuple[int, int], seed: Seed, p_brush: float = 0.5) -> np.ndarray:
    """The fill task's mask kind: a brush mask with probability `p_brush`, else a box."""
    rng = as_rng(seed)
    return brush_mask(shape, rng) if rng.random() < p_brush else box_mask(shape, rng)


# --- removal: objects from a segmentation map ---


def object_mask(seg: np.ndarray, object_id: int, dilate_px: int = 0) -> np.ndarray:
    """The silhouette of `object_id` in an integer segmentation map (H, W), dilated by `dilate_px` pixels."""
    seg = np.asarray(seg)
    if seg.ndim != 2:
        raise ValueError(f"segmentation map must be (H, W), got shape {seg.shape}")
    hit = seg == object_id
    if not hit.any():
        raise ValueError(f"object id {object_id} is not in the segmentation map (ids: {np.unique(seg).tolist()})")
    return dilate(hit, dilate_px)


# --- text rendering: text boxes ---


def text_box_mask(shape: tuple[int, int], box: Box, pad: int) -> np.ndarray:
    """The region for a line of text: its box plus a symmetric `pad`, so the text's centre is the mask's centre."""
    return bbox_mask(shape, box, pad)


def random_text_box(
    shape: tuple[int, int],
    seed: Seed,
    height: tuple[float, float] = (0.1, 0.25),
    aspect: tuple[float, float] = (1.5, 5),
) -> Box:
    """A random text-line box: height a fraction of the image height, width/height ratio in `aspect`."""
    h, w = _check_shape(shape)
    rng = as_rng(seed)
    bh = int(np.clip(round(rng.uniform(*height) * h), 1, h))
    bw = int(np.clip(round(bh * rng.uniform(*aspect)), 1, w))
    y0 = int(rng.integers(0, h - bh + 1))
    x0 = int(rng.integers(0, w - bw + 1))
    return (y0, x0, y0 + bh, x0 + bw)


# --- extend: canvas plans and border bands ---


@dataclass(frozen=True)
class ExtendPlan:
    """Where a source image of size `source` sits in a larger canvas of size `canvas` (top-left at `top`, `left`)."""

    canvas: tuple[int, int]  # (H, W)
    source: tuple[int, int]  # (h, w)
    top: int
    left: int

    def __post_init__(self) -> None:
        (H, W), (h, w) = self.canvas, self.source
        if not (0 <= self.top and self.top + h <= H and 0 <= self.left and self.left + w <= W):
            raise ValueError(f"source {self.source} at ({self.top}, {self.left}) does not fit in canvas {self.canvas}")

    @property
    def box(self) -> Box:
        """The source's box in the canvas."""
        return (self.top, self.left, self.top + self.source[0], self.left + self.source[1])

    def mask(self) -> np.ndarray:
        """(H, W) float32: 1 on the new canvas area, 0 where the source sits."""
        return 1.0 - bbox_mask(self.canvas, self.box)

    def place(self, image: np.ndarray, fill: float = 0.5) -> np.ndarray:
        """Put `image` (h, w, C) into a canvas (H, W, C) filled with `fill` elsewhere."""
        if image.shape[:2] != self.source:
            raise ValueError(f"image is {image.shape[:2]}, the plan is for a source of {self.source}")
        out = np.full((*self.canvas, *image.shape[2:]), fill, dtype=np.float32)
        y0, x0, y1, x1 = self.box
        out[y0:y1, x0:x1] = image
        return out

    def crop(self, canvas_image: np.ndarray) -> np.ndarray:
        """The source region of a canvas-sized image."""
        y0, x0, y1, x1 = self.box
        return canvas_image[y0:y1, x0:x1]


def _parse_aspect(aspect: str | float | Fraction) -> Fraction:
    if isinstance(aspect, str):
        if aspect in ASPECT_PRESETS:
            return ASPECT_PRESETS[aspect]
        try:
            a, b = (int(v) for v in aspect.split(":"))
            return Fraction(a, b)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"aspect {aspect!r}: give W:H such as {', '.join(ASPECT_PRESETS)}") from None
    if aspect <= 0:
        raise ValueError(f"aspect {aspect} must be > 0 (width / height)")
    return Fraction(aspect).limit_denominator(1000)


def aspect_plan(
    h: int, w: int, aspect: str | float | Fraction, anchor: str = "center", multiple_of: int = 1
) -> ExtendPlan:
    """Extend an (h, w) image to the aspect ratio `aspect` (width:height) by growing one dimension.

    The canvas is the smallest one of that aspect that contains the source (rounded up to `multiple_of`, as a
    latent-space model needs); `anchor` is "center", or a side ("top", "bottom", "left", "right") the source keeps.
    """
    _check_shape((h, w))
    r = _parse_aspect(aspect)
    if Fraction(w, h) < r:
        H, W = h, int(np.ceil(h * r))  # too narrow: add columns
    else:
        H, W = int(np.ceil(w / r)), w  # too wide (or equal): add rows
    H, W = (-(-v // multiple_of) * multiple_of for v in (H, W))
    if (H, W) == (h, w):
        raise ValueError(f"a {h}x{w} image already has aspect {aspect}; use band_plan to add a border instead")
    top = {"top": 0, "bottom": H - h}.get(anchor, (H - h) // 2)
    left = {"left": 0, "right": W - w}.get(anchor, (W - w) // 2)
    if anchor not in ("center", "top", "bottom", "left", "right"):
        raise ValueError(f"anchor {anchor!r}: use center, top, bottom, left or right")
    return ExtendPlan((H, W), (h, w), top, left)


def grow_plan(h: int, w: int, side: str, px: int) -> ExtendPlan:
    """Extend an (h, w) image by a band of `px` pixels on one side, or on every side (`side="all"`)."""
    _check_shape((h, w))
    if side not in SIDES:
        raise ValueError(f"side {side!r}: use one of {', '.join(SIDES)}")
    if px < 1:
        raise ValueError(f"band width {px} must be >= 1 pixel")
    dt, db, dl, dr = {
        "top": (px, 0, 0, 0),
        "bottom": (0, px, 0, 0),
        "left": (0, 0, px, 0),
        "right": (0, 0, 0, px),
        "all": (px, px, px, px),
    }[side]
    return ExtendPlan((h + dt + db, w + dl + dr), (h, w), dt, dl)


def band_plan(H: int, W: int, side: str, px: int) -> ExtendPlan:
    """The plan whose CANVAS is (H, W): the source is the (H, W) image less a `px` band on `side` (or all sides)."""
    _check_shape((H, W))
    n = 2 if side == "all" else 1
    along_h = side in ("top", "bottom", "all")
    along_w = side in ("left", "right", "all")
    h, w = H - n * px * along_h, W - n * px * along_w
    if h < 1 or w < 1:
        raise ValueError(f"a {px}-pixel band on {side} leaves nothing of a {H}x{W} image")
    plan = grow_plan(h, w, side, px)
    assert plan.canvas == (H, W)
    return plan


def random_band_plan(
    H: int,
    W: int,
    seed: Seed,
    one_side: tuple[float, float] = (0.19, 0.31),
    all_sides: tuple[float, float] = (0.125, 0.19),
) -> ExtendPlan:
    """The extend task's mask kind on an (H, W) canvas: half the time one side's band, half the time all sides.

    Band widths are fractions of the side they cut (defaults: 12-20 px and 8-12 px at 64 px).
    """
    rng = as_rng(seed)
    side = SIDES[int(rng.integers(0, 4))] if rng.random() < 0.5 else "all"
    lo, hi = all_sides if side == "all" else one_side
    span = {"top": H, "bottom": H, "left": W, "right": W, "all": min(H, W)}[side]
    px = max(1, int(round(rng.uniform(lo, hi) * span)))
    return band_plan(H, W, side, px)


def border_mask(shape: tuple[int, int], seed: Seed) -> np.ndarray:
    """A random extend band on an (H, W) canvas (see `random_band_plan`)."""
    h, w = _check_shape(shape)
    return random_band_plan(h, w, seed).mask()


def random_mask(kind: str, shape: tuple[int, int], seed: Seed, seg: np.ndarray | None = None) -> np.ndarray:
    """A mask of one of the task table's mask kinds for an (H, W) image; `object` needs a segmentation map."""
    rng = as_rng(seed)
    if kind == "box_or_brush":
        return box_or_brush_mask(shape, rng)
    if kind == "text_box":
        return text_box_mask(shape, random_text_box(shape, rng), pad=max(1, min(shape) // 32))
    if kind == "border":
        return border_mask(shape, rng)
    if kind == "object":
        if seg is None:
            raise ValueError("mask kind 'object' needs a segmentation map (seg)")
        ids = [int(i) for i in np.unique(seg) if i != 0]
        if not ids:
            raise ValueError("the segmentation map has no objects (every pixel is 0)")
        return object_mask(seg, ids[int(rng.integers(0, len(ids)))], int(rng.integers(1, 4)))
    raise ValueError(f"unknown mask kind {kind!r}; use box_or_brush, text_box, border or object")
