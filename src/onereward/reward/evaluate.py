"""`onereward eval-reward`: a reward model's accuracy on held-out preference pairs, in the paper's Table 1 form.

Every held-out (winner, loser) pair is judged in both orders on its dimension; `eval.metrics.pairwise_accuracy` turns
that into, per task family x dimension: TWO-ORDER accuracy (the headline: the mean correctness over both orders),
one-order accuracy (winner first only), n and a position-bias flag (one- and two-order differ by more than .1);
`eval.metrics.position_consistency` adds the share of pairs whose answer flips with the order. PILOT.md section 9:
one-order accuracy alone flatters a judge that always says Yes.

Held-out means the conditions `onereward train-reward` held out, read from the model folder's split.json, so the
numbers are never measured on a condition the model was trained on (pass `all_pairs` to judge every pair, e.g. for a
judge that was not trained on this data).

JSON written (`--out`):
    {"reward_accuracy": {family: {dimension: two_order}},            <- what the RL trainer gates dimensions on
     "reward_accuracy_detail": {family: {dimension: {two_order, one_order, n, position_bias_flag,
                                                     position_consistency}}},
     "reward_accuracy_by_task": {task: {dimension: {the same}}},     <- per task row: text rendering apart from object
                                                        fill, extend without prompt apart from extend (the RL gate
                                                        prefers these when a cell has enough pairs)
     "prompt_sensitivity": {family: float | None}    <- does it read the prompt? (`prompt_sensitivity`)
     "on_policy_accuracy": {task: {dimension: {two_order, n}}}   <- with `on_policy` (toy world): the pairs RL
                                                        compares, two samples of one fill model (reward/on_policy.py)
     "n_pairs": int, "model": str, "prefs": str, "split": "held_out" | "all", "held_out_conditions": int,
     "paper": {family: {dimension: percent}}, "seconds": float}
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from onereward.errors import UserError
from onereward.tasks import FAMILIES, TASKS, family_dimensions


def _p_yes_batches(rm, bank: torch.Tensor, items, idx: np.ndarray, task: str, prompts: list, batch_size: int):
    """P(Yes) of items[idx] (first, second) on all of `task`'s dimensions, `batch_size` pairs a call -> (len(idx), D).

    prompts: one per row of idx. Swapped orders are the caller's business (it passes them as rows).
    """
    from onereward.reward.train import to_images

    out = []
    for s in range(0, len(idx), batch_size):
        part = idx[s : s + batch_size]
        first = to_images(bank, items.first[part], rm.device)  # (b, 3, H, W)
        second = to_images(bank, items.second[part], rm.device)  # (b, 3, H, W)
        out.append(rm.p_yes(first, second, task, TASKS[task].dimensions, prompts[s : s + batch_size]))
    return torch.cat(out) if out else torch.zeros(0, len(TASKS[task].dimensions))


def _swapped(items):
    """The same items with first and second exchanged."""
    return type(items)(items.tasks, items.prompts, items.second, items.first, items.labels)


@torch.no_grad()
def judge_pairs(rm, bank: torch.Tensor, items, tasks: list[str], dims: list[str], batch_size: int = 64) -> list[dict]:
    """P(Yes) of each (winner, loser) pair in both orders on its dimension -> pair rows for eval.metrics.

    bank: (N, 3, H, W) uint8 images; items: `train.Items` with the winner first; tasks/dims: per item.
    """
    was_training = rm.model.training
    rm.model.eval()
    out: list[dict | None] = [None] * len(items)
    for task in dict.fromkeys(tasks):
        idx = np.asarray([i for i, t in enumerate(tasks) if t == task])
        prompts = [items.prompts[i] for i in idx]
        wl = _p_yes_batches(rm, bank, items, idx, task, prompts, batch_size)  # (n, D) winner first
        lw = _p_yes_batches(rm, bank, _swapped(items), idx, task, prompts, batch_size)  # (n, D) loser first
        for k, i in enumerate(idx):
            d = TASKS[task].dimensions.index(dims[i])
            out[i] = {"task": task, "dimension": dims[i], "p_yes_wl": float(wl[k, d]), "p_yes_lw": float(lw[k, d])}
    rm.model.train(was_training)
    return out


@torch.no_grad()
def prompt_sensitivity(rm, bank: torch.Tensor, items, tasks: list[str], dims: list[str], seed: int = 0,
                       batch_size: int = 64, part: tuple[int, int] = (0, 1),
                       diffs_only: bool = False) -> dict[str, float | None] | dict[str, list[float]]:  # fmt: skip
    """Does the judge read the prompt? Per family, over its text-alignment pairs: the mean |P(Yes | the pair's own
    prompt) - P(Yes | another pair's prompt of the same task)|, winner first. A judge that ignores the prompt scores
    ~0 (the toy demo's tiny model: 0.015 on fill, 2026-11-27), one that reads it scores well above. None: no such pairs
    with two different prompts. The other prompt is drawn from the same rows' distinct prompts (seeded), so this
    works on any data.

    part (r, n): judge only every n-th text-alignment pair from the r-th (the draws are made over all of them, so n
    processes together judge exactly what one does); with diffs_only, return the per-family lists of differences
    to merge instead of their means.
    """
    was_training = rm.model.training
    rm.model.eval()
    rng = np.random.default_rng([seed, 11])
    diffs: dict[str, list[float]] = {}
    for task in dict.fromkeys(tasks):
        idx = np.asarray(
            [i for i, (t, d) in enumerate(zip(tasks, dims, strict=True)) if t == task and d == "text_alignment"]
        )
        prompts = [items.prompts[i] for i in idx]
        unique = sorted(set(prompts), key=str)
        if len(unique) < 2:
            continue
        # another distinct prompt of the same task, never the pair's own: a draw among the other len(unique) - 1
        pos = {p: k for k, p in enumerate(unique)}
        draws = rng.integers(len(unique) - 1, size=len(prompts))
        other = [unique[k + (k >= pos[p])] for p, k in zip(prompts, draws, strict=True)]
        r, n = part
        idx, prompts, other = idx[r::n], prompts[r::n], other[r::n]
        d = TASKS[task].dimensions.index("text_alignment")
        own = _p_yes_batches(rm, bank, items, idx, task, prompts, batch_size)[:, d]  # (n,)
        swapped = _p_yes_batches(rm, bank, items, idx, task, other, batch_size)[:, d]  # (n,)
        diffs.setdefault(TASKS[task].family, []).extend((own - swapped).abs().tolist())
    rm.model.train(was_training)
    if diffs_only:
        return diffs
    return {f: (float(np.mean(diffs[f])) if f in diffs else None) for f in FAMILIES}


def held_out_accuracy(rm, bank, items, tasks, dims, per_cell: int, seed: int) -> dict[str, float]:
    """Two-order accuracy on up to `per_cell` held-out pairs per family x dimension (training's periodic check)."""
    from onereward.eval.metrics import pairwise_accuracy

    rng = np.random.default_rng([seed, 5])
    cells: dict[tuple[str, str], list[int]] = {}
    for i, (t, d) in enumerate(zip(tasks, dims, strict=True)):
        cells.setdefault((TASKS[t].family, d), []).append(i)
    keep = sorted(i for ids in cells.values() for i in rng.permutation(ids)[:per_cell])
    rows = judge_pairs(rm, bank, items.take(keep), [tasks[i] for i in keep], [dims[i] for i in keep])
    acc = pairwise_accuracy(rows)
    flat = {f"{f}/{d}": c["two_order"] for f, per in acc.items() for d, c in per.items()}
    flat["mean"] = float(np.mean(list(flat.values()))) if flat else float("nan")
    return flat


def evaluate_reward(
    model: str | Path,
    prefs: str | Path,
    out: str | Path,
    markdown: str | Path | None = None,
    all_pairs: bool = False,
    batch_size: int = 64,
    device: str | None = None,
    image_size: int | None = None,
    on_policy: str | Path | None = None,
    on_policy_n: int = 64,
) -> dict[str, Any]:
    """Judge the held-out pairs with the model at `model`; write the accuracy JSON (and a Markdown table). Under
    several processes each judges every n-th pair on its own device and the main one merges, writes and returns the
    result (the others return {}).

    image_size: resize every image to this square side as it is read (None: the size the model was trained at, from
    its onereward.json; 0 or no record: the data's own size, held in memory).
    on_policy: a toy-world fill-model folder: also judge pairs of its own samples, `on_policy_n` conditions per task
    (reward/on_policy.py), on the main process.
    """
    from accelerate import PartialState

    from onereward.data.prefs import load_pairs
    from onereward.eval.metrics import PAPER_TABLE1, accuracy_detail
    from onereward.eval.tables import (
        accuracy_by_task_table,
        accuracy_detail_table,
        accuracy_table,
        paper_table1,
        to_markdown,
    )
    from onereward.io import save_json
    from onereward.reward.model import RewardModel
    from onereward.reward.train import SPLIT_FILE, fast_vision_attention, load_bank, real_items

    t0 = time.perf_counter()
    model, prefs = Path(model), Path(prefs)
    if not (model / "config.json").is_file():
        raise UserError(f"--model {model}: not a reward-model folder (no config.json); train one with train-reward")
    rows = load_pairs(prefs)
    held_conditions = None
    if not all_pairs:
        split_path = model / SPLIT_FILE
        if not split_path.is_file():
            raise UserError(
                f"{split_path}: missing, so the held-out conditions are unknown; evaluate a folder written by "
                "`onereward train-reward`, or pass --all-pairs to judge every pair"
            )
        held_conditions = set(json.loads(split_path.read_text())["held_out_conditions"])
        rows = [r for r in rows if r["condition"] in held_conditions]
        if not rows:
            raise UserError(
                f"none of the {len(held_conditions)} held-out conditions of {split_path} is in {prefs}; "
                "give the --prefs the model was trained on"
            )
    # several processes (torchrun / accelerate launch): each judges every n-th pair on its own device, the main
    # process merges and writes; the same rows and prompt draws as one process
    state = PartialState(cpu=not torch.cuda.is_available())
    rank, world = state.process_index, state.num_processes
    rm = RewardModel.for_judging(model, device or (state.device if world > 1 else None))
    fast_vision_attention(rm.model)
    if image_size is None:
        image_size = rm.image_size  # the size it was trained at (its onereward.json), else the data's own

    mine = rows[rank::world]
    # prompt sensitivity: the draws are made over every text-alignment pair, each process judges its share of them
    ta_rows = [r for r in rows if r["dimension"] == "text_alignment"]
    # one bank for both (on one process the text-alignment pairs are among `mine`: each image is read once)
    paths = [r[f] for r in (*mine, *ta_rows) for f in ("image_a", "image_b")]
    bank, index = load_bank(prefs, paths, image_size or 0) if paths else (None, {})
    bank = torch.from_numpy(bank) if isinstance(bank, np.ndarray) else bank  # (N, 3, H, W) uint8

    def judged(sub: list[dict]):  # (bank, items, tasks, dimensions) of these pairs
        return bank, real_items(sub, index), [r["task"] for r in sub], [r["dimension"] for r in sub]

    pair_rows = judge_pairs(rm, *judged(mine), batch_size) if mine else []
    diffs = prompt_sensitivity(rm, *judged(ta_rows), part=(rank, world), diffs_only=True) if ta_rows else {}
    if world > 1:
        from accelerate.utils import gather_object

        pair_rows = [row for _, row in sorted(gather_object([(rank + world * i, r) for i, r in enumerate(pair_rows)]))]
        merged: dict[str, list[float]] = {}
        for part in gather_object([diffs]):
            for f, values in part.items():
                merged.setdefault(f, []).extend(values)
        diffs = merged
        if not state.is_main_process:
            state.wait_for_everyone()  # the main process writes; leave together (gloo teardown, NOTES.md section 5)
            return {}
    detail = accuracy_detail(pair_rows)  # Table 1's families
    by_task = accuracy_detail(pair_rows, by="task")  # the task table's rows
    sensitivity = {f: (float(np.mean(diffs[f])) if diffs.get(f) else None) for f in FAMILIES}
    result = {
        "reward_accuracy": {f: {d: c["two_order"] for d, c in per.items()} for f, per in detail.items()},
        "reward_accuracy_detail": detail,
        "reward_accuracy_by_task": by_task,
        "prompt_sensitivity": sensitivity,
        "n_pairs": len(pair_rows),
        "model": str(model),
        "prefs": str(prefs),
        "split": "all" if all_pairs else "held_out",
        "held_out_conditions": None if held_conditions is None else len(held_conditions),
        "paper": PAPER_TABLE1,
    }
    if on_policy is not None:
        from onereward.reward.on_policy import on_policy_accuracy

        result["on_policy_accuracy"] = on_policy_accuracy(rm, on_policy, per_task=on_policy_n)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    save_json(Path(out), result)
    if markdown is not None:
        text = "\n\n".join(
            to_markdown(t)
            for t in (
                accuracy_table(result),
                paper_table1(),
                accuracy_detail_table(result),
                accuracy_by_task_table(result),
            )
        )
        Path(markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown).write_text(text + "\n")
    if world > 1:
        state.wait_for_everyone()
    return result


def short_table(result: dict[str, Any]) -> str:
    """One line per family x dimension: two-order / one-order / n, beside the paper's figure."""
    from onereward.eval.metrics import PAPER_TABLE1

    lines = [f"{'cell':<28} {'two-order':>9} {'one-order':>9} {'n':>5} {'paper':>6}"]
    for f in FAMILIES:
        for d in family_dimensions(f):
            c = result["reward_accuracy_detail"].get(f, {}).get(d)
            if c is None:
                continue
            flag = " (position bias)" if c["position_bias_flag"] else ""
            lines.append(
                f"{f + '/' + d:<28} {100 * c['two_order']:>9.1f} {100 * c['one_order']:>9.1f} {c['n']:>5d}"
                f" {PAPER_TABLE1[f][d]:>6.2f}{flag}"
            )
    for t, dims in result.get("reward_accuracy_by_task", {}).items():  # what the RL gate reads, n permitting
        cells = ", ".join(f"{d} {100 * c['two_order']:.1f} ({c['n']})" for d, c in dims.items())
        lines.append(f"  task row {t}: {cells}")
    if "on_policy_accuracy" in result:  # the pairs RL compares: two samples of one fill model
        from onereward.reward.on_policy import on_policy_lines

        lines += on_policy_lines(result["on_policy_accuracy"])
    read = {f: v for f, v in result.get("prompt_sensitivity", {}).items() if v is not None}
    if read:
        lines.append(
            "prompt sensitivity (mean |P(Yes) change| when another prompt is asked; ~0: the prompt is not read): "
            + ", ".join(f"{f} {v:.3f}" for f, v in read.items())
        )
    return "\n".join(lines)
