"""`onereward export`: one training checkpoint as the folders the ecosystem loads (a run's own exports are its last
step and, in the toy world, the step its oracle chose).

PILOT.md: the training reward rises while a policy hacks its judge, so a run should be judged on held-out data at
several checkpoints. The toy world does that during training (log.eval_every); with real data, export a few
checkpoints and compare them with `onereward eval` (a reward-model judge other than the trained-against one, or
people). A checkpoint holds the trainable tensors (all of the transformer, or the LoRA adapters) and the reference's
EMA; this loads the run's base model as its config says, puts the chosen tensors in, and writes what the trainer
writes at the end: a diffusers transformer folder, or pytorch_lora_weights.safetensors.
"""

from __future__ import annotations

from pathlib import Path

import torch

from onereward import checkpoint
from onereward.errors import UserError
from onereward.io import occupied

WEIGHTS = ("policy", "ema")  # the policy, or the EMA of its trainable tensors (Algorithm 1's output model)


def find_checkpoint(run: Path, step: int | None) -> Path:
    """run/checkpoints/step-N (the newest complete one when step is None); UserError lists what there is."""
    found = checkpoint.complete(run / "checkpoints")
    if not found:
        raise UserError(f"--run {run}: no complete checkpoint under {run / 'checkpoints'}; give a run folder of "
                        "`onereward train`")  # fmt: skip
    if step is None:
        return found[-1]
    for path in found:
        if int(path.name.split("-")[1]) == step:
            return path
    steps = ", ".join(str(int(p.name.split("-")[1])) for p in found)
    raise UserError(f"--step {step}: no such checkpoint in {run / 'checkpoints'}; there are steps {steps}")


def export_checkpoint(run: str | Path, out: str | Path, step: int | None = None, weights: str = "policy") -> Path:
    """Write checkpoint `step` of `run` (its `weights`: policy or ema) to `out`; return the file or folder written."""
    from onereward.config import from_dict
    from onereward.rl.parallel import DataParallel
    from onereward.rl.reference import trainable
    from onereward.rl.trainer import export_weights, load_policy

    if weights not in WEIGHTS:
        raise UserError(f"--weights {weights!r}: choose policy or ema")
    run, out = Path(run), Path(out)
    path = find_checkpoint(run, step)
    if occupied(out):
        raise UserError(f"--out {out}: exists and is not an empty folder; pick a new path")
    parts, meta = checkpoint.load(path)
    cfg = from_dict(meta["config"])
    tensors = parts["policy"] if weights == "policy" else parts["reference"]["ema"]
    fill = load_policy(cfg, "cuda" if torch.cuda.is_available() else "cpu")
    named = dict(trainable(fill.transformer))
    if set(named) != set(tensors):
        raise UserError(f"{path}: its tensors do not match the model its config builds ({cfg.model.policy}); "
                        "export it where the run's base model is")  # fmt: skip
    with torch.no_grad():
        for name, p in named.items():
            p.copy_(tensors[name])
    return export_weights(out, fill.transformer, cfg, DataParallel(None), is_main=True)
