"""Typed run configuration for OneReward RL: nested dataclasses, each field documented once.

A run's Config comes from a preset (presets.py), then a YAML file, then `--set section.field=value` overrides, in
that order. `Config.check()` validates the arithmetic before any model is loaded, with errors that say what to change.
Batch sizes are PER PROCESS unless the name says global.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from onereward.errors import UserError
from onereward.tasks import task_weights

REQUIRED = "(required)"  # a preset field the user must set (no default would be right)


@dataclass
class ModelConfig:
    policy: str = ""  # FLUX.1-Fill-dev-layout pipeline folder or hub id (the pre-trained base model)
    reward: str = ""  # Qwen2.5-VL reward model folder (from `onereward train-reward`) or hub id
    reward_accuracy: str = ""  # optional accuracy.json from `onereward eval-reward`, to gate dimensions (below)
    lora_rank: int = 0  # 0 = full fine-tuning; > 0 = LoRA of this rank on the transformer's attention projections
    lora_alpha: float = 0.0  # LoRA alpha; 0 means "same as the rank"
    gradient_checkpointing: bool = False  # recompute activations in backward: the policy and the reward model
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16": accelerate's autocast; bf16 is the GPU setting
    fsdp: bool = False  # shard the policy over all processes with torch FSDP2 (else: DDP replicas via accelerate)


@dataclass
class SamplingConfig:
    size: int = 64  # image side in pixels (toy world) — real benchmarks keep their own sizes
    steps: int = 8  # Euler steps of the full reference rollout and of the policy schedule
    stop_min: float = 0.5  # the policy stops its no-grad rollout at a random step in [stop_min, stop_max] * steps
    stop_max: float = 1.0  #   (fractions of the schedule; default: the later half, as ReFL)
    true_cfg: float = 1.0  # true classifier-free guidance during training (the paper leaves it open: INFERRED)
    guidance: float = 1.0  # FLUX's distilled guidance embedding value (FLUX.1-Fill-dev inference uses 30)


@dataclass
class TrainConfig:
    algorithm: str = "standard"  # "standard" (Algorithm 1: frozen reference + EMA output) | "dynamic" (Algorithm 2)
    steps: int = 100  # optimiser steps
    batch_size: int = 8  # conditions per micro-batch per process
    grad_accum: int = 1  # micro-batches per optimiser step: a step sees batch_size x grad_accum x processes conditions
    lr: float = 2e-6  # learning rate of train.optimizer (PILOT.md: 1e-5 hacked the toy reward within ~130 steps)
    weight_decay: float = 0.0
    # "adamw" | "adafactor" (torch's: no first moment, factored second; its lr is RELATIVE: a step moves each tensor
    # by about lr x max(1e-3, RMS of the tensor), so it wants a larger lr than AdamW)
    optimizer: str = "adamw"
    fused_backward: bool = False  # step each parameter inside backward, freeing its grad (1 process, grad_clip=0)
    warmup_steps: int = 0  # linear warm-up, then constant
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    reward_bound: float = 0.9  # lambda in loss = mean_e max(0, lambda - p_e)
    anchor: float = 0.0  # beta: + beta * |x0 - x0_ref|^2 over the mask, the reference's prediction at the same x_t
    ema_tau: float = 0.99  # EMA decay: the output EMA (standard) or the reference itself (dynamic)
    task_weights: dict[str, float] = field(default_factory=dict)  # overrides of the task table's weights
    min_reward_accuracy: float = 0.0  # drop (task, dimension) terms whose measured RM accuracy is below this
    gate: str = "dimension"  # "dimension": drop those terms alone; "task": train a task only if NONE is dropped
    seed: int = 0


@dataclass
class DataConfig:
    pool: str = ""  # folder of RL conditions (toy: written by the trainer from toyworld; real: a benchmark folder)
    pool_size: int = 512  # toy world: conditions generated per task for the RL pool
    ref_cache: str = ""  # folder of precomputed reference images (`onereward refs`); standard algorithm only


@dataclass
class LogConfig:
    out: str = "runs/train"  # run folder: checkpoints, logs, exports
    log_every: int = 1  # JSONL/TensorBoard scalars every N steps
    image_every: int = 50  # image grid (source, mask, reference, policy) every N steps; 0 disables
    eval_every: int = 0  # held-out evaluation every N steps (toy: oracle usability; eval_pool: win rate); 0 disables
    eval_size: int = 64  # held-out conditions per task for those evaluations
    eval_pool: str = ""  # real data: folder of held-out conditions, judged as win rate against the base model
    eval_judge: str = ""  # the reward-model folder judging eval_pool ("" = model.reward, the one trained against)
    save_every: int = 50  # checkpoint every N steps (atomic); the last step is always saved
    keep_checkpoints: int = 2  # older checkpoints are deleted once a newer one is complete
    report_to: str = "tensorboard"  # experiment trackers, comma-separated: tensorboard, wandb, mlflow, ... or "none"


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def check(self) -> Config:
        """Validate before anything heavy runs; every message says what to change."""
        s, t = self.sampling, self.train
        for name, value in (("model.reward", self.model.reward), ("data.pool", self.data.pool)):
            if value == REQUIRED:
                what = "a reward-model folder" if name == "model.reward" else "a folder of conditions"
                raise UserError(f"{name} has no default in this preset; pass --set {name}=DIR ({what})")
        if t.algorithm not in ("standard", "dynamic"):
            raise UserError(f"train.algorithm is {t.algorithm!r}; use 'standard' (Algorithm 1) or 'dynamic'")
        if not 0.0 <= s.stop_min <= s.stop_max <= 1.0:
            raise UserError(
                f"sampling.stop_min={s.stop_min}, stop_max={s.stop_max}: need 0 <= stop_min <= stop_max <= 1"
            )
        lo, hi = self.stop_range()
        if lo > hi:
            raise UserError(
                f"sampling.stop range [{s.stop_min}, {s.stop_max}] x {s.steps} steps holds no step in 1..{s.steps - 1}"
                "; widen the range or raise sampling.steps"
            )
        if s.size % 16:
            raise UserError(f"sampling.size={s.size} must be a multiple of 16 (FLUX's latent grid); try 64")
        if not 0.0 < t.reward_bound <= 1.0:
            raise UserError(f"train.reward_bound={t.reward_bound}; lambda must lie in (0, 1]")
        if not 0.0 <= t.ema_tau < 1.0:
            raise UserError(f"train.ema_tau={t.ema_tau}; use a decay in [0, 1), e.g. 0.99")
        if t.gate not in ("dimension", "task"):
            raise UserError(f"train.gate is {t.gate!r}; use 'dimension' or 'task' (see train.min_reward_accuracy)")
        if t.optimizer not in ("adamw", "adafactor"):
            raise UserError(f"train.optimizer is {t.optimizer!r}; use 'adamw' or 'adafactor'")
        if t.fused_backward and t.grad_clip > 0:
            raise UserError(
                f"train.fused_backward cannot clip the global grad norm (train.grad_clip={t.grad_clip}): no step sees"
                " every gradient; set train.grad_clip=0 (Adafactor clips its own update RMS)"
            )
        if t.fused_backward and self.model.mixed_precision == "fp16":
            raise UserError(
                "train.fused_backward cannot unscale fp16 gradients before each step;"
                " use model.mixed_precision=bf16 or no"
            )
        from onereward.tracking import tracker_names

        tracker_names(self.log.report_to)  # unknown or missing trackers stop here, before any model loads
        if t.grad_accum < 1:
            raise UserError(f"train.grad_accum={t.grad_accum}; use 1 (no accumulation) or more micro-batches per step")
        if t.fused_backward and t.grad_accum > 1:
            raise UserError(
                "train.fused_backward steps each parameter inside backward, so it cannot accumulate micro-batches;"
                " set train.grad_accum=1 or train.fused_backward=false"
            )
        if t.batch_size < 1 or t.steps < 0 or t.lr <= 0:
            raise UserError("train.batch_size must be >= 1, train.steps >= 0 and train.lr > 0")
        if self.log.save_every < 1 or self.log.keep_checkpoints < 1:
            raise UserError("log.save_every and log.keep_checkpoints must be >= 1")
        if self.model.mixed_precision not in ("no", "bf16", "fp16"):
            raise UserError(f"model.mixed_precision={self.model.mixed_precision!r}; use no, bf16 or fp16")
        if self.log.eval_pool and not self.log.eval_every:
            raise UserError("log.eval_pool is judged every log.eval_every steps; set log.eval_every, e.g. 250")
        if t.anchor < 0:
            raise UserError(f"train.anchor={t.anchor}; use 0 (off) or a positive weight, e.g. 10")
        if self.data.ref_cache and t.anchor > 0:
            raise UserError(
                "train.anchor needs the reference model's predictions, and data.ref_cache holds only its images;"
                " drop one of the two"
            )
        if self.data.ref_cache and t.algorithm == "dynamic":
            raise UserError("data.ref_cache only applies to the standard algorithm (the dynamic reference moves)")
        try:
            task_weights(t.task_weights)
        except ValueError as e:
            raise UserError(f"train.task_weights: {e}") from None
        return self

    def stop_range(self) -> tuple[int, int]:
        """Inclusive range of rollout steps k at which the policy stops (k no-grad steps, then one x0 call)."""
        s = self.sampling
        lo = max(1, round(s.stop_min * s.steps))
        hi = min(s.steps - 1, round(s.stop_max * s.steps))
        return lo, hi

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(value: str, typ: Any, key: str) -> Any:
    """Parse a `--set` string into the field's type, with an error that names the key."""
    try:
        if typ is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ in (int, float, str):
            return typ(value)
        parsed = yaml.safe_load(value)
        if typing.get_origin(typ) is dict and not isinstance(parsed, dict):
            raise ValueError
        return parsed
    except ValueError:
        raise UserError(f"--set {key}={value}: expected a {getattr(typ, '__name__', typ)}") from None


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def apply_overrides(cfg: Config, items: dict[str, Any] | list[str], source: str = "--set") -> Config:
    """Apply `section.field=value` strings (CLI) or a nested dict (YAML) to cfg, rejecting unknown keys."""
    pairs: list[tuple[str, Any]] = []
    if isinstance(items, dict):
        for section, values in items.items():
            if not isinstance(values, dict):
                raise UserError(f"{source}: {section!r} must be a mapping of fields, e.g. train: {{lr: 2e-6}}")
            pairs += [(f"{section}.{k}", v) for k, v in values.items()]
    else:
        for item in items:
            if "=" not in item:
                raise UserError(f"{source} {item!r}: write section.field=value, e.g. train.lr=2e-6")
            key, value = item.split("=", 1)
            pairs.append((key.strip(), value.strip()))
    for key, value in pairs:
        section, _, name = key.partition(".")
        sub = getattr(cfg, section, None)
        if sub is None or not dataclasses.is_dataclass(sub):
            raise UserError(f"{source}: unknown section {section!r}; sections: model, sampling, train, data, log")
        types_ = _field_types(type(sub))
        if name not in types_:
            raise UserError(f"{source}: {section} has no field {name!r}; fields: {', '.join(types_)}")
        typ = types_[name]
        if isinstance(value, str) and typ is not str:
            value = _coerce(value, typ, key)
        elif typ is float and isinstance(value, int):
            value = float(value)
        setattr(sub, name, value)
    return cfg


def load_yaml(cfg: Config, path: str | Path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    return apply_overrides(cfg, data, source=str(path))


def from_dict(data: dict[str, Any]) -> Config:
    """Rebuild a Config saved with to_dict (checkpoints store the run's config)."""
    return apply_overrides(Config(), data, source="saved config")
