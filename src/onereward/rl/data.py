"""The RL condition pool and the per-step randomness that makes resume exact.

Every random choice of a training step (task, condition, policy noise eps2, stop step) comes from a generator seeded
by (seed, step, rank), and the reference noise eps1 of a condition from (seed, condition id). So a run resumed at
step s draws exactly what the uninterrupted run drew: the data position is the step counter itself.
"""

from __future__ import annotations

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
        self.by_task: dict[str, list[str]] = {}
        for i, c in zip(ids, conditions, strict=True):
            self.by_task.setdefault(c.task, []).append(i)
        w = task_weights(weights)
        self.tasks = [t for t in TASKS if w[t] > 0 and t in self.by_task]
        if not self.tasks:
            raise UserError("the RL pool holds no condition of any task with a positive weight; check data.pool")
        probs = torch.tensor([w[t] for t in self.tasks], dtype=torch.float64)
        self.probs = probs / probs.sum()

    def __len__(self) -> int:
        return len(self.by_id)

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
        return list(self.by_id)

    def sample(self, batch_size: int, generator: torch.Generator) -> Batch:
        """Draw a task by weight, then a condition of that task, for each of batch_size rows."""
        picks = torch.multinomial(self.probs, batch_size, replacement=True, generator=generator).tolist()
        ids = []
        for p in picks:
            pool = self.by_task[self.tasks[p]]
            ids.append(pool[int(torch.randint(len(pool), (1,), generator=generator))])
        return to_batch([self.by_id[i] for i in ids], ids)

    def batch(self, ids: list[str]) -> Batch:
        return to_batch([self.by_id[i] for i in ids], ids)


def toy_pool(pool_size: int, size: int, seed: int, split: str = "rl") -> ConditionPool:
    """pool_size conditions per task from the toy world, in the seed namespace `split` (never the benchmark's)."""
    from onereward.toyworld import make_conditions

    conditions, ids = [], []
    for task in TASKS:
        for i, c in enumerate(make_conditions(task, pool_size, seed=seed, size=size, split=split)):
            conditions.append(c)
            ids.append(f"{task}/{i:05d}")
    return ConditionPool(conditions, ids)


def folder_pool(folder: str | Path) -> ConditionPool:
    """Conditions from a folder of condition folders (source.png, mask.png, meta.json with task and prompt)."""
    from onereward.toyworld import load_condition

    folder = Path(folder)
    dirs = sorted(p for p in folder.iterdir() if (p / "meta.json").is_file()) if folder.is_dir() else []
    if not dirs:
        raise UserError(f"{folder}: no condition folders (each needs source.png, mask.png, meta.json)")
    return ConditionPool([load_condition(d) for d in dirs], [d.name for d in dirs])
