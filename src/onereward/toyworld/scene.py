"""Procedural toy scenes: a muted background, 1-3 saturated block shapes, optionally a letter of block text.

A scene is a plain JSON-serialisable dict, so it travels inside a condition's meta and can be rendered again:

    {"size": 64,
     "background": {"kind": "stripes", "tone": "light", "colors": [[r, g, b], [r, g, b]], "axis": 0, "period": 11},
     "objects": [{"id": 1, "shape": "cross", "color": "red", "rgb": [r, g, b], "cy": 27.5, "cx": 11.5, "r": 12.0}],
     "text": {"string": "T", "box": [y0, x0, y1, x1], "scale": 8, "ink": [r, g, b]} or None}

Geometry is in pixels at the scene's size; (cy, cx) is the centre of the shape's bounding box and r its half
side. Rendering is binary (no anti-aliasing), so silhouettes, segmentation and the oracle agree to the pixel.

The grid. Shapes (square, cross, triangle) and letters are bitmaps of 3x3 cells, and a cell is size/8 pixels (8 at
64 px): one token of the toy base model (VAE /4, 2x2 packing), on whose grid every shape and letter sits. A tiny
transformer learns per-token content in the demo's few minutes of pre-training; it did not learn edges inside its
tokens. Until 2026-11-28 shapes were a circle, square and triangle of any size (r 7-12 px) and position, and the
base model drew blobs of the right colour: 2-12% of its fills were usable across runs, and the reward model could
not rank one blob's shape over another's (docs/BASE_MODEL.md). This is a property of the embedded default, sized to
what models trained from scratch on 2 CPU cores learn in minutes, not of the method.

Colour design (PILOT.md section 1): backgrounds are muted, either dark (lightness 0.22-0.38) or light (0.62-0.78)
with a small zero-mean tint, never mid-grey, so a flat grey fill never passes for background; object colours are
saturated, every pair of them and every background colour more than 0.2 apart in max-channel distance.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onereward.toyworld.font import ALPHABET, render_text, text_size

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.10, 0.10),
    "green": (0.10, 0.75, 0.15),
    "blue": (0.15, 0.25, 0.95),
    "yellow": (0.95, 0.85, 0.10),
    "magenta": (0.85, 0.10, 0.85),
}
# Shapes are 3x3 bitmaps of square cells, 8 px at 64 px: one cell is one token of the toy base model (VAE /4, 2x2
# packing), and objects sit on that grid. See the module docstring for why.
SHAPE_CELLS: dict[str, tuple[str, ...]] = {
    "square": ("###", "###", "###"),
    "cross": (".#.", "###", ".#."),
    "triangle": ("#..", "##.", "###"),
}
SHAPES = tuple(SHAPE_CELLS)
CELLS = 3  # a shape's side in cells
_BITMAPS = {k: np.array([[c == "#" for c in row] for row in rows]) for k, rows in SHAPE_CELLS.items()}
# area / r^2 and the centroid's offset from the box centre / r (r: half the box side, so a cell is 2r/3)
SHAPE_AREA = {k: float(b.sum()) * (2 / CELLS) ** 2 for k, b in _BITMAPS.items()}
SHAPE_CENTROID = {  # (dy, dx)
    k: tuple(float((np.nonzero(b)[axis].mean() - (CELLS - 1) / 2) * 2 / CELLS) for axis in (0, 1))
    for k, b in _BITMAPS.items()
}
INK = {"light": (0.05, 0.05, 0.05), "dark": (0.95, 0.95, 0.95)}  # text ink by background tone: always contrasting
BACKGROUND_KINDS = ("flat", "gradient", "stripes", "checker", "dots")
TONES = {"dark": (0.22, 0.38), "light": (0.62, 0.78)}  # background lightness ranges
MIN_COLOR_GAP = 0.2  # max-channel distance between any object colour and any background colour


def scale_of(size: int) -> float:
    """Geometry scales with the scene size; the numbers in docstrings are for 64 px."""
    return size / 64.0


def check_size(size: int) -> int:
    if not isinstance(size, int | np.integer) or size < 48 or size > 1024 or size % 8:
        raise ValueError(f"scene size {size} must be a multiple of 8 between 48 and 1024 (e.g. 64, 96, 128)")
    return int(size)


# --- drawing ---


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)  # (H, W) pixel-centre coordinates
    return y, x


def cell_px(size: int) -> int:
    """The side of a shape's cell in pixels: 8 at 64 px, one token of the toy base model."""
    return size // 8


