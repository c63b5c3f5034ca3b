"""The reference models of OneReward's two algorithms: the ONLY place the variants differ.

The trainer holds one Reference and calls three things on it: `model()` (a context that yields the transformer to
run the reference rollout with), `update()` after each optimiser step, and `state_dict()/load_state_dict()` for
checkpoints. It never asks which algorithm it holds.

- Algorithm 1, "standard" (`FrozenReference`): the reference is the frozen pre-trained model; an EMA of the policy
  is kept alongside as an output. Models in memory: policy, frozen reference, EMA (three).
- Algorithm 2, "dynamic" (`EMAReference`): the reference IS the EMA of the policy,
  ref <- tau * ref + (1 - tau) * policy after every step. Models in memory: policy, reference (two).

With LoRA no second copy of the base weights exists: the frozen reference is the policy with its adapters disabled,
and EMAs cover only the trainable (adapter) tensors, swapped into the adapter for the reference rollout.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def trainable(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad]


class EMA:
    """Exponential moving average of a fixed list of tensors: shadow <- tau * shadow + (1 - tau) * value."""

    def __init__(self, named: list[tuple[str, torch.Tensor]], tau: float, copy: bool = True):
        """`copy=False`: the given tensors themselves are the shadows, updated in place (no copy is made)."""
        self.tau = tau
        self.names = [n for n, _ in named]
        if copy:
            self.shadow = [p.detach().clone().float() for _, p in named]  # fp32 shadows: bf16 lerp loses updates
        else:
            self.shadow = [p.data for _, p in named]

    @torch.no_grad()
    def update(self, tensors: list[torch.Tensor]) -> None:
        for s, p in zip(self.shadow, tensors, strict=True):
            s.lerp_(p.detach().to(s.dtype), 1.0 - self.tau)

    @contextmanager
    @torch.no_grad()
    def swapped_into(self, params: list[torch.Tensor]) -> Iterator[None]:
        """Temporarily load the shadows into `params` (same order), restoring the originals afterwards.

        Parameter and shadow trade values tensor by tensor, so the shadows hold the originals meanwhile and no backup
        of the whole model is made (a full backup was one more model copy at the final export). A parameter of
        another dtype than its shadow (bf16 weights, fp32 shadows) is backed up instead: trading would round the
        shadow. Inside the context the EMA itself holds the originals: do not read or update it there.
        """
        backups: list[torch.Tensor | None] = []
        try:
            for p, s in zip(params, self.shadow, strict=True):
                if p.dtype == s.dtype:
                    _trade(p, s)
                    backups.append(None)
                else:
                    backups.append(p.detach().clone())
                    p.copy_(s.to(p.dtype))
            yield
        finally:
            for p, s, b in zip(params, self.shadow, backups, strict=False):  # only those swapped in so far
                if b is None:
                    _trade(p, s)
                else:
                    p.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.shadow, strict=True))

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = set(self.names) - set(state)
        if missing:
            raise KeyError(f"EMA state lacks {len(missing)} tensors, e.g. {sorted(missing)[0]}")
        self.shadow = [state[n].clone().float() for n in self.names]


@torch.no_grad()
def _trade(a: torch.Tensor, b: torch.Tensor) -> None:
    """Exchange the values of two same-dtype tensors in place, holding one tensor's worth of extra memory."""
    held = a.detach().clone()
    a.copy_(b)
    b.copy_(held)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A frozen, independent copy (the default; a sharded policy passes its own way of copying)."""
    return copy.deepcopy(module).requires_grad_(False).eval()


def _is_lora(module: nn.Module) -> bool:
    return any("lora_" in n for n, _ in trainable(module))


class FrozenReference:
    """Algorithm 1: a frozen copy of the pre-trained model as reference, plus an EMA of the policy as an output."""

    algorithm = "standard"
    cacheable = True  # its images depend only on (condition, eps1), so `onereward refs` may precompute them

    def __init__(self, policy: nn.Module, tau: float, cached: bool = False, copy_module=None):
        self._policy = policy
        self._lora = _is_lora(policy)
        self._cached = cached
        # Full fine-tuning keeps a frozen copy, unless every reference image comes from the cache (`onereward refs`):
        # then no copy is held at all. LoRA runs the policy itself with its adapters disabled.
        keep = not self._lora and not cached
        self._frozen = (copy_module or frozen_copy)(policy) if keep else None
        self.ema = EMA(trainable(policy), tau)

    @contextmanager
    def model(self) -> Iterator[nn.Module]:
        if self._cached:
            raise RuntimeError("this reference serves cached images only (data.ref_cache); it holds no model")
        if self._frozen is not None:
            yield self._frozen
            return
        self._policy.disable_adapters()
        try:
            yield self._policy
        finally:
            self._policy.enable_adapters()

    def update(self) -> None:
        self.ema.update([p for _, p in trainable(self._policy)])

    def exports(self) -> dict[str, EMA]:
        """Weights saved beside the policy at the end: the EMA of the policy (Algorithm 1's output model)."""
        return {"ema": self.ema}

    def state_dict(self) -> dict:
        return {"ema": self.ema.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.ema.load_state_dict(state["ema"])


class EMAReference:
    """Algorithm 2: the reference is the EMA of the policy, updated after every step."""

    algorithm = "dynamic"
    cacheable = False

    def __init__(self, policy: nn.Module, tau: float, copy_module=None):
        self._policy = policy
        self._lora = _is_lora(policy)
        names = [n for n, _ in trainable(policy)]
        if self._lora:
            # Only the adapter tensors move; their EMA is swapped into the policy's adapter for the rollout.
            self.ema = EMA(trainable(policy), tau)
            self._copy = None
        else:
            # The reference module's own parameters ARE the EMA (updated in place, no shadow copy is ever made):
            # two models in memory, not three.
            self._copy = (copy_module or frozen_copy)(policy)
            params = dict(self._copy.named_parameters())
            self.ema = EMA([(n, params[n]) for n in names], tau, copy=False)

    @contextmanager
    def model(self) -> Iterator[nn.Module]:
        if self._copy is not None:
            yield self._copy
            return
        with self.ema.swapped_into([p for _, p in trainable(self._policy)]):
            yield self._policy

    def update(self) -> None:
        self.ema.update([p for _, p in trainable(self._policy)])

    def exports(self) -> dict[str, EMA]:
        return {}

    def state_dict(self) -> dict:
        return {"ema": self.ema.state_dict()}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for s, n in zip(self.ema.shadow, self.ema.names, strict=True):
            s.copy_(state["ema"][n])


def make_reference(
    algorithm: str, policy: nn.Module, tau: float, cached: bool = False, copy_module=None
) -> FrozenReference | EMAReference:
    """The Reference of `algorithm`; `cached` (standard only) means its images come from `onereward refs`;
    `copy_module` makes the model copy a full fine-tuning run needs (default: a frozen deepcopy)."""
    if algorithm == "standard":
        return FrozenReference(policy, tau, cached=cached, copy_module=copy_module)
    return EMAReference(policy, tau, copy_module=copy_module)
