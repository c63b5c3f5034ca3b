"""The policy's optimiser: AdamW (default) or Adafactor, optionally stepped inside the backward pass.

Full fine-tuning memory in fp32 model copies, on top of the weights: AdamW holds the gradient and two moments (3);
torch's Adafactor (Shazeer & Stern 2018) keeps no first moment and factors the second into row and column means
(about 0). `fused_backward` steps each parameter as soon as its gradient is accumulated and frees that gradient at
once, so at most one parameter's gradient is alive (the recipe of the PyTorch tutorial "How to save memory by fusing
the optimizer step into the backward pass"). With both, the optimiser adds almost nothing to the policy's weights
(AdamW adds three copies); standard OneReward then holds ~3 copies (policy, frozen reference, EMA), dynamic ~2.

To the trainer a fused optimiser is an ordinary one: `step()` has nothing left to do, one LambdaLR drives it, and
`state_dict()` round-trips through checkpoints. It is single-process only: DDP/FSDP reduce gradients across processes
after backward, and global-norm clipping needs every gradient at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from onereward.config import TrainConfig
from onereward.errors import UserError


def make_optimizer(named: list[tuple[str, nn.Parameter]], train: TrainConfig, num_processes: int):
    """The optimiser train.optimizer names, over `named` (the trainable parameters), fused into backward if asked."""
    if train.fused_backward and num_processes > 1:
        raise UserError(
            f"train.fused_backward steps inside backward, before gradients are reduced over the {num_processes}"
            " processes; run one process or set train.fused_backward=false"
        )

    def make(params: list[nn.Parameter]) -> torch.optim.Optimizer:
        if train.optimizer == "adafactor":
            # foreach=False: the foreach path materialises every parameter's variance estimate at once (a full copy)
            return torch.optim.Adafactor(params, lr=train.lr, weight_decay=train.weight_decay, foreach=False)
        return torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay)

    return FusedBackward(named, make) if train.fused_backward else make([p for _, p in named])


_HOOK = "_onereward_fused_step"  # a parameter's attribute holding its fused-step hook handle


class FusedBackward(torch.optim.Optimizer):
    """One optimiser per parameter, stepped inside backward by the parameter's post-accumulate-grad hook.

    `param_groups` are the per-parameter optimisers' own groups, so a scheduler that sets group["lr"] here sets it
    on all of them. A parameter whose gradient is not finite is not updated and keeps its gradient: the trainer's NaN
    guard then sees it, clears it and skips the rest of the step (reference update, schedule); parameters stepped
    earlier in the same backward stay updated (no optimiser step sees all gradients at once).
    """

    def __init__(self, named: list[tuple[str, nn.Parameter]], make: Callable[[list], torch.optim.Optimizer]):
        self.names = [n for n, _ in named]
        self.inner = [make([p]) for _, p in named]
        super().__init__([p for _, p in named], {})
        self._link_groups()
        for (_, p), opt in zip(named, self.inner, strict=True):
            # A parameter steps with one optimiser only: an earlier run's hook (a second `train` in the same process,
            # or one that ended in an error) would step it first and free the gradient under this one.
            old = getattr(p, _HOOK, None)
            if old is not None:
                old.remove()
            setattr(p, _HOOK, p.register_post_accumulate_grad_hook(functools.partial(_step_in_backward, opt)))
        self._params = [p for _, p in named]

    def close(self) -> None:
        """Remove the hooks: backward through these parameters no longer steps them."""
        for p in self._params:
            handle = getattr(p, _HOOK, None)
            if handle is not None:
                handle.remove()
                delattr(p, _HOOK)

    def _link_groups(self) -> None:
        self.param_groups = [opt.param_groups[0] for opt in self.inner]

    def step(self, closure=None) -> None:
        """Nothing to do: every parameter was stepped during backward."""

    def state_dict(self) -> dict:
        return {"per_parameter": {n: opt.state_dict() for n, opt in zip(self.names, self.inner, strict=True)}}

    def load_state_dict(self, state_dict: dict) -> None:
        saved = state_dict["per_parameter"]
        missing = set(self.names) - set(saved)
        if missing:
            raise UserError(f"optimiser state lacks {len(missing)} parameters (e.g. {sorted(missing)[0]})")
        for n, opt in zip(self.names, self.inner, strict=True):
            opt.load_state_dict(saved[n])
        self._link_groups()  # Optimizer.load_state_dict builds new group dicts


@torch.no_grad()
def _step_in_backward(opt: torch.optim.Optimizer, param: nn.Parameter) -> None:
    if not bool(torch.isfinite(param.grad).all()):
        return  # left in place for the trainer's NaN guard
    opt.step()
    param.grad = None  # freed now: the point of fusing
