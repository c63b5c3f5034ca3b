"""How the policy is spread over processes: data parallel through accelerate (default), or sharded with FSDP2.

The trainer holds one of these and never asks which. Everything that differs between a replicated and a sharded
model lives here: preparing it, copying it for a reference, and gathering full tensors for checkpoints and exports.
FSDP uses torch's own `fully_shard` (per transformer block, then the root) rather than accelerate's plugin, because
the plugin is silently ignored on CPU, where the test suite proves this path over gloo.

With FSDP every gather is a collective: ALL processes call `full_trainable`, `full_optimizer`, `full_reference`, and
the main process alone writes what they return.
"""

from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from onereward.rl.reference import trainable


def _frozen(module: nn.Module) -> nn.Module:
    return module.requires_grad_(False).eval()


class DataParallel:
    """Single process or DDP via accelerate: every process holds the whole model."""

    name = "ddp"
    collective_forward = False  # a forward pass involves only the calling process

    def __init__(self, acc):
        self.acc = acc

    def shard(self, net: nn.Module) -> nn.Module:
        return net

    def copy_module(self, net: nn.Module) -> nn.Module:
        return _frozen(copy.deepcopy(net))

    def prepare(self, net, optimizer, scheduler):
        """-> (module for the grad-carrying call, optimizer, scheduler), wrapped by accelerate (DDP if distributed)."""
        return self.acc.prepare(net, optimizer, scheduler)

    def no_sync(self, net: nn.Module, sync: bool):
        """Context for one micro-batch's forward and backward: with sync False, gradients only accumulate locally
        (DDP all-reduces once, on the step's last micro-batch)."""
        return contextlib.nullcontext() if sync else self.acc.no_sync(net)

    def full_trainable(self, net: nn.Module) -> dict[str, torch.Tensor]:
        return {n: p.detach() for n, p in trainable(net)}

    def full_optimizer(self, net: nn.Module, optimizer) -> dict:
        return optimizer.state_dict()

    def full_reference(self, reference) -> dict:
        return reference.state_dict()

    def load(self, net: nn.Module, optimizer, policy: dict[str, torch.Tensor], optim_state: dict) -> None:
        named = dict(trainable(net))
        with torch.no_grad():
            for n, p in named.items():
                p.copy_(policy[n])
        optimizer.load_state_dict(optim_state)

    def load_reference(self, reference, state: dict) -> None:
        reference.load_state_dict(state)

    def export_module(self, net: nn.Module) -> nn.Module:
        """A plain module holding the full weights, for save_pretrained / LoRA export (main process)."""
        return net


class FullyShardedDataParallel(DataParallel):
    """torch FSDP2 (`fully_shard`): parameters sharded across processes, gathered block by block in forward."""

    name = "fsdp"
    collective_forward = True  # every forward all-gathers shards: all processes must run it together

    def __init__(self, acc, mixed_precision: str = "no"):
        super().__init__(acc)
        from torch.distributed.device_mesh import init_device_mesh

        self.mesh = init_device_mesh(acc.device.type, (acc.num_processes,))
        self.mp = None
        if mixed_precision in ("bf16", "fp16"):
            from torch.distributed.fsdp import MixedPrecisionPolicy

            dtype = torch.bfloat16 if mixed_precision == "bf16" else torch.float16
            self.mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)

    def shard(self, net: nn.Module) -> nn.Module:
        from torch.distributed.fsdp import fully_shard

        kw = {"mesh": self.mesh, **({"mp_policy": self.mp} if self.mp else {})}
        for block in [*getattr(net, "transformer_blocks", []), *getattr(net, "single_transformer_blocks", [])]:
            fully_shard(block, **kw)
        fully_shard(net, **kw)
        return net

    def copy_module(self, net: nn.Module) -> nn.Module:
        """A sharded copy of a sharded module: rebuilt from its config and the gathered weights (deepcopy of an
        FSDP module is not supported)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(net, options=StateDictOptions(full_state_dict=True))
        clone = type(net).from_config(net.config).to(self.acc.device)
        clone.load_state_dict(full)
        return _frozen(self.shard(clone))

    def prepare(self, net, optimizer, scheduler):
        optimizer, scheduler = self.acc.prepare(optimizer, scheduler)  # FSDP reduces gradients itself: no DDP
        return net, optimizer, scheduler

    @contextlib.contextmanager
    def no_sync(self, net: nn.Module, sync: bool):
        """FSDP2 keeps unsharded gradients across micro-batches and reduce-scatters on the last one."""
        net.set_requires_gradient_sync(sync)
        try:
            yield
        finally:
            net.set_requires_gradient_sync(True)

    def full_trainable(self, net: nn.Module) -> dict[str, torch.Tensor]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        opts = StateDictOptions(full_state_dict=True, ignore_frozen_params=True)
        return get_model_state_dict(net, options=opts)

    def full_optimizer(self, net: nn.Module, optimizer) -> dict:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(net, optimizer, options=StateDictOptions(full_state_dict=True))

    def full_reference(self, reference) -> dict:
        state = reference.state_dict()
        return {"ema": {n: _full(t) for n, t in state["ema"].items()}}

    def load(self, net: nn.Module, optimizer, policy: dict[str, torch.Tensor], optim_state: dict) -> None:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        set_model_state_dict(net, policy, options=StateDictOptions(full_state_dict=True, strict=False))
        set_optimizer_state_dict(net, optimizer, optim_state, options=StateDictOptions(full_state_dict=True))

    def load_reference(self, reference, state: dict) -> None:
        from torch.distributed.tensor import DTensor, distribute_tensor

        local = {}
        for n, cur in zip(reference.ema.names, reference.ema.shadow, strict=True):
            full = state["ema"][n]
            local[n] = distribute_tensor(full, cur.device_mesh, cur.placements) if isinstance(cur, DTensor) else full
        reference.load_state_dict({"ema": local})

    def export_module(self, net: nn.Module) -> nn.Module:
        """Gathers the full weights into a fresh unsharded module (collective; the result matters on main)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(net, options=StateDictOptions(full_state_dict=True))
        clone = type(net).from_config(net.config)
        peft_config = getattr(net, "peft_config", None)
        if peft_config:
            clone.add_adapter(peft_config["default"])
        clone.load_state_dict({k: v.cpu() for k, v in full.items()})
        return clone


def _full(t: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def make_strategy(acc, fsdp: bool, mixed_precision: str = "no") -> DataParallel:
    if fsdp and acc.num_processes > 1:
        return FullyShardedDataParallel(acc, mixed_precision)
    return DataParallel(acc)
