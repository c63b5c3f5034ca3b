"""The embedded default's reward-model prior: read-out heads trained beside the judge (NOT part of OneReward).

The paper fine-tunes Qwen2.5-VL-7B, which already sees. The toy reward model is built from scratch and has no
perception, so `onereward train-reward` gives it a prior, only for preference data from `onereward collect` and only
without `--base` (reward/train.py's docstring lists the five parts; aux_pairs.py makes the auxiliary pairs). Three of
them are here: linear read-outs that learn what the toy world's oracle knows about each image, trained alongside the
judge and thrown away at export, so the exported folder is a plain Qwen2.5-VL:
  - `ImageScoreHead`: each image's oracle scores, from the vision tower's output;
  - `CellReadOut`: the colours and shapes in each vision token's square;
  - `AnswerReadOut`: at the language model's first layer, where the answer is read, the pair's difference and the
    prompt's colour and shape.
`ToyPrior` builds the heads a run asks for from its data, hooks them into the model and adds their losses to the
training objective. What they did and did not buy, measured: docs/REWARD_PRIOR.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from onereward.tasks import MAX_DIMS, TASK_NAMES, TASKS
from onereward.toyworld.oracle import DESCRIBED_TASKS


class VisionReadOut(torch.nn.Module):
    """A linear read-out of the vision tower's merged tokens, kept from each forward by `capture`."""

    def __init__(self, hidden: int, size: int):
        super().__init__()
        self.linear = torch.nn.Linear(hidden, size)
        self.features: torch.Tensor | None = None

    def capture(self, visual) -> None:
        """Keep the vision tower's merged tokens (N_images * tokens, hidden) of each forward."""

        def hook(module, args, output):
            self.features = output.pooler_output

        visual.register_forward_hook(hook)


class ImageScoreHead(VisionReadOut):
    """The toy prior's perception aid (NOT part of OneReward, never exported): a linear read-out of each image's
    oracle scores from the vision tower's output (the mean of its merged tokens), one output per (task, dimension).

    A pairwise judge trained from scratch first sits on a symmetric plateau (loss 0.693: the same answer in both
    orders) until its vision features and its comparison grow together (PILOT.md section 4). Scores of single images
    are dense, order-free supervision for the features alone. Text alignment is left out: it depends on the prompt,
    which the vision tower does not see.
    """

    def __init__(self, hidden: int):
        super().__init__(hidden, len(TASK_NAMES) * MAX_DIMS)

    def loss(self, n_forward: int, task: str, targets: torch.Tensor) -> torch.Tensor:
        """Masked MSE of the last forward's first len(targets) images (of `n_forward`), all of `task`.

        targets: (n, MAX_DIMS) in [0, 1], NaN where there is no target; the order is the forward's image order.
        """
        n = targets.shape[0]
        feats = self.features.reshape(n_forward, -1, self.features.shape[-1])[:n].mean(1)  # (n, hidden)
        t = TASK_NAMES.index(task)
        pred = self.linear(feats).reshape(n, len(TASK_NAMES), MAX_DIMS)[:, t].sigmoid()  # (n, MAX_DIMS)
        ok = ~torch.isnan(targets)  # (n, MAX_DIMS)
        if not bool(ok.any()):
            return pred.sum() * 0.0
        return (pred[ok] - targets[ok]).pow(2).mean()


