import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from onereward.errors import UserError
from onereward.tasks import TASK_NAMES, TASKS
from onereward.toyworld import (
    SPLITS,
    item_seed,
    load_condition,
    make_condition,
    make_conditions,
    save_condition,
    score,
    usable,
)
from onereward.toyworld.font import ALPHABET, GLYPH_H, GLYPH_W, MAX_PAIR_IOU, glyph
from onereward.toyworld.scene import (
    COLORS,
    MIN_COLOR_GAP,
    SHAPES,
    bbox_of,
    cell_px,
    color_gap,
    object_silhouette,
    render,
)

FAST = settings(max_examples=10, deadline=None, derandomize=True)


def _same(a, b) -> bool:
    return (
        a.task == b.task
        and a.prompt == b.prompt
        and a.meta == b.meta
        and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("source", "mask", "target"))
    )


@FAST
@given(task=st.sampled_from(TASK_NAMES), seed=st.integers(0, 2**63 - 1))
def test_generation_is_deterministic_per_seed(task, seed):
    assert _same(make_condition(task, seed), make_condition(task, seed))
    assert not _same(make_condition(task, seed), make_condition(task, seed + 1))


@pytest.mark.parametrize("size", [64, 96, 128])
@pytest.mark.parametrize("task", TASK_NAMES)
def test_conditions_have_the_contract_shapes_at_every_size(task, size):
    for cond in make_conditions(task, 4, seed=1, size=size):
        assert cond.source.shape == cond.target.shape == (size, size, 3) and cond.mask.shape == (size, size)
        assert cond.source.dtype == cond.target.dtype == cond.mask.dtype == np.float32
        assert set(np.unique(cond.mask)) == {0.0, 1.0}
        assert 0 <= cond.source.min() and cond.target.max() <= 1
        assert cond.prompt == TASKS[task].prompt_for(cond.prompt if TASKS[task].uses_prompt else None)
        json.dumps(cond.meta)  # JSON-serialisable
        assert cond.meta["size"] == size and cond.meta["scene"]["size"] == size
        # the ground truth and the source agree outside the mask: only the masked region is generated
        keep = cond.mask == 0
        assert np.array_equal(cond.source[keep], cond.target[keep])


@pytest.mark.parametrize("task", TASK_NAMES)
def test_task_designs(task):
    for cond in make_conditions(task, 40, seed=2):
        scene, m = cond.meta["scene"], cond.mask > 0.5
        sils = {o["id"]: object_silhouette(o, 64) for o in scene["objects"]}
        oid = cond.meta["target_object"]
        if task in ("fill", "removal"):
            obj = next(o for o in scene["objects"] if o["id"] == oid)
            assert m[sils[oid]].all()  # the whole object is under the mask
            assert all(not m[s].any() for i, s in sils.items() if i != oid)  # and nothing else
            assert (cond.prompt == f"{obj['color']} {obj['shape']}") == (task == "fill")
        if task == "text":
            text = scene["text"]
            assert cond.prompt == f'the words "{text["string"]}"' and set(text["string"]) <= set(ALPHABET)
            y0, x0, y1, x1 = text["box"]
            ys, xs = np.nonzero(m)
            assert ys.min() + ys.max() + 1 == y0 + y1 and xs.min() + xs.max() + 1 == x0 + x1  # centred in the mask
            assert all(not m[s].any() for s in sils.values())
        if task == "extend":
            obj = scene["objects"][0]
            assert oid == obj["id"] and cond.prompt == f"{obj['color']} {obj['shape']}"
            assert 0.4 <= m[sils[oid]].mean() <= 0.8  # the band hides much of the named object
            assert all(not m[s].any() for i, s in sils.items() if i != oid)
        if task == "extend_noprompt":
            assert oid is None and all(not m[s].any() for s in sils.values())


def test_colours_are_saturated_apart_and_never_near_the_background():
    names = list(COLORS)
    for a, b in itertools.combinations(names, 2):
        assert np.abs(np.subtract(COLORS[a], COLORS[b])).max() > 2 * MIN_COLOR_GAP
    for task in TASK_NAMES:
        for cond in make_conditions(task, 30, seed=3):
            bg = cond.meta["scene"]["background"]
            assert min(color_gap(rgb, bg) for rgb in COLORS.values()) > MIN_COLOR_GAP
            assert color_gap((0.5, 0.5, 0.5), bg) > 0.1  # flat grey never passes for background
            _, seg = render(cond.meta["scene"])
            assert set(np.unique(seg)) == {0} | {o["id"] for o in cond.meta["scene"]["objects"]}


