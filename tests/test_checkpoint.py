import os

import pytest
import torch

from onereward import checkpoint
from onereward.errors import UserError


def test_save_load_round_trip_and_rotation(tmp_path):
    for step in (10, 20, 30):
        checkpoint.save(
            tmp_path,
            step,
            {"policy": {"w": torch.full((2,), float(step))}, "opt": {"lr": 0.1}},
            {"algorithm": "standard"},
            keep=2,
        )
    names = [p.name for p in checkpoint.complete(tmp_path)]
    assert names == ["step-0000020", "step-0000030"]
    parts, meta = checkpoint.load(checkpoint.latest(tmp_path))
    assert meta["step"] == 30 and meta["algorithm"] == "standard"
    assert torch.equal(parts["policy"]["w"], torch.full((2,), 30.0)) and parts["opt"] == {"lr": 0.1}


def test_a_half_written_checkpoint_is_never_trusted(tmp_path):
    checkpoint.save(tmp_path, 5, {"policy": {"w": torch.ones(1)}}, {})
    # A crash mid-save leaves a temporary folder (here: from another, dead process) and no complete step-40.
    (tmp_path / ".tmp-step-0000040-999999").mkdir()
    (tmp_path / ".tmp-step-0000040-999999" / "policy.safetensors").write_bytes(b"partial")
    assert checkpoint.latest(tmp_path).name == "step-0000005"
    checkpoint.save(tmp_path, 6, {"policy": {"w": torch.ones(1)}}, {})
    assert not (tmp_path / ".tmp-step-0000040-999999").exists()
    (tmp_path / "step-0000050").mkdir()  # a folder without meta.json is not complete
    assert checkpoint.latest(tmp_path).name == "step-0000006"
    with pytest.raises(UserError, match="not a complete checkpoint"):
        checkpoint.load(tmp_path / "step-0000050")


def test_rng_state_round_trip():
    state = checkpoint.rng_state()
    a = (torch.rand(3), os.urandom(0))
    checkpoint.set_rng_state(state)
    assert torch.equal(torch.rand(3), a[0])