class CellReadOut(VisionReadOut):
    """The toy prior's shape aid (NOT part of OneReward, never exported): a linear read-out, from each merged token of
    the vision tower, of the named colours and shape fits of the blobs in that token's square
    (`toyworld.oracle.describe_cells`), for the images of fill and extend.

    Shape is what the from-scratch vision tower learns slowest (docs/REWARD_PRIOR.md). Trained directly to say which
    shapes a fill scene holds (held out, per label, 600 steps of 64 images, seed 0): from the whole image 73%; from
    each token's square 89%, in the same time.
    """

    def loss(self, n_forward: int, targets: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy (soft targets) of the last forward's first len(targets) images (of `n_forward`).

        targets: (n, tokens, size) in [0, 1], NaN for an image without them; the order is the forward's.
        """
        n = targets.shape[0]
        feats = self.features.reshape(n_forward, -1, self.features.shape[-1])[:n]  # (n, tokens, hidden)
        logits = self.linear(feats)  # (n, tokens, size)
        ok = ~torch.isnan(targets).flatten(1).any(1)  # (n,)
        if not bool(ok.any()):
            return logits.sum() * 0.0
        return F.binary_cross_entropy_with_logits(logits[ok], targets[ok])


class AnswerReadOut(torch.nn.Module):
    """The toy prior's prompt-reading aid (NOT part of OneReward, never exported): two linear read-outs of the
    language model's FIRST layer at the answer position, for fill and extend queries:
      - `diff`, every dimension: what the first image drew minus what the second drew where the request is
        (`toyworld.oracle.describe`: named-colour shares and shape fits), the pair's difference;
      - `prompt`, text alignment only: the prompt's colour and shape (`toyworld.oracle.describe_prompt`).
    The second layer is left to match the two, which is text alignment.

    Why. A from-scratch judge must find "read the prompt", "tell the two images apart" and "match them" all at once,
    and ours never did (prompt sensitivity ~0.015 whatever the time, depth or weight). On pure prompt-reading pairs
    (the truth against a sibling request's truth, each prompt ordering them its own way; 1,200 training / 200
    held-out pairs, seed 0, held-out two-order accuracy at steps 200 / 400 / 700): no read-out 50 / 50 / 50 (600
    steps; loss 0.693 throughout); a dense colour/shape read-out of the vision tower 50 / 50 / 58; `diff` on the
    last layer 50 / 56 / 80; `diff` on the first 50 / 58 / 67; `diff` and `prompt` on the first 67 / 73 / 84.
    """

    def __init__(self, hidden: int, size: int):
        super().__init__()
        self.diff = torch.nn.Linear(hidden, size)
        self.prompt = torch.nn.Linear(hidden, size)
        self.layer_out: torch.Tensor | None = None
        self.rm = None

    def capture(self, rm) -> None:
        """Keep the first layer's output of each text call; the answer positions come from the reward model."""

        def hook(module, args, output):
            self.layer_out = output[0] if isinstance(output, tuple) else output  # (N, S, hidden)

        rm.vl.model.language_model.layers[0].register_forward_hook(hook)
        self.rm = rm

    def loss(self, b: int, dims: tuple[str, ...], first: torch.Tensor, second: torch.Tensor, prompt: torch.Tensor):
        """Mean-squared error of the last both-orders call (2B rows of D queries: (x, y) then (y, x)).

        first / second (B, size): describe() of the images, NaN where an image has none; prompt (B, size):
        describe_prompt() of each pair's prompt, NaN where none. Rows (y, x) learn the negated difference.
        """
        pos = self.rm.answer_positions  # (2B * D,) the last text call's answer positions
        h = self.layer_out[torch.arange(len(pos), device=pos.device), pos].reshape(2, b, len(dims), -1)
        diff = first - second  # (B, size)
        terms = []
        ok = ~torch.isnan(diff).any(-1)  # (B,)
        if bool(ok.any()):
            target = torch.stack([diff, -diff])[:, ok, None].expand(-1, -1, len(dims), -1)  # (2, B_ok, D, size)
            terms.append((self.diff(h[:, ok]) - target).pow(2).mean())
        ok = ~torch.isnan(prompt).any(-1)
        if "text_alignment" in dims and bool(ok.any()):
            ta = h[:, ok, dims.index("text_alignment")]  # (2, B_ok, hidden): the prompt is in both orders' query
            terms.append((self.prompt(ta) - prompt[ok]).pow(2).mean())
        # every parameter gets a gradient, zero or not: processes average them only where all have one
        return sum(terms, (self.diff(h).sum() + self.prompt(h).sum()) * 0.0)


def image_targets(prefs: Path, train_conds: set[str], index: dict[str, int], n: int, pool=None) -> np.ndarray:
    """(n, MAX_DIMS) oracle scores per bank image (NaN: none, held out, or text alignment), task-slot order."""
    from onereward.reward.aux_pairs import read_candidates

    out = np.full((n, MAX_DIMS), np.nan, dtype=np.float32)
    for c in read_candidates(prefs):
        if c["condition"] not in train_conds:
            continue  # held-out images carry no target
        dims = TASKS[c["task"]].dimensions
        for path, sc in zip(c["candidates"], c["scores"], strict=True):
            out[index[path], : len(dims)] = [sc[d] for d in dims]
    if pool is not None and len(pool.images):
        out[n - len(pool.images) :] = pool.image_scores
    return out


def no_text_alignment(targets: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    """Blank the text-alignment column of images whose task judges it (index 0 of fill, text and extend)."""
    targets = targets.copy()
    for t, name in enumerate(TASK_NAMES):
        if "text_alignment" in TASKS[name].dimensions:
            targets[tasks == t, TASKS[name].dimensions.index("text_alignment")] = np.nan
    return targets


class ToyPrior:
    """The read-out heads of one run, their targets per bank image, and their share of the objective.

    Built from the run's image bank (N images) and auxiliary pool; a head is left out when its weight is 0 (or, for
    CellReadOut, with a --base, whose token grid may differ). `heads` holds the trainable heads (checkpointed and
    restored with the model, never exported).
    """

    def __init__(self, cfg, rm, prefs: Path, train_conds: set[str], index: dict[str, int], bank_size: int, pool,
                 real, aux, device):  # fmt: skip
        from onereward.toyworld.oracle import DESCRIPTOR_SIZE, describe_prompt

        self.cfg, self.device = cfg, device
        self.head_targets = self.descriptors = self.cells = None
        if cfg.image_loss > 0:
            targets = image_targets(prefs, train_conds, index, bank_size, pool)
            img_task = np.full(bank_size, -1, dtype=np.int64)
            for items in (real, aux):
                img_task[items.first], img_task[items.second] = items.tasks, items.tasks
            self.head_targets = torch.from_numpy(no_text_alignment(targets, img_task))  # (N, MAX_DIMS)
        if cfg.answer_loss > 0:
            self.descriptors = torch.from_numpy(pool.descriptors)  # (N, DESCRIPTOR_SIZE), NaN where none
        if cfg.cell_loss > 0 and not cfg.base:  # the built model's token grid only (a --base may merge other squares)
            self.cells = torch.from_numpy(pool.cells)  # (N, tokens, DESCRIPTOR_SIZE)
        # each distinct prompt's describe_prompt() row, once (NaN where it names no object), for AnswerReadOut
        no_object = np.full(DESCRIPTOR_SIZE, np.nan, dtype=np.float32)
        self.prompt_rows = {
            p: no_object if (d := describe_prompt(p)) is None else d for p in {*real.prompts, *aux.prompts}
        }
        self.heads = torch.nn.ModuleDict()
        hidden = rm.vl.config.text_config.hidden_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 1)
            if self.head_targets is not None:
                self.heads["image"] = ImageScoreHead(hidden)
                self.heads["image"].capture(rm.vl.model.visual)
            if self.descriptors is not None:
                self.heads["answer"] = AnswerReadOut(hidden, self.descriptors.shape[1])
                self.heads["answer"].capture(rm)
            if self.cells is not None:
                self.heads["cells"] = CellReadOut(hidden, self.cells.shape[-1])
                self.heads["cells"].capture(rm.vl.model.visual)
        self.heads.to(device)

    def objective(self, b: int, task: str, dims: tuple[str, ...], items) -> tuple[torch.Tensor, dict[str, float]]:
        """The heads' weighted losses on the last both-orders call of B pairs, and their scalars to log.

        The vision tower's first 2B images of that call are the pairs' x0, y0, x1, y1, ... (PairedVision).
        """
        cfg, dev = self.cfg, self.device
        rows_xy = torch.as_tensor(np.stack([items.first, items.second], 1).reshape(-1))  # (2B,) bank rows
        total, scalars = torch.zeros((), device=dev), {}
        if "image" in self.heads:  # the images' own oracle scores, from the vision tower's output
            img_loss = self.heads["image"].loss(4 * b, task, self.head_targets[rows_xy].to(dev))
            total = total + cfg.image_loss * img_loss
            scalars["image_loss"] = float(img_loss.detach())
        described = task in DESCRIBED_TASKS  # the other read-outs' targets exist only there
        if "cells" in self.heads:  # colours and shapes in each token's square
            cell_loss = self.heads["cells"].loss(4 * b, self.cells[rows_xy].to(dev))
            total = total + cfg.cell_loss * cell_loss
            if described:
                scalars["cell_loss"] = float(cell_loss.detach())
        if "answer" in self.heads:  # the pair's difference and the prompt (NaN targets outside fill / extend)
            first, second = (self.descriptors[torch.as_tensor(r)].to(dev) for r in (items.first, items.second))
            prompt = torch.from_numpy(np.stack([self.prompt_rows[p] for p in items.prompts])).to(dev)
            answer_loss = self.heads["answer"].loss(b, dims, first, second, prompt)
            total = total + cfg.answer_loss * answer_loss
            if described:
                scalars["answer_loss"] = float(answer_loss.detach())
        return total, scalars
