"""Named runs: each function returns a Config; the CLI then applies a YAML file and `--set` overrides."""

from __future__ import annotations

from collections.abc import Callable

from onereward.config import REQUIRED, Config
from onereward.errors import UserError


def toy() -> Config:
    """The embedded default: the tiny base model from `onereward pretrain`, the tiny reward model from
    `onereward train-reward` (both as `onereward demo` lays them out), full fine-tuning on CPU."""
    cfg = Config()
    cfg.model.policy = "runs/demo/models/base"
    cfg.model.reward = "runs/demo/models/reward"
    cfg.model.reward_accuracy = "runs/demo/reward_accuracy.json"
    # Measured 2026-11-27 on one demo's base and reward model (5 of 9 cells at the paper's accuracy), held-out "val"
    # usability over 150 steps: 2e-6 moved nothing; 1e-5 rose steadily (extend without prompt 58 -> 62%, removal
    # 64 -> 67%); 3e-5 peaked at step 75 (+5 / +6 points, fill 2 -> 5%) and then fell back (reward hacking).
    # With a weaker judge (2 of 9 cells) 2e-5 already hurt. PILOT.md saw the same window at 2e-6 on its model.
    # On the next world's demo (commit 8194ddb, 5 of 9 cells): 1e-5 moved "val" usability by 1-2 images of 64 in 150
    # steps; 3e-5 lowered it from step 50 (extend without prompt 58 -> 44%, removal 64 -> 56%) while raising the
    # oracle's consistency (fill .71 -> .86 on 50 "eval" conditions) and fading the requested object (fill text
    # alignment .44 -> .13, structure .28 -> .07: both below the 0.7 gate; in the loss at gate 0.6, .23 / .14).
    # With the task gate and 4 sampling steps (commit 00a9a0f's demo, 64 "val" conditions per task, mean usability
    # at steps 0 / 30 / 60 / 90 / 120): 1e-5 .259 / .256 / .247 / .231 / .203 (extend without prompt 56 -> 42%,
    # removal 72 -> 59%: hacked); 5e-6 .259 / .263 / .263 / .263 / .250; 3e-6 .259 / .263 / .266 / .266 / .259.
    # The demo at commit bcfeb29 with 5e-6: .259 -> .269 at step 120 (benchmark: extend without prompt 46 -> 54%);
    # continued to 300 steps on its models: .266-.269 up to step 210, then .259 (240) and .253 (300). Hence 120 steps.
    # A lower hinge does not stop the hacking at 1e-5 (the demo at 776a3e6's models, 150 steps): train.reward_bound
    # 0.6 .275 -> .250, 0.9 .275 -> .234; nor does Gaussian noise on both judged images (sigma .05 / .1: .234 / .234):
    # the oracle's means fall with the reward model's errors on close pairs, not with pixel-level attacks.
    # 2026-11-28, the grid world (the demo at bba5423's models; 64 "val" conditions per task, mean usability at steps
    # 0 / 30 / 60 / 90): lr 5e-5 alone .412 / .397 / .381 / .341, the policy learning a brightening of ~0.03 inside
    # the mask that its judge prefers (removal 83 -> 66%); the anchor (a trust region toward the reference's own x0
    # prediction, train.anchor) stops that: beta 30-100 keeps 5e-5 to 2e-4 within +-3 images of 64 per task for 240
    # steps. It does not find more to gain: the judge ranks two samples of one model (what RL compares) far worse than
    # the annotators' best / worst pairs (removal 95% held out, ~50% on such pairs: eval-reward --on-policy), and the
    # training reward P(Yes | policy, reference) stays near .5. With the anchor bounding the drift, every dimension
    # above chance is trained: lr 1e-4, beta 30, gate 0.6 per dimension gave .412 / .416 / .422 / .425 / .409 (120).
    # On the next two demos' models (d8621a3, e50ba0c) neither a two-order reward ((P(Yes | policy, ref) + 1 -
    # P(Yes | ref, policy)) / 2) nor 16 conditions a step instead of 8 changed anything: the mean "val" usability
    # stayed within .01 of this recipe's at every evaluated step.
    cfg.train.lr = 1e-4
    cfg.train.anchor = 30.0
    cfg.sampling.steps = 4  # the toy base model's own default (onereward.json): it samples best at few steps
    cfg.train.steps = 120
    cfg.train.min_reward_accuracy = 0.6  # a reward dimension at chance is an adversarial direction: left out ...
    cfg.train.gate = "dimension"  # ... alone (the anchor holds what the others do not judge; before it, "task" at .7)
    cfg.log.out = "runs/train-toy"
    # PILOT.md: the useful window can be short (69 steps); pick the best of 4 checkpoints by held-out oracle usability
    cfg.log.eval_every = 30
    return cfg


def flux_fill_dev() -> Config:
    """FLUX.1-Fill-dev with a Qwen2.5-VL reward model on GPUs: LoRA, gradient checkpointing, bf16.

    Set model.reward to your reward-model folder and data.pool to a folder of conditions.
    """
    cfg = Config()
    cfg.model.policy = "black-forest-labs/FLUX.1-Fill-dev"
    cfg.model.reward = REQUIRED  # your reward model: there is no default judge for real images
    cfg.data.pool = REQUIRED  # your conditions: without them the trainer would draw toy-world scenes
    cfg.model.lora_rank = 64
    cfg.model.gradient_checkpointing = True
    cfg.model.mixed_precision = "bf16"
    cfg.sampling.size = 512
    cfg.sampling.steps = 28
    cfg.sampling.guidance = 30.0  # FLUX.1-Fill-dev's distilled guidance (its model card's default)
    cfg.train.lr = 1e-5  # the paper's Seedream 3.0 Fill setting (PAPER.md section 3)
    cfg.train.batch_size = 1  # per GPU; 8 GPUs give the paper's batch of 8
    cfg.train.steps = 8000
    cfg.log.out = "runs/train-flux-fill-dev"
    cfg.log.image_every = 100
    cfg.log.save_every = 250
    cfg.log.keep_checkpoints = 32  # all 32 of the 8000 steps (rank 64: 105M adapter parameters, 1.6 GB a checkpoint)
    return cfg


PRESETS: dict[str, Callable[[], Config]] = {"toy": toy, "flux-fill-dev": flux_fill_dev}


def get_preset(name: str) -> Config:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]()