def shape_mask(shape: str, cy: float, cx: float, r: float, size: int) -> np.ndarray:
    """Bool (size, size) silhouette of a shape whose bounding box has centre (cy, cx) and half side r.

    The box is split into CELLS x CELLS cells of side 2r/3 and the shape's bitmap (SHAPE_CELLS) says which are in.
    Pixel centres are at integer coordinates, so a box of pixels y0..y0+2r-1 has cy = y0 + r - 0.5.
    """
    if shape not in _BITMAPS:
        raise ValueError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)}")
    y, x = _grid(size)
    cell = 2 * r / CELLS
    iy, ix = np.floor((y - cy + r) / cell), np.floor((x - cx + r) / cell)  # cell indices, (H, W)
    inside = (iy >= 0) & (iy < CELLS) & (ix >= 0) & (ix < CELLS)
    bitmap = _BITMAPS[shape]
    return inside & bitmap[np.clip(iy, 0, CELLS - 1).astype(int), np.clip(ix, 0, CELLS - 1).astype(int)]


def object_silhouette(obj: dict[str, Any], size: int) -> np.ndarray:
    return shape_mask(obj["shape"], obj["cy"], obj["cx"], obj["r"], size)


def render_background(spec: dict[str, Any], size: int) -> np.ndarray:
    """(size, size, 3) float32 background from its spec."""
    c = np.asarray(spec["colors"], dtype=np.float32)  # (1 or 2, 3)
    y, x = _grid(size)
    kind = spec["kind"]
    if kind == "flat":
        t = np.zeros_like(y)
    elif kind == "gradient":
        t = (y if spec["axis"] == 0 else x) / (size - 1)
    elif kind == "stripes":
        t = ((y if spec["axis"] == 0 else x) // (spec["period"] / 2) % 2).astype(np.float32)
    elif kind == "checker":
        half = spec["period"] / 2
        t = ((y // half + x // half) % 2).astype(np.float32)
    elif kind == "dots":
        p = spec["period"]
        dy, dx = (y % p) - p / 2, (x % p) - p / 2
        t = (dy**2 + dx**2 <= spec["radius"] ** 2).astype(np.float32)
    else:
        raise ValueError(f"unknown background kind {kind!r}; use one of {', '.join(BACKGROUND_KINDS)}")
    if len(c) == 1:
        return np.broadcast_to(c[0], (size, size, 3)).astype(np.float32)
    return (c[0] * (1 - t[..., None]) + c[1] * t[..., None]).astype(np.float32)  # (H, W, 3)


def text_bitmap(text: dict[str, Any], size: int) -> np.ndarray:
    """Bool (size, size): the glyph pixels of a scene's text line."""
    out = np.zeros((size, size), dtype=bool)
    y0, x0, y1, x1 = text["box"]
    out[y0:y1, x0:x1] = render_text(text["string"], text["scale"])
    return out


def render(scene: dict[str, Any], skip: tuple[int, ...] = (), text: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Draw a scene -> image (H, W, 3) float32 in [0, 1] and segmentation (H, W) int32 (0 = background, else id).

    skip: object ids left out; text: whether to draw the text line (its pixels are not in the segmentation).
    """
    size = scene["size"]
    img = render_background(scene["background"], size).copy()
    seg = np.zeros((size, size), dtype=np.int32)
    for obj in scene["objects"]:
        if obj["id"] in skip:
            continue
        sil = object_silhouette(obj, size)
        img[sil] = obj["rgb"]
        seg[sil] = obj["id"]
    if text and scene.get("text"):
        img[text_bitmap(scene["text"], size)] = scene["text"]["ink"]
    return img, seg


# --- sampling ---


def _muted(rng: np.random.Generator, lightness: float) -> list[float]:
    tint = rng.uniform(-0.06, 0.06, 3)
    return [float(v) for v in np.clip(lightness + tint - tint.mean(), 0, 1)]


def color_gap(rgb: tuple[float, ...], background: dict[str, Any]) -> float:
    """Smallest max-channel distance between `rgb` and any colour the background takes (gradients sampled)."""
    c = np.asarray(background["colors"], dtype=np.float64)
    if len(c) == 2:
        t = np.linspace(0, 1, 11)[:, None]
        c = c[0] * (1 - t) + c[1] * t
    return float(np.abs(c - np.asarray(rgb)).max(axis=1).min())


def sample_background(rng: np.random.Generator, size: int) -> dict[str, Any]:
    """A muted background: flat, a gradient, stripes, a checkerboard or dots, dark or light (never mid-grey)."""
    s = scale_of(size)
    kind = BACKGROUND_KINDS[int(rng.integers(0, len(BACKGROUND_KINDS)))]
    tone = "dark" if rng.random() < 0.5 else "light"
    lo, hi = TONES[tone]
    l0 = rng.uniform(lo, hi)
    spec: dict[str, Any] = {"kind": kind, "tone": tone}
    if kind == "flat":
        spec["colors"] = [_muted(rng, l0)]
    else:
        # the second colour differs in lightness by 0.06-0.14 within the same tone range: visible, still muted
        up = hi - l0 >= l0 - lo  # towards the far end of the range, which leaves >= 0.08 of room
        l1 = np.clip(l0 + rng.uniform(0.06, 0.14) * (1 if up else -1), lo, hi)
        spec["colors"] = [_muted(rng, l0), _muted(rng, float(l1))]
    if kind == "gradient":
        spec["axis"] = int(rng.integers(0, 2))
    elif kind == "stripes":
        spec["axis"] = int(rng.integers(0, 2))
        spec["period"] = round(float(rng.uniform(8, 16) * s), 2)
    elif kind == "checker":
        spec["period"] = round(float(rng.uniform(10, 16) * s), 2)
    elif kind == "dots":
        spec["period"] = round(float(rng.uniform(7, 11) * s), 2)
        spec["radius"] = round(float(rng.uniform(1.2, 2.2) * s), 2)
    return spec


def sample_object(rng: np.random.Generator, size: int, oid: int, color: str) -> dict[str, Any]:
    """A random shape of colour `color` on the cell grid: a 3x3-cell box (24 px at 64) at a random grid position."""
    cell = cell_px(size)
    r = CELLS * cell / 2
    y0, x0 = (int(v) * cell for v in rng.integers(0, size // cell - CELLS + 1, 2))
    shape = SHAPES[int(rng.integers(0, len(SHAPES)))]
    return {"id": oid, "shape": shape, "color": color, "rgb": list(COLORS[color]), "cy": y0 + r - 0.5,
            "cx": x0 + r - 0.5, "r": r}  # fmt: skip


def bbox_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1), half-open, of the non-zero pixels of a mask."""
    ys, xs = np.nonzero(mask)
    return int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1


def _expanded(box: tuple[int, int, int, int], m: int, size: int) -> tuple[slice, slice]:
    y0, x0, y1, x1 = box
    return slice(max(0, y0 - m), min(size, y1 + m)), slice(max(0, x0 - m), min(size, x1 + m))


def place_objects(
    rng: np.random.Generator,
    size: int,
    n: int,
    occupied: np.ndarray,
    margin: int,
    colors: list[str],
    first_id: int = 1,
    tries: int = 60,
) -> list[dict[str, Any]]:
    """Up to n objects whose bounding boxes keep `margin` pixels from every occupied pixel (updated in place).

    Returns the objects placed (fewer than n when the canvas is crowded); ids count up from first_id.
    """
    placed: list[dict[str, Any]] = []
    for _ in range(n):
        for _ in range(tries):
            obj = sample_object(rng, size, first_id + len(placed), colors[len(placed)])
            box = bbox_of(object_silhouette(obj, size))
            if not occupied[_expanded(box, margin, size)].any():
                occupied[box[0] : box[2], box[1] : box[3]] = True
                placed.append(obj)
                break
    return placed


def sample_text(rng: np.random.Generator, size: int, tone: str, max_len: int = 1) -> dict[str, Any]:
    """A word of 1 to max_len letters (one by default) from the toy font's alphabet, a font pixel per grid cell (8
    px at 64), no box yet. Two letters take 7 cells of the canvas's 8; one is what the demo's base model learns."""
    scale = cell_px(size)
    n = int(rng.integers(1, max_len + 1))
    string = "".join(ALPHABET[int(i)] for i in rng.integers(0, len(ALPHABET), n))
    return {"string": string, "scale": scale, "ink": list(INK[tone])}


def place_text(rng: np.random.Generator, size: int, text: dict[str, Any], pad: int) -> dict[str, Any]:
    """Give `text` a box inside the canvas that leaves room for its `pad`-pixel mask margin."""
    h, w = text_size(text["string"], text["scale"])
    cell = text["scale"]  # glyphs sit on the cell grid, as shapes do
    y0 = cell * int(rng.integers(-(-(pad + 1) // cell), (size - h - pad - 1) // cell + 1))
    x0 = cell * int(rng.integers(-(-(pad + 1) // cell), (size - w - pad - 1) // cell + 1))
    return {**text, "box": [y0, x0, y0 + h, x0 + w]}
