"""The RL condition pool and the per-step randomness that makes resume exact.

Every random choice of a training step (task, condition, policy noise eps2, stop step) comes from a generator seeded
by (seed, step, rank), and the reference noise eps1 of a condition from (seed, condition id). So a run resumed at
step s draws exactly what the uninterrupted run drew: the data position is the step counter itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from onereward.errors import UserError
from onereward.tasks import TASKS, task_weights


def seed_of(*parts: object) -> int:
    """A stable 63-bit seed from any parts (python's hash() is salted per process, so not that)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed_of("step", seed, step, rank))


@dataclass
class Batch:
    """One step's conditions as tensors."""

    ids: list[str]
    tasks: list[str]
    prompts: list[str]  # what the fill model sees (the task's fixed prompt where it has one)
    sources: torch.Tensor  # (B, 3, H, W) in [0, 1]
    masks: torch.Tensor  # (B, 1, H, W) in {0, 1}
    conditions: list  # the Condition objects (the toy oracle needs their metadata)

    def split(self, n: int) -> list[Batch]:
        """Consecutive parts of n rows: a step's micro-batches under gradient accumulation."""
        rows = [slice(i, i + n) for i in range(0, len(self.ids), n)]
        return [Batch(*(getattr(self, f.name)[r] for f in dataclasses.fields(self))) for r in rows]


def to_batch(conditions: list, ids: list[str]) -> Batch:
    sources = torch.from_numpy(np.stack([c.source for c in conditions])).permute(0, 3, 1, 2)  # (B, 3, H, W)
    masks = torch.from_numpy(np.stack([c.mask for c in conditions]))[:, None]  # (B, 1, H, W)
    return Batch(
        ids=ids,
        tasks=[c.task for c in conditions],
        prompts=[c.prompt for c in conditions],
        sources=sources.float(),
        masks=masks.float(),
        conditions=conditions,
    )


class ConditionPool:
    """Conditions grouped by task; draws a batch for a step from the task weights."""

    def __init__(self, conditions: list, ids: list[str] | None = None, weights: dict[str, float] | None = None):
        ids = ids or [f"{c.task}/{i:05d}" for i, c in enumerate(conditions)]
        self.by_id = dict(zip(ids, conditions, strict=True))
        self._index(ids, [c.task for c in conditions], weights)

    def _index(self, ids: list[str], tasks: list[str], weights: dict[str, float] | None) -> None:
        self.by_task: dict[str, list[str]] = {}
        for i, t in zip(ids, tasks, strict=True):
            self.by_task.setdefault(t, []).append(i)
        w = task_weights(weights)
        self.tasks = [t for t in TASKS if w[t] > 0 and t in self.by_task]
        if not self.tasks:
            raise UserError("the RL pool holds no condition of any task with a positive weight; check data.pool")
        probs = torch.tensor([w[t] for t in self.tasks], dtype=torch.float64)
        self.probs = probs / probs.sum()
        self._ids = list(ids)

    def __len__(self) -> int:
        return len(self._ids)

    def condition(self, i: str):
        return self.by_id[i]

    def exclude(self, tasks: list[str]) -> None:
        """Stop drawing these tasks (e.g. their reward dimensions are not reliable enough to train on)."""
        keep = [i for i, t in enumerate(self.tasks) if t not in tasks]
        if not keep:
            raise UserError(
                f"every task is excluded from RL ({', '.join(tasks)}): no task passes the reward model's accuracy"
                " gate (train.min_reward_accuracy, train.gate); train a better reward model, lower that threshold"
                " or set train.gate=dimension"
            )
        self.tasks = [self.tasks[i] for i in keep]
        probs = self.probs[keep]
        self.probs = probs / probs.sum()

    def ids(self) -> list[str]:
        return list(self._ids)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """Draw a task by weight, then a condition of that task, for each of batch_size rows."""
        picks = torch.multinomial(self.probs, batch_size, replacement=True, generator=generator).tolist()
        ids = []
        for p in picks:
            pool = self.by_task[self.tasks[p]]
            ids.append(pool[int(torch.randint(len(pool), (1,), generator=generator))])
        return self.batch(ids)

    def batch(self, ids: list[str]) -> Batch:
        return to_batch([self.condition(i) for i in ids], ids)


class FolderPool(ConditionPool):
    """A folder of condition folders (onereward.data.conditions: flat or by task; toy or real images of any size),
    read when a batch needs them and fitted to size x size (`fit_square`): a real pool does not fit in memory.

    Every folder is checked when the pool is made (files, task, prompt, equal image sizes, from the headers), so a
    bad one stops the run before training starts.
    """

    def __init__(self, folder: str | Path, size: int, weights: dict[str, float] | None = None):
        from onereward.data.conditions import find_conditions

        self.root, self.size = Path(folder), size
        by_task = find_conditions(self.root)
        self.folders: dict[str, tuple[str, Path]] = {}
        for task, dirs in by_task.items():
            for d in dirs:
                _check_folder(d, task)
                self.folders[str(d.relative_to(self.root))] = (task, d)
        ids = sorted(self.folders)
        self._index(ids, [self.folders[i][0] for i in ids], weights)

    def condition(self, i: str):
        from onereward.eval.benchmark import load_item

        task, d = self.folders[i]
        return fit_square(load_item(d, task), self.size)


def _check_folder(d: Path, task: str) -> None:
    from PIL import Image

    from onereward.io import load_json

    for name in ("source.png", "mask.png"):
        if not (d / name).is_file():
            raise UserError(f"{d / name}: missing; a condition folder holds source.png, mask.png and meta.json")
    with Image.open(d / "source.png") as a, Image.open(d / "mask.png") as b:
        if a.size != b.size:
            raise UserError(f"{d}: source.png is {a.size[0]}x{a.size[1]}, mask.png {b.size[0]}x{b.size[1]}; "
                            "give them one size")  # fmt: skip
    if TASKS[task].uses_prompt and not load_json(d / "meta.json").get("prompt"):
        raise UserError(f"{d / 'meta.json'}: task {task!r} needs a non-empty 'prompt' (what to generate)")


def fit_square(cond, size: int):
    """A condition of any size as size x size: the short side scaled to `size`, then the square window along the
    long side centred on the mask, so that the region to generate stays in view. Same-size conditions pass as is."""
    import cv2

    from onereward.toyworld.world import Condition

    h, w = cond.mask.shape
    if (h, w) == (size, size):
        return cond
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC

    def resize(img: np.ndarray) -> np.ndarray:  # (H, W, 3) -> (nh, nw, 3) in [0, 1]
        return np.clip(cv2.resize(img, (nw, nh), interpolation=interp), 0, 1).astype(np.float32)

    # a pixel that covers any masked area is generated: a thin stroke or a small object never vanishes when shrunk
    mask = cv2.resize(cond.mask.astype(np.float32), (nw, nh), interpolation=cv2.INTER_AREA) > 0
    ys, xs = np.nonzero(mask)
    cy, cx = (ys.mean(), xs.mean()) if len(ys) else (nh / 2, nw / 2)
    top = int(np.clip(round(cy - size / 2), 0, nh - size))
    left = int(np.clip(round(cx - size / 2), 0, nw - size))
    crop = (slice(top, top + size), slice(left, left + size))
    mask = mask[crop].astype(np.float32)
    target = None if cond.target is None else resize(cond.target)[crop]
    meta = {**cond.meta, "fitted_from": [h, w]}
    return Condition(cond.task, resize(cond.source)[crop], mask, cond.prompt, target, meta)


def toy_pool(pool_size: int, size: int, seed: int, split: str = "rl") -> ConditionPool:
    """pool_size conditions per task from the toy world, in the seed namespace `split` (never the benchmark's)."""
    from onereward.toyworld import make_conditions

    conditions, ids = [], []
    for task in TASKS:
        for i, c in enumerate(make_conditions(task, pool_size, seed=seed, size=size, split=split)):
            conditions.append(c)
            ids.append(f"{task}/{i:05d}")
    return ConditionPool(conditions, ids)


def folder_pool(folder: str | Path, size: int = 64) -> ConditionPool:
    """The conditions of a folder (FolderPool), fitted to size x size as they are read."""
    return FolderPool(folder, size)
