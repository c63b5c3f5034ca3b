"""CLI commands of the reward model: build-tiny-rm, collect, train-reward, eval-reward, judge. Thin: parse, call, show.

Heavy imports (torch, transformers) happen inside the commands, so `onereward --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer import Option as Opt

from onereward.errors import UserError


def build_tiny_rm_command(
    out: Annotated[Path, Opt(help="Folder to write the model to (Qwen2.5-VL-7B-Instruct layout).")],
    preset: Annotated[str, Opt(help="toy (the toy world's reward model) or test (smallest).")] = "toy",
    seed: Annotated[int, Opt(help="Initialisation seed.")] = 0,
    overwrite: Annotated[bool, Opt(help="Replace a model already in the folder.")] = False,
) -> None:
    """Build an untrained tiny Qwen2.5-VL reward model from code, offline."""
    from onereward.reward.tiny import PRESETS, build_tiny_qwen_vl

    if preset not in PRESETS:
        raise UserError(f"--preset {preset!r}: choose one of {', '.join(PRESETS)}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    if (out / "config.json").exists() and not overwrite:
        raise UserError(f"{out} already holds a model; choose another folder or pass --overwrite")
    _quiet_transformers()
    path = build_tiny_qwen_vl(out, preset, seed, overwrite=overwrite)
    typer.echo(f"wrote {path}")


def _quiet_transformers() -> None:
    """Progress bars ("Writing model shards") are noise in a CLI."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


# --- preference data, reward-model training and accuracy ---


def collect_command(
    model: Annotated[Path, Opt(help="The base fill model (FLUX.1-Fill-dev-layout folder, e.g. from `pretrain`).")],
    out: Annotated[Path, Opt(help="Folder for the preference dataset (pairs.jsonl, images/, meta.json).")],
    seed: Annotated[int, Opt(help="Seed of the conditions, the candidates' settings and the annotator.")] = 0,
    conditions: Annotated[int, Opt(help="Conditions per task (toy world, split 'pref').")] = 480,
    size: Annotated[int, Opt(help="Image side in pixels.")] = 64,
    candidates: Annotated[int, Opt(help="Candidates per condition (the paper: 4).")] = 4,
    batch_size: Annotated[int, Opt(help="Conditions encoded and sampled together.")] = 96,
    workers: Annotated[int, Opt(help="Sampling processes (0 = in this process).")] = 2,
    target_pairs: Annotated[
        int, Opt(help="Top up conditions until each family x dimension has this many pairs (0 = no top-up).")
    ] = 500,
) -> None:
    """Preference pairs the paper's way: 4 candidates per condition with random settings, best/worst per dimension."""
    from onereward.reward.collect import CollectConfig, collect

    if not (model / "model_index.json").is_file():
        raise UserError(f"--model {model}: not a fill-model folder (no model_index.json); run `onereward pretrain`")
    cfg = CollectConfig(
        conditions=conditions,
        size=size,
        candidates=candidates,
        batch_size=batch_size,
        seed=seed,
        workers=workers,
        target_pairs=target_pairs,
    )
    _quiet_transformers()
    meta = collect(model, out, cfg)
    typer.echo(f"wrote {meta['pairs']} pairs to {out} (near-ties dropped: {100 * meta['drop_rate']:.1f}%, "
               f"{meta['seconds']:.0f} s)")  # fmt: skip
    for fam, dims in meta["pairs_per_family"].items():
        typer.echo(f"  {fam}: " + ", ".join(f"{d} {n}" for d, n in dims.items()))


def train_reward_command(
    prefs: Annotated[Path, Opt(help="Preference folder (pairs.jsonl + images/), e.g. from `onereward collect`.")],
    out: Annotated[Path, Opt(help="Folder for the trained reward model (loadable Qwen2.5-VL folder).")],
    base: Annotated[
        Path | None, Opt(help="Qwen2.5-VL folder to fine-tune (default: a tiny one built from code).")
    ] = None,
    lora_rank: Annotated[int, Opt(help="0 = full fine-tuning; > 0 = LoRA of this rank, merged at export.")] = 0,
    steps: Annotated[int, Opt(help="Optimiser steps (0 = run for --seconds).")] = 0,
    seconds: Annotated[float, Opt(help="Wall-clock budget of the training loop when --steps is 0.")] = 270.0,
    lr: Annotated[float, Opt(help="AdamW peak learning rate (see reward/train.py).")] = 2e-3,
    batch_size: Annotated[int, Opt(help="Pairs per forward (each in both orders).")] = 32,
    grad_accum: Annotated[int, Opt(help="Forwards per optimiser step (a step learns from batch x this).")] = 1,
    held_out: Annotated[float, Opt(help="Fraction of conditions held out (split by condition).")] = 0.15,
    aux: Annotated[str, Opt(help="Toy-world auxiliary pairs: auto, on or off (see reward/aux_pairs.py).")] = "auto",
    seed: Annotated[int, Opt(help="Seed of the split, the initialisation and the batch order.")] = 0,
    threads: Annotated[int, Opt(help="torch CPU threads (1 is the safe choice on shared cores; 0 = torch's).")] = 1,
    resume: Annotated[bool, Opt(help="Continue from the newest complete checkpoint in --out.")] = False,
    image_size: Annotated[
        int, Opt(help="Read images from disk per batch, resized to this square side (real data; 0 = in memory).")
    ] = 0,
    mixed_precision: Annotated[str, Opt(help="no or bf16 (autocast; with LoRA a bf16 frozen base).")] = "no",
    gradient_checkpointing: Annotated[bool, Opt(help="Recompute activations in backward (both towers).")] = False,
    report_to: Annotated[
        str, Opt(help="Experiment trackers, comma-separated (tensorboard, wandb, mlflow, ...) or none.")
    ] = "tensorboard",
) -> None:
    """Train the reward model with OneReward's both-orders Yes/No loss; held-out conditions recorded in split.json."""
    from onereward.reward.train import RewardTrainConfig, train

    cfg = RewardTrainConfig(prefs=str(prefs), out=str(out), base=str(base) if base else "", lora_rank=lora_rank,
                            steps=steps, seconds=seconds, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
                            held_out=held_out,
                            aux=aux, seed=seed, threads=threads, image_size=image_size,
                            mixed_precision=mixed_precision,
                            gradient_checkpointing=gradient_checkpointing, report_to=report_to)  # fmt: skip
    if not (prefs / "pairs.jsonl").is_file():
        raise UserError(f"--prefs {prefs}: no pairs.jsonl; make a dataset with `onereward collect`")
    _quiet_transformers()
    path = train(cfg.check(), resume=resume)
    from accelerate import PartialState

    if PartialState().is_main_process:  # one line, however many processes trained
        typer.echo(f"wrote {path}")


