"""A tiny built-in 3x3 block font for the text-rendering task, drawn at an integer scale (8x at 64 px).

A font pixel is a cell of the toy world's grid, one token of the toy base model (scene.py). The alphabet is small
on purpose, so that a tiny fill model can learn it in the demo's budget, and its letters are chosen to be far apart:
no two glyphs overlap with IoU above `MAX_PAIR_IOU` (checked in tests), so the oracle's per-glyph IoU separates a
right letter from a wrong one. Until 2026-11-28 the font was 5x7 with 4-px strokes and 1-2 letters: the toy base
model never drew one usable word in the demo's budget (0% in every run, also with three times the share of text in
its pre-training), which left text rendering nothing for RL to raise (docs/BASE_MODEL.md).
"""

from __future__ import annotations

import numpy as np

GLYPH_H, GLYPH_W = 3, 3  # font pixels
SPACING = 1  # font pixels between glyphs

_ROWS: dict[str, tuple[str, ...]] = {
    "A": (".#.", "###", "#.#"),
    "J": ("..#", "..#", "###"),
    "L": ("#..", "#..", "###"),
    "T": ("###", ".#.", ".#."),
    "V": ("#.#", "#.#", ".#."),
    "X": ("#.#", ".#.", "#.#"),
}

ALPHABET = "".join(_ROWS)  # the letters a prompt may use
MAX_PAIR_IOU = 0.6  # no two letters overlap more than this, also shifted by a font pixel (tests check it)


def glyph(letter: str) -> np.ndarray:
    """One letter as a bool (7, 5) bitmap."""
    try:
        rows = _ROWS[letter]
    except KeyError:
        raise ValueError(f"letter {letter!r} is not in the toy font; use letters from {ALPHABET!r}") from None
    return np.array([[c == "#" for c in row] for row in rows], dtype=bool)


def text_size(text: str, scale: int) -> tuple[int, int]:
    """(height, width) in pixels of `text` drawn at `scale` pixels per font pixel."""
    n = len(text)
    return GLYPH_H * scale, (n * GLYPH_W + (n - 1) * SPACING) * scale


def render_text(text: str, scale: int) -> np.ndarray:
    """`text` as a bool (7*scale, width) bitmap, glyphs separated by SPACING font pixels."""
    h, w = text_size(text, scale)
    out = np.zeros((GLYPH_H, w // scale), dtype=bool)
    for i, letter in enumerate(text):
        x = i * (GLYPH_W + SPACING)
        out[:, x : x + GLYPH_W] = glyph(letter)
    return np.kron(out, np.ones((scale, scale), dtype=bool))  # (7*scale, w)


def glyph_cells(text: str, scale: int) -> list[tuple[int, int]]:
    """Column span [x0, x1) of each glyph in `render_text(text, scale)`, each widened by half the spacing."""
    half = SPACING * scale // 2
    step = (GLYPH_W + SPACING) * scale
    _, w = text_size(text, scale)
    return [(max(0, i * step - half), min(w, i * step + GLYPH_W * scale + half)) for i in range(len(text))]
