"""The RL condition pool from a folder (`data.pool`): real images of any size, read lazily, fitted to the training
size with the mask kept in view; toy folders as before; bad folders refused before training."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from onereward.errors import UserError
from onereward.rl.data import FolderPool, fit_square
from onereward.toyworld.world import Condition, load_condition, make_conditions, save_condition


def real_condition(folder, task: str, h: int, w: int, box: tuple[int, int, int, int], prompt: str | None = "a cat"):
    """A photo-like condition folder (no scene, no target): random pixels, a rectangular mask."""
    folder.mkdir(parents=True)
    g = np.random.default_rng(h * w)
    Image.fromarray(g.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / "source.png")
    mask = np.zeros((h, w), np.uint8)
    y0, y1, x0, x1 = box
    mask[y0:y1, x0:x1] = 255
    Image.fromarray(mask).save(folder / "mask.png")
    (folder / "meta.json").write_text(json.dumps({"task": task, **({"prompt": prompt} if prompt else {})}))
    return folder


def test_real_images_of_any_size_are_fitted_around_their_mask(tmp_path):
    real_condition(tmp_path / "pool" / "fill" / "wide", "fill", 120, 300, (40, 80, 240, 290))  # mask at the far right
    real_condition(tmp_path / "pool" / "removal" / "tall", "removal", 200, 100, (10, 30, 20, 60), prompt=None)
    pool = FolderPool(tmp_path / "pool", 64)
    assert len(pool) == 2 and set(pool.tasks) == {"fill", "removal"}
    batch = pool.batch(pool.ids())
    assert batch.sources.shape == (2, 3, 64, 64) and batch.masks.shape == (2, 1, 64, 64)
    # the wide image's mask sat at its right edge: the window followed it and kept all of it
    wide = batch.masks[pool.ids().index("fill/wide"), 0]
    expected = (80 - 40) * 64 / 120 * (290 - 240) * 64 / 120
    assert abs(float(wide.sum()) - expected) < 0.15 * expected
    assert batch.prompts[pool.ids().index("removal/tall")] == "remove" and batch.conditions[0].target is None
    assert pool.sample(3, torch.Generator().manual_seed(0)).sources.shape == (3, 3, 64, 64)


def test_toy_folders_at_the_training_size_load_unchanged(tmp_path):
    conds = make_conditions("fill", 2, seed=0, size=64, split="rl")
    for i, c in enumerate(conds):
        save_condition(c, tmp_path / f"{i:03d}")
    pool = FolderPool(tmp_path, 64)
    assert pool.ids() == ["000", "001"]
    got, saved = pool.condition("001"), load_condition(tmp_path / "001")  # as saved: 8-bit PNGs
    assert np.array_equal(got.source, saved.source) and np.array_equal(got.mask, conds[1].mask)
    assert got.meta["scene"] == conds[1].meta["scene"]


def test_fit_square_scales_a_same_shape_image_only():
    c = Condition("removal", np.full((32, 32, 3), 0.5, np.float32), np.ones((32, 32), np.float32), "remove", None, {})
    big = fit_square(c, 64)
    assert big.source.shape == (64, 64, 3) and big.mask.all() and np.allclose(big.source, 0.5, atol=1e-5)
    assert fit_square(big, 64) is big


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: (d / "mask.png").unlink(), "mask.png: missing"),
        (lambda d: Image.new("L", (10, 10)).save(d / "mask.png"), "give them one size"),
        (lambda d: (d / "meta.json").write_text(json.dumps({"task": "fill"})), "needs a non-empty 'prompt'"),
        (lambda d: (d / "meta.json").write_text(json.dumps({"task": "paint"})), "task 'paint' is not one of"),
    ],
)
def test_a_bad_folder_stops_the_pool_before_training(tmp_path, make, message):
    make(real_condition(tmp_path / "pool" / "x", "fill", 80, 80, (10, 30, 10, 30)))
    with pytest.raises(UserError, match=message):
        FolderPool(tmp_path / "pool", 64)


def test_a_tiny_mask_stays_in_view_when_shrunk(tmp_path):
    real_condition(tmp_path / "pool" / "tiny", "removal", 1000, 1000, (500, 502, 500, 502), prompt=None)
    mask = FolderPool(tmp_path / "pool", 64).batch(["tiny"]).masks[0, 0]
    assert 1 <= int(mask.sum()) <= 4  # 2x2 pixels of 1000 cover one or two pixels of 64


def test_rl_trains_on_a_folder_of_real_images_of_several_sizes(tmp_path, tiny_fill_dir, tiny_rm):
    """`data.pool=FOLDER` as the flux-fill-dev preset uses it: photo-like conditions of three sizes, no ground truth;
    two RL steps run and the reference cache built from the same pool serves them."""
    from test_rl import config

    from onereward.rl.trainer import build_ref_cache, train

    real_condition(tmp_path / "pool" / "fill" / "a", "fill", 96, 160, (20, 60, 100, 150))
    real_condition(tmp_path / "pool" / "removal" / "b", "removal", 64, 64, (10, 30, 10, 30), prompt=None)
    real_condition(tmp_path / "pool" / "extend_noprompt" / "c", "extend_noprompt", 128, 96, (0, 128, 0, 24), None)
    sets = (f"data.pool={tmp_path / 'pool'}", "log.eval_every=0", "model.reward_accuracy=")
    cfg = config(tiny_fill_dir, "unused", tmp_path / "run", *sets)
    refs = build_ref_cache(cfg, tmp_path / "refs", batch_size=2)
    out = train(config(tiny_fill_dir, "unused", tmp_path / "run", *sets, f"data.ref_cache={refs}"), reward=tiny_rm)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all(np.isfinite(r["loss"]) for r in log)


def test_bf16_lora_loads_the_frozen_models_in_bf16_and_trains(tmp_path, tiny_fill_dir, tiny_rm_dir):
    """The flux-fill-dev preset's setting (LoRA + bf16): policy pipeline and judge are loaded in bf16, the adapters
    train in float32, and a run completes (in its own process: accelerate fixes mixed precision once per process)."""
    import os
    import subprocess

    from test_rl import _cli, train_args

    from onereward.config import Config, apply_overrides
    from onereward.rl.trainer import load_policy, load_reward

    sets = [f"model.policy={tiny_fill_dir}", f"model.reward={tiny_rm_dir}", "model.mixed_precision=bf16",
            "model.lora_rank=4"]  # fmt: skip
    cfg = apply_overrides(Config(), sets)
    fill, reward = load_policy(cfg, "cpu"), load_reward(cfg, "cpu")
    adapters = [p for n, p in fill.transformer.named_parameters() if "lora_" in n]
    frozen = [p for n, p in fill.transformer.named_parameters() if "lora_" not in n]
    assert adapters and all(p.dtype == torch.float32 and p.requires_grad for p in adapters)
    assert all(p.dtype == torch.bfloat16 and not p.requires_grad for p in frozen)
    assert reward.model.dtype == torch.bfloat16
    out = tmp_path / "run"
    args = train_args(
        tiny_fill_dir, tiny_rm_dir, out, "train.steps=2", "model.mixed_precision=bf16", "model.lora_rank=4"
    )
    res = subprocess.run(_cli(*args), env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(np.isfinite(r["loss"]) for r in log)
    assert (out / "policy" / "pytorch_lora_weights.safetensors").is_file()


def test_real_runs_are_judged_on_held_out_conditions_against_the_base(tmp_path, tiny_fill_dir, tiny_rm, tiny_rm_dir):
    """log.eval_pool: every eval_every steps the policy's win rate against the base model on held-out conditions,
    by a reward model; exactly 0.5 at step 0 (the policy is the base, with the same noise), the best step exported."""
    from test_rl import config

    from onereward.rl.trainer import train

    for name, root in (("train", tmp_path / "pool"), ("held", tmp_path / "held")):
        real_condition(root / "fill" / f"{name}-a", "fill", 96, 160, (20, 60, 100, 150))
        real_condition(root / "removal" / f"{name}-b", "removal", 64, 64, (10, 30, 10, 30), prompt=None)
    sets = (f"data.pool={tmp_path / 'pool'}", f"log.eval_pool={tmp_path / 'held'}", f"log.eval_judge={tiny_rm_dir}",
            "log.eval_every=1", "model.reward_accuracy=", "train.steps=2")  # fmt: skip
    out = train(config(tiny_fill_dir, "unused", tmp_path / "run", *sets), reward=tiny_rm)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    evals = [r for r in log if "winrate/mean" in r]
    assert [r["step"] for r in evals] == [0, 1, 2]
    assert evals[0]["winrate/fill"] == pytest.approx(0.5, abs=1e-6) and evals[0]["winrate/removal"] == pytest.approx(
        0.5, abs=1e-6
    )
    assert all(0 <= r["winrate/fill"] <= 1 for r in evals)
    assert len(list((out / "eval_base").glob("*.png"))) == 2 and (out / "best" / "transformer").is_dir()
    meta = json.loads((out / "checkpoints" / "step-0000002" / "meta.json").read_text())
    assert meta["best_step"] in (1, 2) and [h[0] for h in meta["history"]] == [0, 1, 2]


def test_a_held_out_pool_without_an_evaluation_interval_is_refused():
    from onereward.config import Config, apply_overrides

    with pytest.raises(UserError, match="set log.eval_every"):
        apply_overrides(Config(), ["log.eval_pool=held"]).check()
