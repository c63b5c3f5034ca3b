"""`onereward select`: CLIP embeddings + K-means per task keep a diverse subset of a condition folder."""

import json

import numpy as np
import pytest
from cli_runner import run_cli

from onereward.data.select import build_tiny_clip, embed, load_clip, representatives, select
from onereward.errors import UserError
from onereward.eval.benchmark import load_benchmark, toy_benchmark
from onereward.rl.data import folder_pool
from onereward.toyworld.world import make_conditions, save_condition


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return build_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    counts = {"fill": 6, "text": 3, "extend": 4, "extend_noprompt": 4, "removal": 5}
    return toy_benchmark(tmp_path_factory.mktemp("bench") / "benchmark", counts=counts)


def test_a_subset_per_task_in_the_same_layout_deterministic_by_seed(tmp_path, clip_dir, bench):
    report = select(bench, tmp_path / "a", clip_dir, fraction=0.5, seed=1)
    assert {t: r["chosen"] for t, r in report["tasks"].items()} == {
        "fill": 3, "text": 2, "extend": 2, "extend_noprompt": 2, "removal": 3
    }  # fmt: skip
    assert all(sum(r["cluster_sizes"]) == r["available"] for r in report["tasks"].values())
    items = load_benchmark(tmp_path / "a")  # the benchmark layout, loadable as such
    assert sorted(it.id for it in items) == sorted(
        i.split("/")[1] for r in report["tasks"].values() for i in r["items"]
    )
    assert json.loads((tmp_path / "a" / "selection.json").read_text()) == report
    again = select(bench, tmp_path / "b", clip_dir, fraction=0.5, seed=1)
    assert again["tasks"] == report["tasks"]


def test_a_flat_pool_folder_too(tmp_path, clip_dir):
    pool = tmp_path / "pool"
    for i, c in enumerate(make_conditions("removal", 5, seed=0, size=64, split="rl")):
        save_condition(c, pool / f"{i:03d}")
    report = select(pool, tmp_path / "sub", clip_dir, per_task=2)
    assert report["tasks"]["removal"]["chosen"] == 2
    assert len(folder_pool(tmp_path / "sub")) == 2  # the RL trainer's data.pool format


def test_kmeans_keeps_one_of_each_group_of_near_duplicates(clip_dir):
    """Three kinds of image, seven near-copies each: three representatives are one of each kind, where a random
    draw of three misses a kind most of the time (1 - 7^3 * 6 / C(21, 3) = 81% of draws)."""
    model, processor = load_clip(clip_dir)
    g = np.random.default_rng(0)
    kinds = [c.source for c in make_conditions("fill", 3, seed=5, size=64, split="rl")]
    images = [np.clip(k + g.normal(0, 0.01, k.shape), 0, 1).astype(np.float32) for k in kinds for _ in range(7)]
    emb = embed(model, processor, images)
    assert emb.shape[0] == 21 and np.allclose(np.linalg.norm(emb, axis=1), 1)
    rows, sizes = representatives(emb, 3, seed=0)
    assert sorted(r // 7 for r in rows) == [0, 1, 2] and sorted(sizes) == [7, 7, 7]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(fraction=0.5, per_task=2), "exactly one of --fraction"),
        (dict(), "exactly one of --fraction"),
        (dict(fraction=1.5), "--fraction 1.5"),
        (dict(per_task=0), "--per-task 0"),
    ],
)
def test_bad_counts_are_refused(tmp_path, clip_dir, bench, kwargs, message):
    with pytest.raises(UserError, match=message):
        select(bench, tmp_path / "x", clip_dir, **kwargs)
    assert not (tmp_path / "x").exists()


def test_cli_select_and_its_one_line_errors(tmp_path, clip_dir, bench, tiny_rm_dir, monkeypatch, capsys):
    args = ["--conditions", bench, "--out", tmp_path / "ok", "--clip", clip_dir, "--per-task", "2"]
    code, out, _ = run_cli(monkeypatch, capsys, "select", *args)
    assert code == 0 and "removal" in out and (tmp_path / "ok" / "selection.json").is_file()
    for args, message in [
        (["--conditions", tmp_path / "none", "--out", tmp_path / "o1", "--clip", clip_dir], "no such folder"),
        (["--conditions", clip_dir, "--out", tmp_path / "o2", "--clip", clip_dir], "no condition folders"),
        (["--conditions", bench, "--out", tmp_path / "ok", "--clip", clip_dir], "not an empty folder"),
        (["--conditions", bench, "--out", tmp_path / "o3", "--clip", tiny_rm_dir], "not a CLIP vision folder"),
        (["--conditions", bench, "--out", tmp_path / "o4", "--clip", tmp_path / "none"], "no model config"),
        (["--conditions", bench, "--out", bench / "sub", "--clip", clip_dir], "inside the input folder"),
    ]:
        code, _, err = run_cli(monkeypatch, capsys, "select", *args, "--per-task", "1")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o3").exists() and not (bench / "sub").exists()


def test_a_full_clip_folder_loads_its_vision_tower(tmp_path):
    """openai/clip-vit-large-patch14 is a CLIPModel (text + vision) folder: its vision tower is what embeds."""
    import torch
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tower = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    cfg = CLIPConfig(
        text_config=dict(tower, vocab_size=100),
        vision_config=dict(tower, image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(0)
    clip = CLIPModel(cfg)
    clip.save_pretrained(tmp_path)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    model, processor = load_clip(tmp_path)
    image = np.random.default_rng(0).random((40, 48, 3)).astype(np.float32)
    pixels = processor(images=[(image * 255).round().astype(np.uint8)], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        ref = clip.vision_model(pixel_values=pixels).pooler_output[0]
    np.testing.assert_allclose(embed(model, processor, [image])[0], (ref / ref.norm()).numpy(), atol=1e-5)
