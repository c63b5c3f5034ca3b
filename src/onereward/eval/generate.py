"""Every model's outputs on a benchmark: out_dir/<task>/<id>.png, with the same noise for every model.

Seeds. Item `id` is sampled from the noise of `noise_seed(seed, id)`, which depends on nothing else (not the model,
the batch or the order), so two models compared by GSB start from identical noise on every image (PILOT.md section 9)
and `onereward fill --seed noise_seed(seed, id)` reproduces one image alone.

Resume. An output whose PNG exists is not generated again. out_dir/generation.json records the sampling settings
and, per finished item, a fingerprint of its input (task, prompt, size and a pixel subsample): a rerun with other
settings, or over another benchmark whose ids collide with these, is refused instead of silently mixing outputs.
PNGs and the manifest are written atomically, so a killed run loses at most the batch in flight.

Several processes (`torchrun --nproc_per_node N` or `accelerate launch --multi_gpu`, one GPU each; pass an accelerate
`PartialState`) split what is left to generate: process r takes every N-th item, records what it finished in its own
out_dir/generation.part<r>.json, and when all are done the main process merges the parts into the manifest. A killed
run's parts count as finished work on the next run, with any number of processes.

Model specs (strings, as the CLI takes them after NAME=):
    PIPELINE                              a FLUX.1-Fill-dev-layout pipeline folder (or a hub id with HF_HUB_OFFLINE=0)
    PIPELINE:transformer=DIR              ... with a trained transformer folder instead of its own (runs/x/policy)
    PIPELINE:lora=FILE                    ... with a LoRA file loaded on top (pytorch_lora_weights.safetensors)
    PIPELINE:transformer=DIR:lora=FILE    both
    opencv | opencv:telea | opencv:ns     classical inpainting (onereward.eval.baselines), no weights, no noise
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from onereward.errors import UserError
from onereward.eval.baselines import DEFAULT_METHOD, METHODS, inpaint
from onereward.eval.benchmark import BenchItem, load_benchmark
from onereward.io import load_json, load_rgb, save_image, save_json

if TYPE_CHECKING:
    from onereward.models.fill import FillModel

MANIFEST = "generation.json"
PART = "generation.part{}.json"  # process r's record of the items it finished, while several processes generate
_OPTION = re.compile(r":(?=(?:transformer|lora)=)")  # where a pipeline spec's options start


@dataclass(frozen=True)
class ModelSpec:
    """What to generate with: a fill pipeline (+ transformer / LoRA) or an OpenCV method."""

    kind: str  # "fill" or "opencv"
    path: str | None = None  # pipeline folder or hub id (fill)
    transformer: str | None = None  # transformer folder replacing the pipeline's (fill)
    lora: str | None = None  # LoRA file (fill)
    method: str = DEFAULT_METHOD  # OpenCV method (opencv)

    def key(self) -> str:
        """A canonical string naming the model (local paths resolved), recorded in the manifest."""
        if self.kind == "opencv":
            return f"opencv:{self.method}"

        def where(p: str) -> str:
            return str(Path(p).resolve()) if Path(p).exists() else p

        parts = [where(self.path)]
        parts += [f"transformer={where(self.transformer)}"] if self.transformer else []
        parts += [f"lora={where(self.lora)}"] if self.lora else []
        return ":".join(parts)


def parse_model_spec(spec: str) -> ModelSpec:
    """A spec string (module docstring) -> ModelSpec; a malformed one raises UserError saying what is accepted."""
    spec = spec.strip()
    if not spec:
        raise UserError("empty model spec; give a pipeline folder, FOLDER:transformer=DIR, FOLDER:lora=FILE or opencv")
    if spec == "opencv" or spec.startswith("opencv:"):
        method = spec.partition(":")[2] or DEFAULT_METHOD
        if method not in METHODS:
            raise UserError(f"model spec {spec!r}: unknown OpenCV method {method!r}; use opencv, "
                            f"{', '.join('opencv:' + m for m in METHODS)}")  # fmt: skip
        return ModelSpec("opencv", method=method)
    path, *options = _OPTION.split(spec)
    found: dict[str, str] = {}
    for opt in options:
        name, _, value = opt.partition("=")
        if name in found or not value:
            raise UserError(f"model spec {spec!r}: give transformer=DIR and lora=FILE at most once each, with a value")
        found[name] = value
    if not path:
        raise UserError(f"model spec {spec!r}: the pipeline folder comes first, e.g. models/flux-fill:lora=FILE")
    for name, value in found.items():
        if not Path(value).exists():
            raise UserError(f"model spec {spec!r}: {name}={value}: no such {'file' if name == 'lora' else 'folder'}")
    if not Path(path).exists() and os.environ.get("HF_HUB_OFFLINE", "1") == "1":
        raise UserError(f"model spec {spec!r}: no folder {path} (and the hub is off); build or download it first, "
                        "or set HF_HUB_OFFLINE=0 to load a hub id")  # fmt: skip
    return ModelSpec("fill", path=path, transformer=found.get("transformer"), lora=found.get("lora"))


# --- small pure helpers ---


def noise_seed(seed: int, item_id: str) -> int:
    """The noise seed of one benchmark item: from (run seed, item id) alone, the same for every model."""
    digest = hashlib.blake2b(f"eval-noise|{int(seed)}|{item_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # 63 bits, a valid torch.Generator seed


def item_fingerprint(item: BenchItem) -> str:
    """A short hash of what the model sees for an item: task, prompt, size and every 4th pixel of source and mask."""
    h = hashlib.blake2b(digest_size=8)
    cond = item.cond
    h.update(f"{item.task}|{cond.prompt}|{cond.source.shape}".encode())
    h.update(np.ascontiguousarray((cond.source[::4, ::4] * 255).round().astype(np.uint8)).tobytes())
    h.update(np.ascontiguousarray(cond.mask[::4, ::4] >= 0.5).tobytes())
    return h.hexdigest()


def output_path(out_dir: str | Path, item: BenchItem) -> Path:
    return Path(out_dir) / item.task / f"{item.id}.png"


def load_output(out_dir: str | Path, item: BenchItem) -> np.ndarray:
    """A model's output for an item, (H, W, 3) float32 in [0, 1]; UserError if absent or of the wrong size."""
    path = output_path(out_dir, item)
    if not path.is_file():
        raise UserError(f"{path}: no output for item {item.id!r}; run the generation first (onereward eval)")
    img = load_rgb(path)
    if img.shape != item.cond.source.shape:
        raise UserError(f"{path}: is {img.shape[1]}x{img.shape[0]}, the item's source is "
                        f"{item.cond.source.shape[1]}x{item.cond.source.shape[0]}; delete it and rerun")  # fmt: skip
    return img


