"""CLIP + K-means subset selection: a diverse, representative subset of a folder of conditions (`onereward select`).

The paper curates its RL data with CLIP image embeddings and K-means (PAPER.md section 1); the model, K and the
per-cluster sampling are not published. Our choices:
- every condition's source image is embedded by a CLIP vision tower (`CLIPVisionModel` from any CLIP or CLIP-vision
  folder, e.g. openai/clip-vit-large-patch14, with its image processor): the L2-normalised pooled output;
- per task (stratified: every task keeps its share), K-means with K = the number to keep of that task, and from each
  cluster the condition nearest its centre: one representative per region of the embedding space, so near-duplicates
  compete for one place while a rare kind of image gets its own;
- scikit-learn's KMeans with a fixed seed and 10 initialisations: the same input gives the same subset.
The embedded default has no pretrained CLIP: `build_tiny_clip` saves a tiny one with random weights in the real
folder layout. Its features follow colours and layout, not meaning; that is enough to spread a toy subset over the
toy world's scene kinds, and it tests the code path a real CLIP folder takes.

Input: a folder of condition folders (each with source.png, mask.png and meta.json naming its task), flat
(`onereward world`, an RL pool: FOLDER/<id>/) or grouped by task (a benchmark: FOLDER/<task>/<id>/). The output
folder has the same layout with the chosen condition folders copied, plus selection.json (what was chosen, from how
many, the cluster sizes, the model and seed). It is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onereward.data.conditions import find_conditions
from onereward.errors import UserError
from onereward.io import atomic_dir, load_rgb, occupied, save_json, to_uint8
from onereward.tasks import TASK_NAMES

SELECTION = "selection.json"
N_INIT = 10  # K-means restarts (the best inertia is kept)


def build_tiny_clip(out: str | Path, size: int = 64, seed: int = 0) -> Path:
    """A tiny CLIP vision tower with random weights, saved as a CLIP-vision folder (model + image processor)."""
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    cfg = CLIPVisionConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, image_size=size,
        patch_size=8, projection_dim=64,
    )  # fmt: skip
    torch.manual_seed(seed)
    out = Path(out)
    with atomic_dir(out) as tmp:
        CLIPVisionModel(cfg).save_pretrained(tmp)
        CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size}).save_pretrained(
            tmp
        )
    return out


def load_clip(folder: str | Path, device: str = "cpu"):
    """(CLIPVisionModel in eval mode, its image processor) from a CLIP or CLIP-vision folder (or hub id)."""
    from transformers import AutoConfig, CLIPVisionModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    hint = "pass e.g. openai/clip-vit-large-patch14 (HF_HUB_OFFLINE=0) or a folder from `onereward build-tiny-clip`"
    try:
        kind = AutoConfig.from_pretrained(str(folder)).model_type
    except (OSError, ValueError) as e:
        raise UserError(f"--clip {folder}: no model config there ({type(e).__name__}); {hint}") from None
    if kind not in ("clip", "clip_vision_model"):
        raise UserError(f"--clip {folder}: a {kind} model, not a CLIP vision folder; {hint}")
    try:
        processor = CLIPImageProcessorPil.from_pretrained(str(folder))
    except OSError:
        raise UserError(f"--clip {folder}: no image processor (preprocessor_config.json) there; {hint}") from None
    return CLIPVisionModel.from_pretrained(str(folder)).to(device).eval(), processor


def embed(model, processor, images: Sequence[np.ndarray], batch_size: int = 64) -> np.ndarray:
    """(H, W, 3) float images in [0, 1] -> (N, hidden) L2-normalised CLIP pooled embeddings, float64."""
    import torch

    rows = []
    for i in range(0, len(images), batch_size):
        batch = [to_uint8(im) for im in images[i : i + batch_size]]
        pixels = processor(images=batch, return_tensors="pt")["pixel_values"].to(model.device, model.dtype)
        with torch.no_grad():
            rows.append(model(pixel_values=pixels).pooler_output.double().cpu())  # (b, hidden)
    e = torch.cat(rows).numpy()  # (N, hidden)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def representatives(emb: np.ndarray, k: int, seed: int) -> tuple[list[int], list[int]]:
    """(indices of k rows, one nearest each K-means centre; the clusters' sizes) of the (N, D) embeddings."""
    from sklearn.cluster import KMeans

    n = emb.shape[0]
    if k >= n:
        return list(range(n)), [1] * n
    km = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(emb)
    dist = np.linalg.norm(emb - km.cluster_centers_[km.labels_], axis=1)  # (N,) to the own centre
    chosen = []
    for c in range(k):
        members = np.flatnonzero(km.labels_ == c)
        if len(members):
            chosen.append(int(members[np.argmin(dist[members])]))
    # identical images can leave a cluster empty: fill up with the rows nearest their own centres
    rest = [i for i in np.argsort(dist, kind="stable") if i not in set(chosen)]
    chosen += [int(i) for i in rest[: k - len(chosen)]]
    return sorted(chosen), np.bincount(km.labels_, minlength=k).tolist()


def counts_to_keep(available: dict[str, int], fraction: float | None, per_task: int | None) -> dict[str, int]:
    """How many conditions of each task to keep: a fraction of each (rounded up) or at most `per_task`."""
    if (fraction is None) == (per_task is None):
        raise UserError("give exactly one of --fraction F (of each task) and --per-task N")
    if fraction is not None and not 0 < fraction <= 1:
        raise UserError(f"--fraction {fraction}: use a share in (0, 1], e.g. 0.25")
    if per_task is not None and per_task < 1:
        raise UserError(f"--per-task {per_task}: keep at least 1")
    if fraction is not None:
        return {t: max(1, math.ceil(fraction * n)) for t, n in available.items()}
    return {t: min(per_task, n) for t, n in available.items()}


def select(
    folder: str | Path,
    out: str | Path,
    clip: str | Path,
    fraction: float | None = None,
    per_task: int | None = None,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Write a diverse subset of `folder`'s conditions to `out` (module docstring); return selection.json's content."""
    src, out = Path(folder), Path(out)
    by_task = find_conditions(src)
    keep = counts_to_keep({t: len(d) for t, d in by_task.items()}, fraction, per_task)
    if occupied(out):
        raise UserError(f"--out {out}: exists and is not an empty folder; pick a new path")
    if out.resolve().is_relative_to(src.resolve()):
        raise UserError(f"--out {out}: inside the input folder {src}; pick a path outside it")
    model, processor = load_clip(clip, device)
    chosen: dict[str, list[Path]] = {}
    report: dict[str, Any] = {"clip": str(clip), "seed": int(seed), "source": str(src), "tasks": {}}
    for task in TASK_NAMES:
        dirs = by_task.get(task)
        if not dirs:
            continue
        emb = embed(model, processor, [load_rgb(d / "source.png") for d in dirs])
        rows, sizes = representatives(emb, keep[task], seed)
        chosen[task] = [dirs[i] for i in rows]
        report["tasks"][task] = {
            "available": len(dirs),
            "chosen": len(rows),
            "cluster_sizes": sizes,
            "items": [str(dirs[i].relative_to(src)) for i in rows],
        }
    with atomic_dir(out) as tmp:
        for dirs in chosen.values():
            for d in dirs:
                shutil.copytree(d, tmp / d.relative_to(src))
        save_json(tmp / SELECTION, report)
    return report
