"""Atomic writes: readers see the old file or the whole new one; a failed write leaves nothing behind."""

import os
import stat

import pytest

from onereward.io import atomic_dir, atomic_write, save_json


def test_atomic_write_gives_ordinary_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        path = save_json(tmp_path / "a.json", {"x": 1})
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's private 0o600


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = save_json(tmp_path / "a.json", {"x": 1})

    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail)
    assert path.read_text() == '{\n  "x": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_atomic_dir_replaces_the_folder_whole_or_not_at_all(tmp_path):
    out = tmp_path / "model"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
    assert [p.name for p in out.iterdir()] == ["a.txt"]
    mask = os.umask(0o022)
    try:
        with atomic_dir(out) as tmp:
            (tmp / "b.txt").write_text("2")
    finally:
        os.umask(mask)
    assert [p.name for p in out.iterdir()] == ["b.txt"]  # replaced, not merged
    assert stat.S_IMODE(out.stat().st_mode) == 0o755  # not mkdtemp's private 0o700
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "c.txt").write_text("half")
            raise RuntimeError("killed")
    assert [p.name for p in out.iterdir()] == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary left behind
