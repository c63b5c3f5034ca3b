import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from onereward.cli import app
from onereward.io import load_rgb

runner = CliRunner()
EXE = str(Path(sys.executable).with_name("onereward"))


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The installed entry point, as a user runs it (main turns UserError into one line and exit 2)."""
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=60)


def test_world_writes_condition_folders_and_score_prints_json(tmp_path):
    res = runner.invoke(app, ["world", "--task", "removal", "--n", "3", "--seed", "4", "--out", str(tmp_path / "w")])
    assert res.exit_code == 0, res.output
    folders = sorted(p.name for p in (tmp_path / "w").iterdir())
    assert folders == ["000", "001", "002"]
    assert sorted(p.name for p in (tmp_path / "w" / "000").iterdir()) == [
        "mask.png",
        "meta.json",
        "source.png",
        "target.png",
    ]
    c = tmp_path / "w" / "001"
    res = runner.invoke(app, ["score", "--condition", str(c), "--image", str(c / "target.png")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == {"scores": {"removal_quality": 1.0}, "usable": True}
    res = runner.invoke(app, ["score", "--condition", str(c), "--image", str(c / "source.png")])
    assert json.loads(res.output)["usable"] is False  # the object is still there


def test_world_size_and_split_options(tmp_path):
    args = ["world", "--task", "text", "--n", "1", "--size", "96", "--split", "bench", "--out"]
    assert runner.invoke(app, [*args, str(tmp_path / "a")]).exit_code == 0
    assert load_rgb(tmp_path / "a" / "000" / "source.png").shape == (96, 96, 3)
    meta = json.loads((tmp_path / "a" / "000" / "meta.json").read_text())
    assert meta["task"] == "text" and meta["prompt"].startswith('the words "') and meta["meta"]["split"] == "bench"


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "w"
    assert _cli("world", "--task", "fill", "--n", "1", "--out", str(out)).returncode == 0
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(small)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG not really")
    cases = [
        (("world", "--task", "inpaint", "--out", str(out)), "is not a task"),
        (("world", "--task", "fill", "--n", "0", "--out", str(out)), "--n 0"),
        (("world", "--task", "fill", "--size", "65", "--out", str(out)), "--size 65"),
        (("score", "--condition", str(tmp_path / "nope"), "--image", str(small)), "no such condition folder"),
        (("score", "--condition", str(out / "000"), "--image", str(tmp_path / "missing.png")), "no such file"),
        (("score", "--condition", str(out / "000"), "--image", str(garbage)), "not a readable image"),
        (("score", "--condition", str(out / "000"), "--image", str(small)), "is 32x32, the condition is 64x64"),
    ]
    for args, message in cases:
        res = _cli(*args)
        assert res.returncode == 2, (args, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, res.stderr)
        assert "Traceback" not in res.stderr


def test_world_grid_picture(tmp_path):
    res = runner.invoke(app, ["world-grid", "--out", str(tmp_path / "g.png"), "--per-task", "1"])
    assert res.exit_code == 0, res.output
    img = Image.open(tmp_path / "g.png")
    assert img.size[0] > 200 and img.size[1] > 5 * 128 and (tmp_path / "g.png").stat().st_size < 200_000
