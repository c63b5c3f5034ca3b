"""Procedural toy scenes: a muted background, 1-3 saturated shapes, optionally a line of glyph text.

A scene is a plain JSON-serialisable dict, so it travels inside a condition's meta and can be rendered again:

    {"size": 64,
     "background": {"kind": "stripes", "tone": "light", "colors": [[r, g, b], [r, g, b]], "axis": 0, "period": 11},
     "objects": [{"id": 1, "shape": "circle", "color": "red", "rgb": [r, g, b], "cy": 30.2, "cx": 17.8, "r": 9.1}],
     "text": {"string": "FJ", "box": [y0, x0, y1, x1], "scale": 2, "ink": [r, g, b]} or None}

Geometry is in pixels at the scene's size; (cy, cx) is the centre of the shape's bounding box and r its half
extent. Rendering is binary (no anti-aliasing), so silhouettes, segmentation and the oracle agree to the pixel.

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
SHAPES = ("circle", "square", "triangle")
SQUARE_HALF = 0.886  # a square's half side, in units of r: the same area as the circle of radius r
SHAPE_AREA = {"circle": np.pi, "square": 4 * SQUARE_HALF**2, "triangle": 2.0}  # area / r^2
SHAPE_CENTROID_DY = {"circle": 0.0, "square": 0.0, "triangle": 1 / 3}  # centroid below the box centre, / r
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


def shape_mask(shape: str, cy: float, cx: float, r: float, size: int) -> np.ndarray:
    """Bool (size, size) silhouette of a shape with bounding-box centre (cy, cx) and half extent r.

    circle: radius r; square: axis-aligned, half side SQUARE_HALF * r; triangle: apex up at (cy - r, cx),
    base from (cy + r, cx - r) to (cy + r, cx + r).
    """
    y, x = _grid(size)
    if shape == "circle":
        return (y - cy) ** 2 + (x - cx) ** 2 <= r * r
    if shape == "square":
        a = SQUARE_HALF * r
        return (np.abs(y - cy) <= a) & (np.abs(x - cx) <= a)
    if shape == "triangle":
        t = (y - (cy - r)) / (2 * r)  # 0 at the apex, 1 at the base
        return (t >= 0) & (t <= 1) & (np.abs(x - cx) <= t * r)
    raise ValueError(f"unknown shape {shape!r}; use one of {', '.join(SHAPES)}")


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


def sample_object(
    rng: np.random.Generator, size: int, oid: int, color: str, r_range: tuple[float, float] | None = None
) -> dict[str, Any]:
    """A random shape of colour `color`, half extent r in r_range (default 7-12 px at 64), inside the canvas."""
    s = scale_of(size)
    lo, hi = r_range or (7 * s, 12 * s)
    r = float(rng.uniform(lo, hi))
    cy, cx = rng.uniform(r + 1, size - 2 - r, 2)
    shape = SHAPES[int(rng.integers(0, len(SHAPES)))]
    return {"id": oid, "shape": shape, "color": color, "rgb": list(COLORS[color]), "cy": round(float(cy), 3),
            "cx": round(float(cx), 3), "r": round(r, 3)}  # fmt: skip


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


def sample_text(rng: np.random.Generator, size: int, tone: str, max_len: int = 2) -> dict[str, Any]:
    """A 1-2 letter string from the toy font's alphabet, drawn at 4x at 64 px (no box yet).

    4x: a stroke is 4 px wide, one VAE latent cell of the toy base model (/4). At 2x (2-px strokes) not even the
    VAE's own reconstruction of the truth was ever usable: the task was out of reach of any model of that size.
    """
    scale = max(1, int(round(4 * scale_of(size))))
    n = int(rng.integers(1, max_len + 1))
    string = "".join(ALPHABET[int(i)] for i in rng.integers(0, len(ALPHABET), n))
    return {"string": string, "scale": scale, "ink": list(INK[tone])}


def place_text(rng: np.random.Generator, size: int, text: dict[str, Any], pad: int) -> dict[str, Any]:
    """Give `text` a box inside the canvas that leaves room for its `pad`-pixel mask margin."""
    h, w = text_size(text["string"], text["scale"])
    y0 = int(rng.integers(pad + 1, size - h - pad))
    x0 = int(rng.integers(pad + 1, size - w - pad))
    return {**text, "box": [y0, x0, y0 + h, x0 + w]}
