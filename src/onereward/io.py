"""Reading user images and masks robustly, and writing files atomically (a crash never leaves half a file).

Conventions used across the project: an image is a float32 numpy array (H, W, 3) in [0, 1]; a mask is a float32
array (H, W) in {0, 1} with 1 = the region to generate (white in a mask file).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from onereward.errors import UserError

# A mask pixel counts as "fill" when its grey value is at least this fraction of white (documented in the README).
MASK_THRESHOLD = 0.5


def _open(path: str | Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError) as e:
        raise UserError(f"{path}: not a readable image ({e.__class__.__name__}); give a PNG or JPEG file") from None
    # Photos carry their orientation in EXIF; apply it so (H, W) is what a viewer shows.
    return ImageOps.exif_transpose(img)


def _to_float(img: Image.Image) -> np.ndarray:
    """Any PIL mode (RGB, RGBA, LA, P, L, 1, I;16, I, F, CMYK) -> float32 (H, W, C) in [0, 1], C = 1 or 3."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float32)
        return (a / (65535.0 if a.max() > 255 else 255.0)).clip(0, 1)[..., None]
    if img.mode == "F":
        return np.asarray(img, dtype=np.float32).clip(0, 1)[..., None]
    if img.mode in ("L", "1"):
        return np.asarray(img.convert("L"), dtype=np.float32)[..., None] / 255.0
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def load_rgb(path: str | Path) -> np.ndarray:
    """An image file -> (H, W, 3) float32 in [0, 1]. Transparency is composited on white; greyscale is replicated."""
    img = _open(path)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    arr = _to_float(img)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr, dtype=np.float32)


def load_mask(path: str | Path, threshold: float = MASK_THRESHOLD) -> np.ndarray:
    """A mask file -> (H, W) float32 in {0, 1}; white (>= threshold of full scale) = fill. Alpha is ignored."""
    img = _open(path)
    if img.mode in ("RGBA", "LA", "PA", "P"):
        img = img.convert("RGB")
    grey = _to_float(img).mean(axis=-1)
    return (grey >= threshold).astype(np.float32)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write) -> Path:
    """Write to a temporary file in the same folder, then rename: readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result should read like any new file
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def atomic_dir(path: str | Path):
    """Build a folder under a temporary name next to `path`, then put it in place (replacing what was there).

    `with atomic_dir(out) as tmp: ...write into tmp...`: readers see the old folder or the whole new one, and a
    crash or kill inside the block leaves nothing behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the folder should read like any other
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_image(path: str | Path, img: np.ndarray) -> Path:
    """(H, W, 3) or (H, W) float in [0, 1] -> an 8-bit image file (format from the suffix), written atomically."""
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}.get(Path(path).suffix.lower(), "PNG")
    pil = Image.fromarray(to_uint8(img))
    return atomic_write(path, lambda tmp: pil.save(tmp, format=fmt))


def save_json(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def load_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def read_jsonl(path: str | Path, shape: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-blank line of a JSON Lines file; a line that is not a JSON object raises
    UserError naming it. `shape` says what an object holds, for that message (e.g. "{condition, best, worst}")."""
    path = Path(path)
    rows = []
    for line, text in enumerate(path.read_text().splitlines(), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{path} line {line}: not valid JSON ({e.msg}); one {shape} per line") from None
        if not isinstance(row, dict):
            raise UserError(f"{path} line {line}: not a JSON object; give {shape}")
        rows.append((line, row))
    return rows


def occupied(path: str | Path) -> bool:
    """Whether writing a new folder at `path` would overwrite something: a file, or a folder that is not empty."""
    path = Path(path)
    return path.is_file() or (path.is_dir() and any(path.iterdir()))
