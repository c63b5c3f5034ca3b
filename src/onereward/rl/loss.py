"""The OneReward objective (PAPER.md section 3, step 5), as small pure functions."""

from __future__ import annotations

import torch


def hinge_loss(p_yes: torch.Tensor, bound: float, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample loss: mean over the task's dimensions e of max(0, lambda - p_e).

    p_yes: (B, D) P("Yes" | first = policy image, second = reference image, query_e), in [0, 1].
    keep:  (D,) bool, the dimensions that enter the loss (all by default). Returns (B,).
    The paper's Algorithm 1 says "gradient ascent" on this loss; that is a typo: it is minimised.
    """
    gap = torch.relu(bound - p_yes)  # (B, D), zero once the policy beats the reference by lambda
    if keep is None:
        return gap.mean(dim=1)
    if not bool(keep.any()):
        raise ValueError("no dimension left in the loss; lower train.min_reward_accuracy or drop the task")
    return gap[:, keep].mean(dim=1)


def composite(image: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keep the source outside the mask: what users see and what every judge scores.

    image, source: (B, 3, H, W) in [0, 1]; mask: (B, 1, H, W) in {0, 1}, 1 = generated. Returns (B, 3, H, W).
    """
    return source * (1 - mask) + image * mask
