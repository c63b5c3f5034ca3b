"""`onereward fill` and `onereward build-tiny-flux` end to end, and every bad input a user can give them."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli
from PIL import Image

from onereward import io
from onereward.errors import UserError
from onereward.infer import check_pair, fill, pad_to_multiple


def _png(path, array, mode=None):
    Image.fromarray(array, mode).save(path)
    return path


def _box_mask(path, w, h, box, low=0, high=255):
    m = np.full((h, w), low, np.uint8)
    y0, y1, x0, x1 = box
    m[y0:y1, x0:x1] = high
    return _png(path, m)


@pytest.fixture
def rgba_333x517(tmp_path):
    rgba = (np.random.default_rng(0).random((517, 333, 4)) * 255).astype(np.uint8)  # (H, W, 4)
    mask = _box_mask(tmp_path / "odd_mask.png", 333, 517, (100, 300, 50, 200))
    return _png(tmp_path / "odd.png", rgba, "RGBA"), mask


def test_real_run_on_333x517_rgba_keeps_size_and_source(monkeypatch, capsys, tmp_path, tiny_fill_dir, rgba_333x517):
    image, mask = rgba_333x517
    out = tmp_path / "filled.png"
    code, stdout, _ = run_cli(
        monkeypatch, capsys, "fill", "--model", tiny_fill_dir, "--image", image, "--mask", mask, "--out", out,
        "--prompt", "red circle", "--steps", "2",
    )  # fmt: skip
    assert code == 0 and "wrote" in stdout
    result = np.asarray(Image.open(out))
    assert result.shape == (517, 333, 3)  # the input's size, not the padded 528x336
    keep = io.load_mask(mask) == 0
    source = io.to_uint8(io.load_rgb(image))  # RGBA composited on white, as load_rgb documents
    assert np.array_equal(result[keep], source[keep])  # outside the mask: the input's own pixels
    assert not np.array_equal(result[~keep], source[~keep])


def test_exif_rotated_jpeg_and_overwrite(monkeypatch, capsys, tmp_path, tiny_fill_dir):
    stored = Image.fromarray((np.random.default_rng(1).random((24, 40, 3)) * 255).astype(np.uint8))  # 40 wide, 24 high
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display, so a viewer shows 24 wide, 40 high
    stored.save(tmp_path / "photo.jpg", exif=exif)
    assert io.load_rgb(tmp_path / "photo.jpg").shape == (40, 24, 3)  # io.load_rgb applies EXIF
    mask = _box_mask(tmp_path / "photo_mask.png", 24, 40, (5, 30, 4, 20))
    out = tmp_path / "out.jpg"
    out.write_bytes(b"precious")
    args = ["fill", "--model", tiny_fill_dir, "--image", tmp_path / "photo.jpg", "--mask", mask, "--out", out]
    args += ["--task", "removal", "--steps", "2", "--true-cfg", "1"]
    code, _, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and "already exists" in err and out.read_bytes() == b"precious"
    code, _, _ = run_cli(monkeypatch, capsys, *args, "--overwrite")
    assert code == 0 and Image.open(out).size == (24, 40)


def test_batch_mode_with_16bit_grey_palette_and_grey_masks(monkeypatch, capsys, tmp_path, tiny_fill_dir):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir(), masks.mkdir()
    grey16 = (np.random.default_rng(2).random((30, 40)) * 65535).astype(np.uint16)  # (H, W) 16-bit
    Image.fromarray(grey16).save(images / "a.png")
    assert Image.open(images / "a.png").mode.startswith("I")
    Image.fromarray((np.random.default_rng(3).random((32, 32, 3)) * 255).astype(np.uint8)).convert("P").save(
        images / "b.png"
    )
    _box_mask(masks / "a.png", 40, 30, (4, 20, 8, 30), low=100, high=200)  # grey 100 < 50% kept, 200 filled
    _box_mask(masks / "b.jpg", 32, 32, (0, 16, 0, 32))  # masks match by name, any image type
    code, stdout, err = run_cli(
        monkeypatch, capsys, "fill", "--model", tiny_fill_dir, "--image", images, "--mask", masks, "--out", out,
        "--task", "extend_noprompt", "--steps", "2", "--true-cfg", "1",
    )  # fmt: skip
    assert code == 0, err
    assert "2 images" in stdout and "fill: 100%" in err  # tqdm's bar
    a = np.asarray(Image.open(out / "a.png"))
    assert a.shape == (30, 40, 3) and Image.open(out / "b.png").size == (32, 32)
    keep = np.ones((30, 40), bool)
    keep[4:20, 8:30] = False
    assert np.array_equal(a[keep], io.to_uint8(io.load_rgb(images / "a.png"))[keep])
    # the same batch again refuses to overwrite, naming the first output
    code, _, err = run_cli(
        monkeypatch, capsys, "fill", "--model", tiny_fill_dir, "--image", images, "--mask", masks, "--out", out,
        "--task", "removal",
    )  # fmt: skip
    assert code == 2 and "(and 1 more outputs) already exists" in err


def _bad_inputs(tmp, model, rgba):
    """(arguments, expected message part) for every refused input; none of them may write anything."""
    image, mask = rgba
    (tmp / "bad.png").write_text("not an image")
    small = _box_mask(tmp / "small_mask.png", 100, 100, (0, 10, 0, 10))
    empty = _png(tmp / "empty.png", np.zeros((517, 333), np.uint8))
    white = _png(tmp / "white.png", np.full((517, 333), 255, np.uint8))
    broken = tmp / "broken_model"
    broken.mkdir()
    (broken / "model_index.json").write_text((Path(model) / "model_index.json").read_text())
    for name in ("scheduler", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2"):
        (broken / name).symlink_to(Path(model) / name)
    (tmp / "folder").mkdir()
    (tmp / "masks").mkdir()
    _png(tmp / "folder" / "x.png", np.zeros((16, 16, 3), np.uint8))
    out = tmp / "never.png"
    base = ["fill", "--model", model, "--out", out, "--prompt", "red circle"]
    pair = ["--image", image, "--mask", mask, "--prompt", "a"]
    return [
        (base + ["--image", tmp / "nope.png", "--mask", mask], "no such file"),
        (base + ["--image", tmp / "bad.png", "--mask", mask], "not a readable image"),
        (base + ["--image", image, "--mask", small], "image is 333x517 but mask is 100x100"),
        (base + ["--image", image, "--mask", empty], "no white pixel"),
        (base + ["--image", image, "--mask", white, "--task", "removal"], "all white"),
        (base + ["--image", image, "--mask", mask, "--task", "paint"], "unknown task 'paint'"),
        (["fill", "--model", model, "--out", out, "--image", image, "--mask", mask], "needs a prompt"),
        (base[:3] + ["--out", tmp / "x.gif", "--prompt", "a", "--image", image, "--mask", mask], "unknown image type"),
        (base + ["--image", image, "--mask", mask, "--steps", "0"], "at least 1"),
        (["fill", "--model", tmp / "nothere", "--out", out, *pair], "no such folder"),
        (["fill", "--model", broken, "--out", out, *pair], "component 'transformer' is missing"),
        (base + ["--image", tmp / "folder", "--mask", mask], "--mask must be a folder"),
        (base[:3] + ["--out", tmp / "o", *pair[4:], "--image", tmp / "folder", "--mask", tmp / "masks"], "no mask"),
    ]


def test_bad_inputs_fail_with_one_line_and_write_nothing(monkeypatch, capsys, tmp_path, tiny_fill_dir, rgba_333x517):
    for args, message in _bad_inputs(tmp_path, tiny_fill_dir, rgba_333x517):
        code, stdout, err = run_cli(monkeypatch, capsys, *args)
        assert code == 2, (args, err)
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err, (message, err)
    assert not (tmp_path / "never.png").exists() and not (tmp_path / "o").exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_installed_entry_point_exits_2_with_one_line(tmp_path, rgba_333x517):
    exe = Path(sys.executable).parent / "onereward"
    image, _ = rgba_333x517
    small = _box_mask(tmp_path / "m.png", 10, 10, (0, 5, 0, 5))
    args = ["fill", "--model", "x", "--image", image, "--mask", small, "--out", tmp_path / "o.png", "--prompt", "a"]
    proc = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "mask is 10x10" in proc.stderr


def test_fill_api_pads_odd_sizes_and_is_seeded(tiny_fill):
    rng = np.random.default_rng(0)
    image = rng.random((21, 35, 3)).astype(np.float32)  # (H, W, 3), not a multiple of 16
    mask = np.zeros((21, 35), np.float32)
    mask[3:15, 20:35] = 1  # touches the right edge: the padding there is to be filled too
    padded, padded_mask = pad_to_multiple(image, mask, 16)
    assert padded.shape == (32, 48, 3) and padded_mask[10, 47] == 1 and padded_mask[20, 0] == 0
    assert np.array_equal(padded[:21, :35], image) and np.array_equal(padded[31, 5], image[20, 5])
    kw = dict(steps=2, true_cfg=1.0, guidance=1.0, model=tiny_fill)
    a = fill(image, mask, "fill", "red circle", seed=1, **kw)
    assert a.shape == (21, 35, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert np.array_equal(a[mask == 0], image[mask == 0])
    assert np.array_equal(a, fill(image, mask, "fill", "red circle", seed=1, **kw))
    assert not np.array_equal(a, fill(image, mask, "fill", "red circle", seed=2, **kw))
    # the task's fixed prompt replaces the user's: removal ignores it
    r1 = fill(image, mask, "removal", None, seed=1, **kw)
    assert np.array_equal(r1, fill(image, mask, "removal", "anything", seed=1, **kw))


def test_mask_rules():
    image = np.zeros((8, 8, 3), np.float32)
    check_pair(image, np.ones((8, 8), np.float32), "fill")  # all white + fill: generate the whole image
    with pytest.raises(UserError, match="all white"):
        check_pair(image, np.ones((8, 8), np.float32), "extend_noprompt")
    with pytest.raises(UserError, match="no white pixel"):
        check_pair(image, np.zeros((8, 8), np.float32), "fill")


def test_build_tiny_flux_command(monkeypatch, capsys, tmp_path):
    code, stdout, _ = run_cli(monkeypatch, capsys, "build-tiny-flux", "--out", tmp_path / "toy", "--preset", "toy")
    assert code == 0 and (tmp_path / "toy" / "transformer" / "config.json").is_file()
    code, _, err = run_cli(monkeypatch, capsys, "build-tiny-flux", "--out", tmp_path / "toy")
    assert code == 2 and "already exists" in err
