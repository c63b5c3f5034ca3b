"""`onereward pretrain`: a tiny-budget run trains both networks and writes a loadable base model, atomically.

Whether pre-training LEARNS is judged by sampling and the oracle at the demo budget (the run's pretrain_report.json,
docs/base_model.png); a few seconds here check the mechanics: every trained parameter moved, the losses fell, the
folder loads through FillModel.from_pretrained with the inference defaults the report was measured at, and an
existing folder is never clobbered or half-written.
"""

import json
import sys

import numpy as np
import pytest
import torch

from onereward.models.fill import FillModel
from onereward.models.pretrain import REPORT_FILE, PretrainConfig, pretrain, task_counts
from onereward.models.tiny import build_tiny_pipeline
from onereward.tasks import TASK_NAMES, task_weights

ARGS = [
    "--seconds",
    "8",
    "--batch-size",
    "4",
    "--train-conditions",
    "48",
    "--eval-per-task",
    "2",
    "--seed",
    "3",
    "--threads",
    "1",
]


def run_cli(*args):
    """`onereward ARGS` in-process through cli.main -> exit code (UserError: one line on stderr, exit 2)."""
    from onereward import cli

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["onereward", *map(str, args)])
        with pytest.raises(SystemExit) as exit_info:
            cli.main()
    return exit_info.value.code


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain") / "base"
    assert run_cli("pretrain", "--out", out, *ARGS) in (0, None)
    return out


def _changed(a: dict, b: dict) -> list[str]:
    return [k for k in a if not torch.equal(a[k], b[k])]


def test_writes_a_loadable_base_model_with_its_report(base_dir):
    model = FillModel.from_pretrained(base_dir)
    assert model.defaults == {"steps": 4, "true_cfg": 1.0, "guidance": 1.0}  # how the report sampled it
    report = json.loads((base_dir / REPORT_FILE).read_text())
    for name in ("pretrained", "untrained", "vae_ceiling"):
        assert set(report["usable"][name]) == set(TASK_NAMES)
        assert all(0.0 <= v <= 1.0 for v in report["usable"][name].values())
    assert report["eval"]["split"] == "eval" and report["eval"]["steps"] == 4
    assert (base_dir / "base_model.png").stat().st_size > 1000
    assert not [p for p in base_dir.parent.iterdir() if p.name.startswith(".")]  # no temp folder left behind
    images, masks = torch.rand(2, 3, 64, 64), torch.zeros(2, 1, 64, 64)
    masks[..., 16:40, 16:40] = 1
    out = model.sample(images, masks, ["red circle", "remove"], steps=2, true_cfg=1.0,
                       generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert out.shape == (2, 3, 64, 64) and torch.isfinite(out).all()


def test_every_trained_parameter_moved_and_the_text_encoders_stayed_frozen(base_dir):
    init = build_tiny_pipeline("toy", seed=3)
    trained = FillModel.from_pretrained(base_dir).pipe
    for part in ("transformer", "vae"):
        before, after = getattr(init, part).state_dict(), getattr(trained, part).state_dict()
        unchanged = [k for k in before if k not in _changed(before, after)]
        assert not unchanged, f"{part}: {len(unchanged)} tensors never moved, e.g. {unchanged[:3]}"
    for part in ("text_encoder", "text_encoder_2"):
        before, after = getattr(init, part).state_dict(), getattr(trained, part).state_dict()
        assert not _changed(before, after), f"{part} should stay frozen"


def test_losses_fell_and_the_latents_were_renormalised(base_dir):
    report = json.loads((base_dir / REPORT_FILE).read_text())
    for part in ("vae", "transformer"):
        assert report[part]["steps"] >= 10
        assert report[part]["loss_end"] < report[part]["loss_start"], part
    vae = FillModel.from_pretrained(base_dir).vae.config
    assert (vae.shift_factor, vae.scaling_factor) == (report["vae"]["shift_factor"], report["vae"]["scaling_factor"])
    assert (round(vae.shift_factor, 4), round(vae.scaling_factor, 4)) != (0.1159, 0.3611)  # not FLUX's own values


def test_refuses_an_existing_folder_with_one_line(base_dir, capsys):
    before = (base_dir / REPORT_FILE).read_bytes()
    capsys.readouterr()
    assert run_cli("pretrain", "--out", base_dir, *ARGS) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--overwrite" in err
    assert (base_dir / REPORT_FILE).read_bytes() == before


def test_a_crash_before_the_rename_leaves_nothing(tmp_path, monkeypatch):
    import onereward.models.pretrain as pt

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pt, "figure", broken)  # called after the pipeline is saved into the temp folder
    cfg = PretrainConfig(seconds=1, batch_size=2, n_train=10, eval_per_task=1, max_steps=2)
    with pytest.raises(RuntimeError, match="disk full"):
        pretrain(tmp_path / "base", cfg)
    assert list(tmp_path.iterdir()) == []


def test_task_counts_follow_the_table_and_sum_exactly():
    counts = task_counts(1001, task_weights())
    assert sum(counts.values()) == 1001 and set(counts) == set(TASK_NAMES)
    assert counts["fill"] == max(counts.values()) and abs(counts["removal"] - 250) <= 1


def test_fill_command_with_the_pretrained_model_on_odd_photos(base_dir, tmp_path):
    """Issue 3: `onereward fill` with the pretrained tiny model on an odd-sized RGBA PNG and an EXIF-rotated JPEG
    writes outputs of the inputs' (displayed) sizes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    rgba = tmp_path / "odd.png"
    Image.fromarray((rng.random((517, 333, 4)) * 255).astype(np.uint8), "RGBA").save(rgba)
    jpeg = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide x 24 high, displayed rotated: 24 wide x 40 high
    Image.fromarray((rng.random((24, 40, 3)) * 255).astype(np.uint8)).save(jpeg, exif=exif)
    for image, (w, h) in ((rgba, (333, 517)), (jpeg, (24, 40))):
        mask = np.zeros((h, w), np.uint8)
        mask[h // 4 : h // 2, w // 4 : w // 2] = 255
        Image.fromarray(mask).save(tmp_path / "mask.png")
        out = tmp_path / f"{image.stem}_filled.png"
        args = ["fill", "--model", base_dir, "--image", image, "--mask", tmp_path / "mask.png", "--out", out]
        assert run_cli(*args, "--prompt", "red circle") in (0, None)
        assert Image.open(out).size == (w, h)
