"""`onereward judge`: one pair, every dimension of a task, both orders, from a reward-model folder."""

import numpy as np
import pytest
from cli_runner import run_cli
from PIL import Image


@pytest.fixture
def pair(tmp_path):
    g = np.random.default_rng(0)
    paths = []
    for name, size in (("a", 64), ("b", 64), ("small", 32)):
        Image.fromarray(g.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")
        paths.append(tmp_path / f"{name}.png")
    return paths


def test_judge_prints_both_orders_and_their_mean_per_dimension(monkeypatch, capsys, tiny_rm_dir, tiny_rm, pair):
    import torch

    from onereward.io import load_rgb

    a, b, _ = pair
    args = ["--model", tiny_rm_dir, "--task", "fill", "--first", a, "--second", b, "--prompt", "red circle"]
    code, out, err = run_cli(monkeypatch, capsys, "judge", *args)
    assert code == 0, err
    rows = [line.split() for line in out.strip().splitlines()[1:]]
    assert [r[0] for r in rows] == ["text_alignment", "consistency", "structure", "aesthetics"]
    x, y = (torch.from_numpy(load_rgb(p)).permute(2, 0, 1)[None] for p in (a, b))
    with torch.no_grad():
        ab = tiny_rm.p_yes(x, y, "fill", ["structure"], ["red circle"])[0, 0].item()
        ba = tiny_rm.p_yes(y, x, "fill", ["structure"], ["red circle"])[0, 0].item()
    first, second, mean = (float(v) for v in rows[2][1:])
    assert first == pytest.approx(ab, abs=1e-3) and second == pytest.approx(1 - ba, abs=1e-3)
    assert mean == pytest.approx((ab + 1 - ba) / 2, abs=1e-3)


def test_judge_mistakes_are_one_line(monkeypatch, capsys, tiny_rm_dir, pair, tmp_path):
    a, b, small = pair
    for args, message in [
        (["--model", tiny_rm_dir, "--task", "paint", "--first", a, "--second", b], "--task 'paint'"),
        (["--model", tiny_rm_dir, "--task", "fill", "--first", a, "--second", b], "pass --prompt"),
        (["--model", tiny_rm_dir, "--task", "removal", "--first", a, "--second", small], "give one size"),
        (["--model", tmp_path, "--task", "removal", "--first", a, "--second", b], "not a reward-model folder"),
    ]:
        code, _, err = run_cli(monkeypatch, capsys, "judge", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
