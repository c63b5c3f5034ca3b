from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onereward.data.masks import (
    ASPECT_PRESETS,
    ExtendPlan,
    aspect_plan,
    band_plan,
    bbox_mask,
    box_mask,
    box_or_brush_mask,
    brush_mask,
    dilate,
    grow_plan,
    object_mask,
    random_band_plan,
    random_mask,
    text_box_mask,
)

FAST = settings(max_examples=15, deadline=None, derandomize=True)
KINDS = ("box_or_brush", "text_box", "border", "object")


def _seg(h: int, w: int) -> np.ndarray:
    seg = np.zeros((h, w), dtype=np.int32)
    seg[h // 4 : h // 2, w // 4 : w // 2] = 1
    seg[-h // 4 :, -w // 4 :] = 2
    return seg


def _is_binary_float(m: np.ndarray, shape: tuple[int, int]) -> bool:
    return m.dtype == np.float32 and m.shape == shape and set(np.unique(m)) <= {0.0, 1.0}


@FAST
@given(seed=st.integers(0, 2**32 - 1), h=st.integers(17, 600), w=st.integers(17, 600), kind=st.sampled_from(KINDS))
def test_every_kind_is_deterministic_binary_and_sized_on_any_image(seed, h, w, kind):
    seg = _seg(h, w)
    a = random_mask(kind, (h, w), seed, seg=seg)
    b = random_mask(kind, (h, w), np.random.default_rng(seed), seg=seg)
    assert _is_binary_float(a, (h, w))
    assert np.array_equal(a, b)
    assert 0 < a.mean() < 1


@pytest.mark.parametrize("kind", KINDS)
def test_odd_size_333x517(kind):
    masks = [random_mask(kind, (333, 517), s, seg=_seg(333, 517)) for s in range(6)]
    assert all(_is_binary_float(m, (333, 517)) for m in masks)
    assert len({m.tobytes() for m in masks}) > 1  # seeds matter


def test_box_mask_area_and_brush_stays_in_its_region():
    m = box_mask((333, 517), 3, area=(0.1, 0.1))
    assert m.sum() == pytest.approx(0.1 * 333 * 517, rel=0.05)
    ys, xs = np.nonzero(m)
    assert m[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()  # one solid rectangle
    region = (100, 150, 200, 300)
    b = brush_mask((333, 517), 5, region=region, width=(0.05, 0.05))
    half = int(np.ceil(0.05 * 100 / 2)) + 1  # strokes spill out of the region by at most half a width
    outside = b.copy()
    outside[region[0] - half : region[2] + half, region[1] - half : region[3] + half] = 0
    assert b.sum() > 0 and outside.sum() == 0
    assert np.array_equal(box_or_brush_mask((64, 64), 7), box_or_brush_mask((64, 64), 7))


def test_object_mask_dilates_only_the_object_and_rejects_missing_ids():
    seg = _seg(64, 64)
    m0, m2 = object_mask(seg, 1, 0), object_mask(seg, 1, 2)
    assert np.array_equal(m0 > 0, seg == 1)
    assert m2.sum() > m0.sum() and (m2 >= m0).all()
    assert m2[seg == 2].sum() == 0
    assert np.array_equal(dilate(seg == 1, 2), m2)
    with pytest.raises(ValueError, match="not in the segmentation"):
        object_mask(seg, 7, 1)


def test_text_box_is_symmetric_around_the_box():
    m = text_box_mask((64, 64), (20, 10, 34, 44), pad=3)
    assert np.array_equal(m, bbox_mask((64, 64), (17, 7, 37, 47)))


@pytest.mark.parametrize(
    "h, w, aspect, canvas",
    [
        (64, 64, "16:9", (64, 114)),  # 64 * 16 / 9 = 113.8 -> 114 columns
        (64, 64, "3:4", (86, 64)),  # 64 * 4 / 3 = 85.3 -> 86 rows
        (90, 160, "4:3", (120, 160)),  # too wide for 4:3: add rows
        (120, 160, "16:9", (120, 214)),
        (100, 50, "1:1", (100, 100)),
        (333, 517, "9:16", (920, 517)),
    ],
)
def test_aspect_preset_arithmetic(h, w, aspect, canvas):
    plan = aspect_plan(h, w, aspect)
    assert plan.canvas == canvas
    H, W = canvas
    assert Fraction(W, H) == pytest.approx(float(ASPECT_PRESETS[aspect]), rel=0.02)
    assert plan.top == (H - h) // 2 and plan.left == (W - w) // 2  # centred
    m = plan.mask()
    assert m.shape == canvas and m.sum() == H * W - h * w


def test_aspect_plan_anchor_multiple_and_errors():
    plan = aspect_plan(64, 64, "16:9", anchor="left", multiple_of=16)
    assert plan.canvas == (64, 128) and plan.left == 0
    assert aspect_plan(64, 64, 2.0, anchor="right").left == 64
    with pytest.raises(ValueError, match="already has aspect"):
        aspect_plan(90, 160, "16:9")
    with pytest.raises(ValueError, match="W:H"):
        aspect_plan(64, 64, "wide")


def test_grow_and_band_plans_place_and_crop():
    g = grow_plan(40, 50, "left", 12)
    assert g == ExtendPlan((40, 62), (40, 50), 0, 12)
    a = grow_plan(40, 50, "all", 5)
    assert a.canvas == (50, 60) and (a.top, a.left) == (5, 5)
    b = band_plan(64, 64, "top", 16)
    assert b.canvas == (64, 64) and b.source == (48, 64) and b.mask()[:16].all() and not b.mask()[16:].any()
    img = np.random.default_rng(0).random((48, 64, 3)).astype(np.float32)
    canvas = b.place(img, fill=0.5)
    assert canvas.shape == (64, 64, 3) and (canvas[:16] == 0.5).all()
    assert np.array_equal(b.crop(canvas), img)
    with pytest.raises(ValueError, match="leaves nothing"):
        band_plan(64, 64, "all", 32)
    with pytest.raises(ValueError, match="side"):
        grow_plan(8, 8, "diagonal", 2)


@FAST
@given(seed=st.integers(0, 10**6), h=st.integers(32, 400), w=st.integers(32, 400))
def test_random_band_plan_keeps_the_source_inside(seed, h, w):
    plan = random_band_plan(h, w, seed)
    m = plan.mask()
    assert plan.canvas == (h, w) and m.shape == (h, w)
    y0, x0, y1, x1 = plan.box
    assert not m[y0:y1, x0:x1].any() and m.sum() == h * w - (y1 - y0) * (x1 - x0) > 0
