"""`onereward collect`: preference data the paper's way, with the toy world's simulated annotator as the humans.

PAPER.md section 1: per condition (source, mask, prompt), N = 4 candidates from the pre-trained fill model with
randomised inference settings; per evaluation dimension the annotator picks the best and the worst, which gives one
(winner, loser) pair per dimension; near-ties are discarded. Here:

1. Conditions: `conditions` per task from the toy world's "pref" split (never the RL, eval or benchmark scenes).
2. Candidates, in batches of conditions: the batch is encoded once (prompts, fill conditioning, both negative
   prompts), then sampled `candidates` times. Candidate j of a batch draws its step count and true-CFG scale per
   call; every row draws its own noise seed, noise scale and negative prompt ("nsfw" or none). PILOT.md section 3:
   with a near-deterministic base, settings as narrow as steps {2..12} x noise {0.8..1.2} gave four near-identical
   candidates and most pairs were near-ties, so the ranges here are wide (`CollectConfig`).
3. Each candidate is quantised to 8 bits (what its PNG holds, so labels describe exactly what a reward model will see)
   and labelled by `toyworld.Annotator`: oracle scores + label noise, best/worst per dimension, near-ties dropped.
4. On disk, the `onereward.data.prefs` format: images/<condition>/{source,mask,c0..c3}.png, pairs.jsonl (winner
   written as "a" or "b" at random, so the file's order says nothing), meta.json (counts per task and per
   family x dimension, drop rates, settings, timings), and candidates.jsonl: per condition, every candidate's
   settings and oracle scores, and the toy-world coordinates (split, index, seed) that rebuild the condition. Only the
   embedded default's reward-model prior reads candidates.jsonl (`reward/aux_pairs.py`); a real preference dataset
   has no such file and needs none.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from onereward.errors import UserError
from onereward.tasks import FAMILIES, NEGATIVE_PROMPT, TASK_NAMES, TASKS, family_dimensions

CANDIDATES_FILE = "candidates.jsonl"
META_FILE = "meta.json"
SPLIT = "pref"  # the toy world's namespace for preference conditions


@dataclass
class CollectConfig:
    conditions: int = 480  # conditions per task (split "pref"); see the module doc of train.py for why this many
    size: int = 64  # scene side in pixels
    candidates: int = 4  # N candidates per condition (the paper: 4)
    batch_size: int = 96  # conditions encoded and sampled together
    steps: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12)  # Euler step counts, one drawn per (batch, candidate)
    true_cfg: tuple[float, ...] = (1.0, 1.0, 1.5, 2.5, 4.0)  # true CFG scales (1 = off), one per (batch, candidate)
    negative_prob: float = 0.5  # with CFG on: P(negative prompt "nsfw"), else the empty negative prompt
    noise_scale: tuple[float, float] = (0.4, 1.6)  # initial-noise strength, uniform per row
    guidance: float = 1.0  # FLUX distilled guidance (the toy base has none; kept for real models)
    gap: float = 0.05  # annotator: a dimension whose true scores span less than this is a near-tie, dropped
    label_noise: float = 0.02  # annotator: Gaussian noise on the oracle's scores before ranking
    seed: int = 0
    workers: int = 2  # sampling processes (one torch thread each); 0 = sample in this process
    target_pairs: int = 500  # per family x dimension: top up conditions until reached (~75 held out at 15%; at 400,
    # removal had 427 pairs and 48 held out in one demo, below the n >= 50 a cell needs to be read); 0 = off
    rounds: int = 2  # top-up rounds at most
    max_conditions: int = 1200  # per task, over all rounds

    def check(self) -> None:
        if self.conditions < 1:
            raise UserError(f"--conditions {self.conditions}: need at least 1 condition per task")
        if self.candidates < 2:
            raise UserError(f"candidates={self.candidates}: the annotator needs at least 2 to pick a best and a worst")
        if not (0 < self.noise_scale[0] <= self.noise_scale[1]):
            raise UserError(f"noise_scale {self.noise_scale}: give 0 < low <= high")
        if any(s < 1 for s in self.steps) or any(c < 1 for c in self.true_cfg):
            raise UserError("steps must be >= 1 and true_cfg >= 1")
        if self.target_pairs < 0:
            raise UserError(f"--target-pairs {self.target_pairs}: give 0 (no top-up) or a positive count")


def condition_id(task: str, index: int) -> str:
    return f"{task}-{index:05d}"


def draw_plan(cfg: CollectConfig, batch: int, n: int) -> list[dict[str, Any]]:
    """The settings of a batch's N candidates, from (seed, batch) alone: steps and true CFG per candidate, noise
    seed, noise scale and negative prompt per row. Workers and the main process draw nothing else."""
    rng = np.random.default_rng([cfg.seed, 2, batch])
    plan = []
    for _ in range(cfg.candidates):
        true_cfg = float(rng.choice(cfg.true_cfg))
        plan.append(
            dict(
                steps=int(rng.choice(cfg.steps)),
                true_cfg=true_cfg,
                noise_scale=[round(float(v), 4) for v in rng.uniform(*cfg.noise_scale, size=n)],
                negative_prompt=[
                    (NEGATIVE_PROMPT if u else "") if true_cfg != 1 else None
                    for u in rng.random(n) < cfg.negative_prob
                ],
                noise_seed=[int(v) for v in rng.integers(0, 2**62, size=n)],
            )
        )
    return plan


def sample_batch(fill, sources: np.ndarray, masks: np.ndarray, prompts: list[str], plan, guidance: float):
    """N candidates of n conditions: the batch is encoded once, then sampled once per candidate.

    sources (n, H, W, 3), masks (n, H, W) float32 -> (N, n, H, W, 3) uint8, composited.
    """
    import torch

    from onereward.models.fill import PromptEmbeds

    n, size = len(prompts), sources.shape[1]
    src = torch.from_numpy(sources).permute(0, 3, 1, 2).float()  # (n, 3, H, W) in [0, 1]
    msk = torch.from_numpy(masks)[:, None].float()  # (n, 1, H, W)
    cond = fill.condition(src.to(fill.device), msk.to(fill.device))  # (n, L, C_cond)
    embeds = fill.encode_prompts(list(prompts))
    negatives = {NEGATIVE_PROMPT: 0, "": 1}
    neg_both = fill.encode_prompts(list(negatives))  # one row per negative prompt
    out = np.zeros((len(plan), n, size, size, 3), dtype=np.uint8)
    for j, p in enumerate(plan):
        noise = torch.cat(
            [fill.initial_noise(1, size, size, torch.Generator().manual_seed(s)) for s in p["noise_seed"]]
        )
        noise = noise * torch.tensor(p["noise_scale"], dtype=noise.dtype, device=noise.device)[:, None, None]
        neg = None
        if p["true_cfg"] != 1:
            neg = PromptEmbeds.cat([neg_both[negatives[m]] for m in p["negative_prompt"]])
        imgs = fill.sample(
            src,
            msk,
            list(prompts),
            steps=p["steps"],
            true_cfg=p["true_cfg"],
            guidance=guidance,
            noise=noise,
            cond=cond,
            embeds=embeds,
            neg_embeds=neg,
        )  # (n, 3, H, W) in [0, 1], composited
        arr = imgs.float().clamp(0, 1).cpu().numpy().transpose(0, 2, 3, 1)  # (n, H, W, 3)
        out[j] = np.round(arr * 255.0).astype(np.uint8)
    return out


_WORKER: dict[str, Any] = {}


def _init_worker(model: str, threads: int) -> None:
    import torch

    from onereward.models.commands import _quiet_libraries
    from onereward.models.fill import FillModel

    torch.set_num_threads(threads)
    _quiet_libraries()
    _WORKER["fill"] = FillModel.from_pretrained(model)


def _worker_batch(args):
    return sample_batch(_WORKER["fill"], *args)


class PrefWriter:
    """Labels candidate sets with the simulated annotator and writes them in the data/prefs.py format.

    `add(cond, candidates, settings)` per condition, then `close()`. Independent of where candidates come from
    (collect samples them from a fill model; tests pass known-quality variants).
    """

    def __init__(self, out: Path, cfg: CollectConfig):
        from onereward.toyworld import Annotator

        self.out, self.cfg = Path(out), cfg
        (self.out / "images").mkdir(parents=True, exist_ok=True)
        self.annotator = Annotator(gap=cfg.gap, noise=cfg.label_noise, seed=cfg.seed)
        self.coin = np.random.default_rng([cfg.seed, 3])  # which of winner / loser is written as "a"
        self.rows: list[dict[str, Any]] = []
        self.cand_rows: list[dict[str, Any]] = []
        self.dropped: dict[tuple[str, str], int] = {}

    def add(self, cond, candidates: np.ndarray, settings: list[dict[str, Any]]) -> None:
        """candidates: (N, H, W, 3) uint8 (what the PNGs will hold); settings: one dict per candidate."""
        from onereward.io import save_image
        from onereward.toyworld import item_seed

        # --- label: oracle scores of the 8-bit images + the annotator's best/worst per dimension ---
        cands = candidates.astype(np.float32) / 255.0  # (N, H, W, 3)
        ann = self.annotator.annotate(cond, cands)
        dims = TASKS[cond.task].dimensions
        kept = {p.dimension for p in ann.pairs}
        for dim in dims:
            if dim not in kept:
                self.dropped[(cond.task, dim)] = self.dropped.get((cond.task, dim), 0) + 1
        # --- write images and rows ---
        index = int(cond.meta["index"])
        cid = condition_id(cond.task, index)
        folder = f"images/{cid}"
        save_image(self.out / folder / "source.png", cond.source)
        save_image(self.out / folder / "mask.png", cond.mask)
        paths = [f"{folder}/c{j}.png" for j in range(len(cands))]
        for j, p in enumerate(paths):
            save_image(self.out / p, cands[j])
        user_prompt = cond.prompt if TASKS[cond.task].uses_prompt else ""
        for p in ann.pairs:
            a_wins = bool(self.coin.random() < 0.5)
            a, b = (p.winner, p.loser) if a_wins else (p.loser, p.winner)
            self.rows.append(
                dict(
                    id=f"{cid}/{p.dimension}",
                    condition=cid,
                    task=cond.task,
                    prompt=user_prompt,
                    source=f"{folder}/source.png",
                    mask=f"{folder}/mask.png",
                    image_a=paths[a],
                    image_b=paths[b],
                    dimension=p.dimension,
                    winner="a" if a_wins else "b",
                )
            )
        split = cond.meta.get("split", SPLIT)
        self.cand_rows.append(
            dict(
                condition=cid,
                task=cond.task,
                prompt=cond.prompt,
                split=split,
                index=index,
                item_seed=int(item_seed(self.cfg.seed, split, cond.task, index)),
                size=cond.size,
                source=f"{folder}/source.png",
                mask=f"{folder}/mask.png",
                candidates=paths,
                settings=settings,
                scores=[{d: round(float(v), 5) for d, v in zip(dims, s, strict=True)} for s in ann.scores.tolist()],
            )
        )

    def close(self, model: str | Path | None, seconds: float) -> dict[str, Any]:
        """Write pairs.jsonl (validated), candidates.jsonl and meta.json; returns meta."""
        from onereward.data.prefs import write_pairs
        from onereward.io import save_json

        write_pairs(self.out, self.rows)
        (self.out / CANDIDATES_FILE).write_text("".join(json.dumps(r) + "\n" for r in self.cand_rows))
        conditions = {t: sum(r["task"] == t for r in self.cand_rows) for t in TASK_NAMES}
        meta = summary(self.rows, self.dropped, conditions, self.cfg, model)
        meta["seconds"] = round(seconds, 1)
        save_json(self.out / META_FILE, meta)
        return meta


def top_up(rows: list[dict], judged: dict[str, int], cfg: CollectConfig) -> dict[str, int]:
    """Extra conditions per task for the family x dimension cells below `target_pairs`.

    A cell's pairs come from its family's tasks at each task's measured yield (pairs per condition judged); every
    task feeding a short cell gets enough extra conditions for that cell at the tasks' summed yield, 10% more to
    spare, within `max_conditions` per task in all.
    """
    pairs: dict[tuple[str, str], int] = {}
    for r in rows:
        pairs[(r["task"], r["dimension"])] = pairs.get((r["task"], r["dimension"]), 0) + 1
    extra = dict.fromkeys(TASK_NAMES, 0)
    for fam in FAMILIES:
        for dim in family_dimensions(fam):
            feeders = [t for t in TASK_NAMES if TASKS[t].family == fam and dim in TASKS[t].dimensions]
            have = sum(pairs.get((t, dim), 0) for t in feeders)
            if have >= cfg.target_pairs:
                continue
            per_condition = sum(pairs.get((t, dim), 0) / max(1, judged[t]) for t in feeders)
            need = math.ceil(1.1 * (cfg.target_pairs - have) / max(per_condition, 0.05))
            for t in feeders:
                extra[t] = max(extra[t], need)
    return {t: max(0, min(n, cfg.max_conditions - judged[t])) for t, n in extra.items()}


def collect(model: str | Path, out: str | Path, cfg: CollectConfig, progress: bool = True) -> dict[str, Any]:
    """Sample, label and write a preference dataset; returns meta.json's content.

    A first round samples `conditions` per task; while some family x dimension cell has fewer than `target_pairs`
    pairs (the near-tie filter drops more of some dimensions than others), up to `rounds` top-up rounds add
    conditions of the tasks that feed it (`top_up`), so that the held-out share of every cell is large enough to
    measure (PILOT.md section 9: n = 24 was noise).
    """
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    from onereward.toyworld import item_seed, make_condition

    cfg.check()
    out = Path(out)
    if (out / "pairs.jsonl").exists():
        raise UserError(f"{out} already holds a preference dataset (pairs.jsonl); choose another --out")
    t_start = time.perf_counter()
    if cfg.workers > 0:  # one torch thread each: tiny models parallelise poorly within a process
        pool = ProcessPoolExecutor(cfg.workers, mp.get_context("spawn"), _init_worker, (str(model), 1))
    else:
        from onereward.models.fill import FillModel

        pool, fill = None, FillModel.from_pretrained(model)
    writer = PrefWriter(out, cfg)
    judged = dict.fromkeys(TASK_NAMES, 0)  # conditions per task so far: the next index of each task
    want = dict.fromkeys(TASK_NAMES, cfg.conditions)
    n_batches = 0
    bar = tqdm(desc="collect", unit="candidate", disable=not progress, total=0)
    try:
        for round_ in range(1 + cfg.rounds):
            # --- 1. this round's conditions (split "pref", indices continuing per task), in mixed-task batches ---
            conds = []
            for task in TASK_NAMES:
                for i in range(judged[task], judged[task] + want[task]):
                    c = make_condition(task, item_seed(cfg.seed, SPLIT, task, i), cfg.size)
                    c.meta.update(split=SPLIT, index=i)
                    conds.append(c)
                judged[task] += want[task]
            if not conds:
                break
            order = np.random.default_rng([cfg.seed, 1, round_]).permutation(len(conds))
            conds = [conds[i] for i in order]
            batches = [conds[i : i + cfg.batch_size] for i in range(0, len(conds), cfg.batch_size)]
            plans = [draw_plan(cfg, n_batches + b, len(part)) for b, part in enumerate(batches)]
            n_batches += len(batches)
            jobs = [
                (np.stack([c.source for c in part]), np.stack([c.mask for c in part]), [c.prompt for c in part],
                 plan, cfg.guidance)
                for part, plan in zip(batches, plans, strict=True)
            ]  # fmt: skip
            bar.total += len(conds) * cfg.candidates
            bar.refresh()
            # --- 2. candidates (worker processes sample ahead) and 3. labels + files, batch by batch ---
            results = pool.map(_worker_batch, jobs) if pool else (sample_batch(fill, *job) for job in jobs)
            for part, plan, images in zip(batches, plans, results, strict=True):
                for i, c in enumerate(part):
                    settings = [{k: (v[i] if isinstance(v, list) else v) for k, v in pj.items()} for pj in plan]
                    writer.add(c, images[:, i], settings)
                bar.update(len(part) * cfg.candidates)
            want = top_up(writer.rows, judged, cfg) if cfg.target_pairs else {}
            if not any(want.values()):
                break
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    meta = writer.close(model, time.perf_counter() - t_start)
    return meta


def summary(
    rows: list[dict], dropped: dict[tuple[str, str], int], conditions: dict[str, int], cfg: CollectConfig, model
) -> dict[str, Any]:
    """Counts per task x dimension and per family x dimension, drop rates, and how the data was made."""
    per_task: dict[str, dict[str, dict[str, int]]] = {}
    for t in TASK_NAMES:
        per_task[t] = {d: {"pairs": 0, "dropped": dropped.get((t, d), 0)} for d in TASKS[t].dimensions}
    for r in rows:
        per_task[r["task"]][r["dimension"]]["pairs"] += 1
    per_family = {f: {d: 0 for d in family_dimensions(f)} for f in FAMILIES}
    for t, dims in per_task.items():
        for d, c in dims.items():
            per_family[TASKS[t].family][d] += c["pairs"]
    n_pairs = len(rows)
    n_dropped = sum(dropped.values())
    return {
        "generator": "onereward collect (toy world, simulated annotator)",
        "model": str(model),
        "conditions_per_task": conditions,
        "pairs": n_pairs,
        "dropped_near_ties": n_dropped,
        "drop_rate": round(n_dropped / max(1, n_pairs + n_dropped), 4),
        "pairs_per_task": per_task,
        "pairs_per_family": per_family,
        "settings": asdict(cfg),
        "toyworld": {"split": SPLIT, "seed": cfg.seed, "size": cfg.size},
    }
