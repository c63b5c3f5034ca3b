"""The preference-data validator rejects each kind of bad row, naming the row and the field."""

import json

import numpy as np
import pytest

from onereward.data.prefs import as_dataset, load_pairs, split_by_condition, write_pairs
from onereward.errors import UserError
from onereward.io import save_image


def good_row(i: int, cond: str = "c0") -> dict:
    return dict(
        id=f"p{i}",
        condition=cond,
        task="fill",
        prompt="red circle",
        source="images/src.png",
        mask="images/mask.png",
        image_a="images/a.png",
        image_b="images/b.png",
        dimension="structure",
        winner="a",
    )


@pytest.fixture
def folder(tmp_path):
    for name in ("src", "mask", "a", "b"):
        save_image(tmp_path / "images" / f"{name}.png", np.zeros((8, 8, 3), np.float32))
    save_image(tmp_path / "images" / "big.png", np.zeros((16, 8, 3), np.float32))
    (tmp_path / "images" / "junk.png").write_bytes(b"not a png")
    return tmp_path


def write_raw(folder, rows):
    (folder / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_good_rows_round_trip_and_load_as_a_dataset(folder):
    write_pairs(folder, [good_row(0), good_row(1, "c1")])
    assert [r["id"] for r in load_pairs(folder)] == ["p0", "p1"]
    ds = as_dataset(folder)
    assert len(ds) == 2 and ds[0]["winner"] == "a" and ds[0]["image_a"].startswith(str(folder.resolve()))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"winner": None}, "field 'winner'"),
        ({"task": "inpaint"}, "field 'task' is 'inpaint'"),
        ({"dimension": "removal_quality"}, "field 'dimension'"),
        ({"image_a": "images/missing.png"}, "field 'image_a' names 'images/missing.png', which does not exist"),
        ({"image_b": "images/junk.png"}, "not a readable image"),
        ({"image_b": "images/big.png"}, "field 'image_b' is 8x16"),
    ],
)
def test_each_bad_row_kind_is_named(folder, change, message):
    bad = {**good_row(1), **change}
    write_raw(folder, [good_row(0), bad])
    with pytest.raises(UserError, match="line 2") as e:
        load_pairs(folder)
    assert message in str(e.value)


def test_missing_field_and_duplicate_id(folder):
    row = good_row(0)
    del row["prompt"]
    write_raw(folder, [row])
    with pytest.raises(UserError, match="field 'prompt' is missing"):
        load_pairs(folder)
    write_raw(folder, [good_row(0), good_row(0)])
    with pytest.raises(UserError, match="duplicates line 1"):
        load_pairs(folder)
    (folder / "pairs.jsonl").write_text("{not json\n")
    with pytest.raises(UserError, match="not valid JSON"):
        load_pairs(folder)


def test_split_keeps_conditions_whole():
    rows = [good_row(i, f"c{i % 10}") for i in range(100)]
    train, held = split_by_condition(rows, 0.2, seed=1)
    assert len(held) == 20 and not {r["condition"] for r in train} & {r["condition"] for r in held}