@pytest.mark.parametrize("size", [64, 96])
def test_shapes_letters_and_bands_sit_on_the_token_grid(size):
    """The grid world (scene.py): every shape and letter is 3x3 cells of size/8 px on that grid; bands end on it."""
    cell = cell_px(size)
    for task in TASK_NAMES:
        for cond in make_conditions(task, 20, seed=1, size=size, split="bench"):
            scene = cond.meta["scene"]
            for obj in scene["objects"]:
                y0, x0, y1, x1 = bbox_of(object_silhouette(obj, size))
                assert y0 % cell == x0 % cell == 0 and y1 - y0 == x1 - x0 == 3 * cell, (task, obj)
            if scene["text"]:
                y0, x0, y1, x1 = scene["text"]["box"]
                assert y0 % cell == x0 % cell == 0 and y1 - y0 == 3 * cell, scene["text"]
            if cond.meta["mask"]["kind"] == "band":
                assert cond.meta["mask"]["px"] % cell == 0


def test_extend_prompt_decides_what_the_band_hides():
    """No other shape in the named object's box would hide the same pixels: the visible part alone does not say."""
    for cond in make_conditions("extend", 40, split="bench"):
        obj, band = cond.meta["scene"]["objects"][0], cond.mask > 0.5
        hidden = band & object_silhouette(obj, cond.size)
        for other in SHAPES:
            if other != obj["shape"]:
                assert (band & object_silhouette({**obj, "shape": other}, cond.size) != hidden).any(), (obj, other)


def test_font_letters_are_far_apart():
    def pad(a, dy, dx):  # a glyph in a 2-pixel frame, shifted by (dy, dx) font pixels
        out = np.zeros((GLYPH_H + 4, GLYPH_W + 4), dtype=bool)
        out[2 + dy : 2 + GLYPH_H + dy, 2 + dx : 2 + GLYPH_W + dx] = a
        return out

    for a, b in itertools.combinations(ALPHABET, 2):
        for dy, dx in itertools.product((-1, 0, 1), repeat=2):
            ga, gb = pad(glyph(a), 0, 0), pad(glyph(b), dy, dx)
            assert (ga & gb).sum() / (ga | gb).sum() <= MAX_PAIR_IOU, (a, b)


def test_split_namespaces_never_collide():
    seeds = {s: {item_seed(0, s, "fill", i) for i in range(2000)} for s in SPLITS}
    assert all(len(v) == 2000 for v in seeds.values())
    assert len(set().union(*seeds.values())) == 2000 * len(SPLITS)  # no two splits share a seed
    assert item_seed(0, "train", "fill", 5) != item_seed(0, "train", "removal", 5)
    a, b = make_conditions("fill", 3, seed=0, split="train"), make_conditions("fill", 3, seed=0, split="bench")
    assert a[0].meta["split"] == "train" and b[0].meta["index"] == 0 and not _same(a[0], b[0])
    with pytest.raises(ValueError, match="unknown split"):
        item_seed(0, "test", "fill", 0)


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="unknown task"):
        make_condition("inpaint", 0)
    with pytest.raises(ValueError, match="multiple of 8"):
        make_condition("fill", 0, size=65)
    with pytest.raises(ValueError, match=">= 0"):
        make_condition("fill", -1)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_save_load_round_trip(task, tmp_path):
    cond = make_condition(task, 11, size=96)
    save_condition(cond, tmp_path / "c")
    back = load_condition(tmp_path / "c")
    assert back.task == task and back.prompt == cond.prompt and back.meta == cond.meta
    assert np.array_equal(back.mask, cond.mask)
    for f in ("source", "target"):
        assert np.abs(getattr(back, f) - getattr(cond, f)).max() <= 0.5 / 255 + 1e-6  # 8-bit PNG
    assert usable(task, score(back, back.target))
    assert score(cond, back.target) == pytest.approx(score(back, back.target), abs=0.01)  # quantisation only


def test_load_errors_name_the_file(tmp_path):
    cond = make_condition("fill", 0)
    folder = save_condition(cond, tmp_path / "c")
    with pytest.raises(UserError, match="no such condition folder"):
        load_condition(tmp_path / "nope")
    (folder / "mask.png").unlink()
    with pytest.raises(UserError, match="mask.png: missing"):
        load_condition(folder)
    (folder / "mask.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="mask.png: not a readable image"):
        load_condition(folder)
    Image.new("L", (32, 64), 255).save(folder / "mask.png")
    with pytest.raises(UserError, match="mask.png: is 32x64, meta.json says 64x64"):
        load_condition(folder)
    save_condition(cond, folder)
    doc = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**doc, "task": "inpaint"}))
    with pytest.raises(UserError, match="unknown task 'inpaint'"):
        load_condition(folder)
    (folder / "meta.json").write_text(json.dumps({**doc, "meta": {**doc["meta"], "target_object": 9}}))
    with pytest.raises(UserError, match="does not describe a fill scene .*target_object 9"):
        load_condition(folder)
    (folder / "meta.json").write_text("{")
    with pytest.raises(UserError, match="meta.json: not valid JSON"):
        load_condition(folder)


def test_segmentation_feeds_the_object_mask_generator():
    from onereward.data.masks import object_mask
    from onereward.toyworld import segmentation

    cond = make_condition("removal", 5)
    seg = segmentation(cond)  # the removal mask is the removed object's silhouette, dilated
    assert np.array_equal(object_mask(seg, cond.meta["target_object"], cond.meta["mask"]["dilate_px"]), cond.mask)
