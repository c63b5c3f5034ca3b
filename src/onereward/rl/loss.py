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


def anchor_loss(x0: torch.Tensor, x0_ref: torch.Tensor, token_weight: torch.Tensor) -> torch.Tensor:
    """Per-sample squared distance of the policy's x0 prediction from the reference's at the same (x_t, sigma_t).

    x0, x0_ref: (B, L, C) packed latents; token_weight: (B, L), each token's share of generated pixels (outside the
    mask nothing is seen, so nothing is held there). Returns (B,): the weighted mean over tokens of the mean over
    channels of (x0 - x0_ref)^2. A trust region in the sense of KL-regularised diffusion RL (DPOK, Fan et al. 2023):
    for two Gaussian denoising steps from the same x_t the KL is proportional to this distance.
    """
    per_token = (x0 - x0_ref).pow(2).mean(dim=-1)  # (B, L)
    return (per_token * token_weight).sum(dim=1) / token_weight.sum(dim=1).clamp_min(1e-8)


def composite(image: torch.Tensor, source: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keep the source outside the mask: what users see and what every judge scores.

    image, source: (B, 3, H, W) in [0, 1]; mask: (B, 1, H, W) in {0, 1}, 1 = generated. Returns (B, 3, H, W).
    """
    return source * (1 - mask) + image * mask
