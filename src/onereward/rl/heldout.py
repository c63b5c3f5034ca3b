"""Held-out evaluation of a real run during training: the policy's win rate against the base model, per task.

The toy world scores held-out conditions with its oracle (trainer.evaluate_held_out). Real data has no oracle, and a
rising training reward is no evidence (PILOT.md), so with `log.eval_pool` the trainer samples the policy on held-out
conditions every `log.eval_every` steps, with the same noise per condition every time, and asks a reward model
(`log.eval_judge`; best one not trained against) whether each image beats the base model's on every dimension of
its task, in both orders: win rate 0.5 = no change. The base model's images are made at step 0 and kept in
OUT/eval_base/ (8-bit PNGs; the policy's are rounded to 8 bits the same way), so a resumed run compares with the
same ones. The best evaluated step is exported to OUT/best, as in the toy world.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from onereward.errors import UserError
from onereward.eval.judges import two_order_win
from onereward.io import load_rgb, save_image
from onereward.rl.data import FolderPool, seed_of
from onereward.tasks import TASKS

BATCH = 8


class HeldOutJudge:
    def __init__(self, cfg, out: Path, device):
        from onereward.reward.model import RewardModel

        self.pool = FolderPool(cfg.log.eval_pool, cfg.sampling.size)
        self.ids = {t: self.pool.by_task[t][: cfg.log.eval_size] for t in self.pool.tasks}
        self.judge = RewardModel.for_judging(cfg.log.eval_judge or cfg.model.reward, device)
        self.base_dir = out / "eval_base"

    def _sample(self, fill, net, cfg, ids: list[str]) -> tuple[np.ndarray, list[str]]:
        """((N, H, W, 3) uint8 images of `net` on these conditions, their N prompts); noise from (seed, id) alone."""
        out, prompts = [], []
        for i in range(0, len(ids), BATCH):
            b = self.pool.batch(ids[i : i + BATCH])
            h, w = b.sources.shape[-2:]
            gens = [torch.Generator().manual_seed(seed_of("held-out", cfg.train.seed, c)) for c in b.ids]
            noise = torch.cat([fill.initial_noise(1, h, w, g) for g in gens])  # (b, L, 4C)
            imgs = fill.sample(b.sources, b.masks, b.prompts, steps=cfg.sampling.steps, true_cfg=1.0,
                               guidance=cfg.sampling.guidance, noise=noise, transformer=net)  # fmt: skip
            out.append(np.round(imgs.permute(0, 2, 3, 1).float().cpu().numpy() * 255).astype(np.uint8))
            prompts += b.prompts
        return np.concatenate(out), prompts

    def _base(self, task: str, step: int, policy: np.ndarray) -> np.ndarray:
        """The base model's images of `task`: from disk, or at step 0 the policy's own (it is the base model then)."""
        paths = [self.base_dir / f"{i.replace('/', '__')}.png" for i in self.ids[task]]
        if all(p.is_file() for p in paths):
            return np.stack([np.round(load_rgb(p) * 255).astype(np.uint8) for p in paths])
        if step > 0:
            raise UserError(f"{self.base_dir}: the base model's held-out images are missing (made at step 0); "
                            "restore them or start the run again")  # fmt: skip
        for p, im in zip(paths, policy, strict=True):
            save_image(p, im.astype(np.float32) / 255)
        return policy

    @torch.no_grad()
    def evaluate(self, fill, net, cfg, step: int) -> dict[str, float]:
        """{winrate/<task>: two-order P(policy beats base), mean over conditions and the task's dimensions}."""
        result = {}
        for task, ids in self.ids.items():
            policy, prompts = self._sample(fill, net, cfg, ids)
            base = self._base(task, step, policy)
            dims = list(TASKS[task].dimensions)
            a, b = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 for x in (policy, base))  # (N, 3, H, W)
            wins = [
                two_order_win(self.judge, a[i : i + BATCH], b[i : i + BATCH], task, dims, prompts[i : i + BATCH])
                for i in range(0, len(ids), BATCH)
            ]  # (n, D) each
            result[f"winrate/{task}"] = float(torch.cat(wins).mean())
        return result