def resolve_sampling(
    spec: ModelSpec | None, defaults: dict[str, float] | None, steps, true_cfg, guidance
) -> dict[str, Any]:
    """steps / true_cfg / guidance as given, else the model's own defaults (its onereward.json, else the official)."""
    if spec is not None and spec.kind == "opencv":
        return {}
    if defaults is None:
        from onereward.models.fill import DEFAULTS_FILE, inference_defaults

        local = Path(spec.path) if Path(spec.path).exists() else None
        defaults = inference_defaults(local)
        if spec.transformer and (Path(spec.transformer) / DEFAULTS_FILE).is_file():
            defaults = inference_defaults(spec.transformer)  # as FillModel.from_pretrained
    out = {
        "steps": int(defaults["steps"] if steps is None else steps),
        "true_cfg": float(defaults["true_cfg"] if true_cfg is None else true_cfg),
        "guidance": float(defaults["guidance"] if guidance is None else guidance),
    }
    if out["steps"] < 1:
        raise UserError(f"steps={out['steps']}; use at least 1")
    return out


def batches(items: Sequence[BenchItem], batch_size: int, grid: int = 1) -> list[list[BenchItem]]:
    """Items in runs of at most batch_size that share one size padded up to `grid` (a batch is one tensor)."""
    groups: dict[tuple[int, int], list[BenchItem]] = {}
    for it in items:
        h, w = it.cond.mask.shape
        groups.setdefault((-(-h // grid) * grid, -(-w // grid) * grid), []).append(it)
    return [g[i : i + batch_size] for g in groups.values() for i in range(0, len(g), batch_size)]


# --- the two kinds of generator ---


def _fill_batch(fill: FillModel, items: list[BenchItem], seed: int, sampling: dict[str, Any]) -> list[np.ndarray]:
    """One batch through FillModel.sample, padded as onereward.infer.fill pads, each item with its own noise."""
    import torch

    from onereward.infer import pad_to_multiple

    padded = [pad_to_multiple(it.cond.source, (it.cond.mask >= 0.5).astype(np.float32), fill.grid) for it in items]
    Hp, Wp = padded[0][1].shape
    images = torch.from_numpy(np.stack([p[0] for p in padded])).permute(0, 3, 1, 2).float()  # (B, 3, H', W')
    masks = torch.from_numpy(np.stack([p[1] for p in padded]))[:, None].float()  # (B, 1, H', W') in {0, 1}
    noise = torch.cat(
        [fill.initial_noise(1, Hp, Wp, torch.Generator().manual_seed(noise_seed(seed, it.id))) for it in items]
    )  # (B, L, 4C): row b from item b's seed only
    out = fill.sample(
        images,
        masks,
        [it.cond.prompt for it in items],
        noise=noise,
        steps=sampling["steps"],
        true_cfg=sampling["true_cfg"],
        guidance=sampling["guidance"],
    )  # fmt: skip  (B, 3, H', W') in [0, 1], composited
    out = out.permute(0, 2, 3, 1).cpu().numpy()  # (B, H', W', 3)
    results = []
    for it, img in zip(items, out, strict=True):
        h, w = it.cond.mask.shape
        keep = it.cond.mask[..., None] >= 0.5  # (H, W, 1)
        results.append(np.where(keep, img[:h, :w], it.cond.source).astype(np.float32))  # (H, W, 3), source kept
    return results


def _opencv_batch(method: str, items: list[BenchItem]) -> list[np.ndarray]:
    return [inpaint(it.cond.source, it.cond.mask, method) for it in items]


# --- generation ---


def _load_manifest(path: Path) -> dict[str, Any]:
    doc = load_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), dict):
        raise UserError(f"{path}: not a generation manifest; delete the folder {path.parent} and rerun")
    return doc


def _read_manifest(out: Path) -> dict[str, Any]:
    """The manifest, with the items of any process's part (a multi-process run killed before its merge)."""
    doc = _load_manifest(out / MANIFEST) if (out / MANIFEST).is_file() else {"settings": None, "items": {}}
    for part in sorted(out.glob(PART.format("*"))):
        piece = _load_manifest(part)
        _check_settings(out, doc["settings"], piece.get("settings") or {})
        doc["settings"] = doc["settings"] or piece.get("settings")
        doc["items"].update(piece["items"])
    return doc


def _check_settings(out: Path, old: dict | None, new: dict) -> None:
    if old is None:
        return
    keys = [k for k in new if k != "model" or (old.get("model") and new.get("model"))]  # in-memory models: no key
    diff = [k for k in keys if old.get(k) != new[k]]
    if diff:
        was = ", ".join(f"{k}={old.get(k)!r}" for k in diff)
        now = ", ".join(f"{k}={new[k]!r}" for k in diff)
        raise UserError(f"{out}: its outputs were made with {was}, this run asks for {now}; "
                        "use another --out (or model name), or delete the folder to regenerate")  # fmt: skip


def _merge_parts(out: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest (it holds the parts' items, read by _read_manifest), then remove the parts."""
    save_json(out / MANIFEST, manifest)
    for part in out.glob(PART.format("*")):
        part.unlink()


def generate(
    model_spec: str | ModelSpec | FillModel,
    benchmark: str | Path | Sequence[BenchItem],
    out_dir: str | Path,
    steps: int | None = None,
    true_cfg: float | None = None,
    guidance: float | None = None,
    seed: int = 0,
    batch_size: int = 8,
    device: str | None = None,
    progress: bool = True,
    state=None,
) -> dict[str, Any]:
    """Write out_dir/<task>/<id>.png for every benchmark item (resumable); return what was done.

    model_spec: a spec string (module docstring), a ModelSpec, or an already loaded FillModel. benchmark: a folder
    (onereward.eval.benchmark) or its loaded items. steps / true_cfg / guidance default to the model's own
    (onereward.json, else the official 50 / 4.0 / 1.0). state: an accelerate PartialState to split the work over its
    processes (every process calls this; device defaults to the process's own). Returns {"generated", "skipped",
    "seconds", "settings"}, counted over all processes.
    """
    from tqdm import tqdm

    from onereward.models.fill import FillModel

    t0 = time.perf_counter()
    if batch_size < 1:
        raise UserError(f"batch size {batch_size}; use at least 1")
    items = load_benchmark(benchmark) if isinstance(benchmark, str | Path) else list(benchmark)
    loaded = model_spec if isinstance(model_spec, FillModel) else None
    spec = None if loaded is not None else model_spec
    if isinstance(spec, str):
        spec = parse_model_spec(spec)
    sampling = resolve_sampling(spec, loaded.defaults if loaded else None, steps, true_cfg, guidance)
    settings = {"model": spec.key() if spec else None, **sampling}
    if sampling:  # OpenCV uses no noise, so its outputs do not depend on the seed
        settings["seed"] = int(seed)

    out = Path(out_dir)
    manifest = _read_manifest(out)
    _check_settings(out, manifest.get("settings"), settings)
    done: dict[str, str] = manifest["items"]
    todo, skipped = [], 0
    for it in items:
        fp = item_fingerprint(it)
        if output_path(out, it).is_file():
            if done.get(it.id) == fp:
                skipped += 1
                continue
            if it.id in done:
                raise UserError(f"{output_path(out, it)}: made from another input than benchmark item {it.id!r} "
                                "(another benchmark with the same ids?); use another --out")  # fmt: skip
        todo.append((it, fp))
    manifest["settings"] = settings
    rank, world = (state.process_index, state.num_processes) if state is not None else (0, 1)
    if world > 1:
        device = device or str(state.device)
        state.wait_for_everyone()  # every process has listed what is left before any of them writes
    if not todo:
        if rank == 0:
            _merge_parts(out, manifest)
        return {"generated": 0, "skipped": skipped, "seconds": time.perf_counter() - t0, "settings": settings}
    mine = todo[rank::world]

    # --- the generator, loaded only when there is something to generate ---
    if spec is not None and spec.kind == "opencv":
        grid = 1

        def run(batch: list[BenchItem]) -> list[np.ndarray]:
            return _opencv_batch(spec.method, batch)

    else:
        if loaded is None:
            from onereward.infer import load_model

            loaded = load_model(spec.path, spec.transformer, spec.lora, device=device)
        grid = loaded.grid

        def run(batch: list[BenchItem]) -> list[np.ndarray]:
            return _fill_batch(loaded, batch, seed, sampling)

    fps = {it.id: fp for it, fp in mine}
    # one process writes the manifest itself; several each write their own part, merged below
    record, path = (
        (manifest, out / MANIFEST) if world == 1 else ({"settings": settings, "items": {}}, out / PART.format(rank))
    )
    desc = f"generate {out.name}" + (f" [{rank + 1}/{world}]" if world > 1 else "")
    bar = tqdm(total=len(mine), desc=desc, unit="image", disable=not progress or rank > 0)
    for batch in batches([it for it, _ in mine], batch_size, grid):
        for it, img in zip(batch, run(batch), strict=True):
            save_image(output_path(out, it), img)
            record["items"][it.id] = fps[it.id]
        save_json(path, record)  # after the batch's PNGs: a listed item always has its PNG
        bar.update(len(batch))
    bar.close()
    if world > 1:
        state.wait_for_everyone()
    if rank == 0:
        _merge_parts(out, _read_manifest(out) if world > 1 else manifest)
    if world > 1:
        state.wait_for_everyone()
    return {"generated": len(todo), "skipped": skipped, "seconds": time.perf_counter() - t0, "settings": settings}