def eval_reward_command(
    model: Annotated[Path, Opt(help="Reward-model folder from `onereward train-reward`.")],
    prefs: Annotated[Path, Opt(help="The preference folder it was trained on (its held-out conditions are judged).")],
    out: Annotated[Path, Opt(help="Accuracy JSON to write (reward_accuracy[family][dimension] = two-order).")],
    markdown: Annotated[Path | None, Opt(help="Also write the Table 1 form as Markdown here.")] = None,
    all_pairs: Annotated[bool, Opt(help="Judge every pair, not only the held-out conditions.")] = False,
    image_size: Annotated[
        int | None, Opt(help="Resize images to this square side (default: the training run's --image-size).")
    ] = None,
    on_policy: Annotated[
        Path | None,
        Opt(help="Toy world: a fill-model folder; also judge pairs of two of its samples (what RL compares)."),
    ] = None,
    on_policy_n: Annotated[int, Opt(help="Conditions per task for --on-policy.")] = 64,
) -> None:
    """Held-out pairwise accuracy per task family x dimension (two-order headline, one-order, n, position bias).

    Under torchrun / accelerate launch the processes split the pairs and the main one writes the results."""
    from onereward.reward.evaluate import evaluate_reward, short_table

    _quiet_transformers()
    if on_policy is not None and not (on_policy / "model_index.json").is_file():
        raise UserError(f"--on-policy {on_policy}: not a fill-model folder (no model_index.json)")
    if on_policy_n < 1:
        raise UserError(f"--on-policy-n {on_policy_n}: use at least 1 condition per task")
    result = evaluate_reward(
        model, prefs, out, markdown=markdown, all_pairs=all_pairs, image_size=image_size, on_policy=on_policy,
        on_policy_n=on_policy_n,
    )  # fmt: skip
    if result:  # empty on the processes other than the main one of a multi-process run
        typer.echo(short_table(result))
        typer.echo(f"wrote {out}")


def judge_command(
    model: Annotated[Path, Opt(help="Reward-model folder (from train-reward, or any Qwen2.5-VL folder).")],
    task: Annotated[str, Opt(help="fill, text, extend, extend_noprompt or removal")],
    first: Annotated[Path, Opt(help="The image asked about: is it better than --second?")],
    second: Annotated[Path, Opt(help="The image it is compared with (same size).")],
    prompt: Annotated[
        str | None, Opt(help="The user's prompt (text alignment needs it for fill, text, extend).")
    ] = None,
    device: Annotated[str | None, Opt(help="cpu or cuda (default: cuda when available)")] = None,
) -> None:
    """Ask the reward model whether --first is better than --second on each of the task's dimensions, in both orders.

    Prints per dimension P(Yes) with --first shown first, P(No) with it shown second (both: first is better) and
    their mean, the order-free reward (PAPER.md section 2).
    """
    import torch

    from onereward.io import load_rgb
    from onereward.reward.model import RewardModel
    from onereward.tasks import TASKS

    if task not in TASKS:
        raise UserError(f"--task {task!r}: choose one of {', '.join(TASKS)}")
    dims = TASKS[task].dimensions
    if "text_alignment" in dims and not prompt:
        raise UserError(f"--task {task} is judged on text alignment, which reads the prompt; pass --prompt")
    if not (model / "config.json").is_file():
        raise UserError(f"--model {model}: not a reward-model folder (no config.json); train one with train-reward")
    a, b = load_rgb(first), load_rgb(second)
    if a.shape != b.shape:
        raise UserError(f"--first is {a.shape[1]}x{a.shape[0]}, --second {b.shape[1]}x{b.shape[0]}; give one size")
    _quiet_transformers()
    rm = RewardModel.for_judging(model, device)
    x, y = (torch.from_numpy(im).permute(2, 0, 1)[None] for im in (a, b))  # (1, 3, H, W) in [0, 1]
    with torch.no_grad():
        ab = rm.p_yes(x, y, task, dims, [prompt])[0].tolist()  # P(Yes | first, second) per dimension
        ba = rm.p_yes(y, x, task, dims, [prompt])[0].tolist()  # P(Yes | second, first)
    typer.echo(f"{'dimension':18s}{'first shown first':>19s}{'first shown second':>20s}{'mean':>8s}")
    for d, p, q in zip(dims, ab, ba, strict=True):
        typer.echo(f"{d:18s}{p:19.3f}{1 - q:20.3f}{(p + 1 - q) / 2:8.3f}")
