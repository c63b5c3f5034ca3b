"""`evaluate()`: a benchmark, every model's outputs on it, a judge's verdict, and the result tables.

Layout under OUT (the run folder the HTML report reads, onereward.eval.report):
    OUT/eval/benchmark/<task>/<id>/      the toy benchmark (--toy), or a link to the --benchmark folder
    OUT/eval/<model>/<task>/<id>.png     each model's outputs (onereward.eval.generate: same noise for every model)
    OUT/eval/<model>/generation.json     how they were made (a rerun generates only what is missing)
    OUT/eval/<model>/records.json        the oracle's records (oracle judge)
    OUT/eval/<model>/win_vs_<base>.json  per-item P(model better than base) (reward judge)
    OUT/eval/results.json                results.json sections (schema in onereward.eval.tables)
    OUT/eval/results.md                  the same as Markdown tables

Every number comes from onereward.eval.metrics through the judges (onereward.eval.judges).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onereward.errors import UserError
from onereward.eval import tables
from onereward.eval.benchmark import composition, load_benchmark, toy_benchmark
from onereward.eval.generate import ModelSpec, generate, parse_model_spec
from onereward.eval.judges import (
    PairwiseJudge,
    check_judge,
    check_reward_folder,
    load_annotations,
    parse_judge,
    reward_accuracy,
)
from onereward.eval.metrics import GSB_MARGIN
from onereward.io import atomic_write, save_json
from onereward.tasks import TASK_NAMES

if TYPE_CHECKING:
    from onereward.models.fill import FillModel

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
RESERVED = ("benchmark",)  # OUT/eval/benchmark holds the benchmark itself


def parse_model_args(args: Sequence[str]) -> dict[str, ModelSpec]:
    """["NAME=SPEC", ...] (the CLI's repeated --model) -> {name: ModelSpec}, in the order given."""
    if not args:
        raise UserError("no --model given; pass at least one, e.g. --model base=models/flux-fill --model cv=opencv")
    out: dict[str, ModelSpec] = {}
    for arg in args:
        name, eq, spec = arg.partition("=")
        if not eq or not name or not spec:
            raise UserError(f"--model {arg!r}: write NAME=SPEC, e.g. base=models/flux-fill or ours=FOLDER:lora=FILE")
        check_name(name)
        if name in out:
            raise UserError(f"--model {name}: given twice; each model needs its own name")
        out[name] = parse_model_spec(spec)
    return out


def check_name(name: str) -> None:
    if not _NAME.match(name) or name in RESERVED:
        raise UserError(f"model name {name!r}: use letters, digits, '_', '.', '-' (it names a folder), and not "
                        f"{', '.join(RESERVED)}")  # fmt: skip


def _link_benchmark(bench: Path, eval_dir: Path) -> None:
    """The report shows eval/benchmark/<task>/<id>/source.png beside the outputs; point it at an outside benchmark."""
    link = eval_dir / "benchmark"
    if link.exists() or link.is_symlink():
        return
    try:
        link.symlink_to(bench.resolve(), target_is_directory=True)
    except OSError:
        pass  # no symlinks here (some Windows setups): the report then shows outputs without their sources


def win_rate_markdown(win_rate: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """The reward judge's win rates as a Markdown table: one row per comparison and task."""
    lines = ["### Win rate against the base (reward judge, two-order P(model better), %)", ""]
    dims = list(tables.DIM_TITLES)
    lines.append("| comparison | task | " + " | ".join(tables.DIM_TITLES.values()) + " |")
    lines.append("|" + "---|" * (len(dims) + 2))
    for comp, per_task in win_rate.items():
        for t in TASK_NAMES:
            if t in per_task:
                cells = [tables.pct(per_task[t][d]) if d in per_task[t] else tables.NOT_APPLICABLE for d in dims]
                lines.append(f"| {comp} | {tables.TASK_TITLES[t]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def evaluate(
    out: str | Path,
    models: Mapping[str, str | ModelSpec | FillModel],
    base: str | None = "base",
    benchmark: str | Path | None = None,
    toy: bool = False,
    judge: str = "oracle",
    reward_model: str | Path | None = None,
    prefs: str | Path | None = None,
    steps: int | None = None,
    true_cfg: float | None = None,
    guidance: float | None = None,
    seed: int = 0,
    batch_size: int = 8,
    same_margin: float = GSB_MARGIN,
    toy_size: int = 64,
    toy_seed: int = 0,
    toy_counts: dict[str, int] | None = None,
    limit: int | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate every model's outputs on a benchmark, judge them, write OUT/eval/results.{json,md}; return results.

    models: {name: spec string | ModelSpec | loaded FillModel}. base: the model GSB (and the reward judge) compares
    the others with; with a single model it may be absent. benchmark: a benchmark folder, or toy=True to build the
    toy benchmark (toy_size, toy_seed, toy_counts) into OUT/eval/benchmark. judge: "oracle", "reward:DIR" or
    "human:FILE". prefs (+ reward_model, or the reward judge's model): also measure the reward model's two-order
    accuracy on that preference folder. limit: at most this many items per task (quick runs).
    Bad input raises UserError before anything slow starts. Launched as several processes (torchrun, accelerate
    launch --multi_gpu), every process calls this: they split the generation, the main process judges, writes and
    returns the results, the others return {}.
    """
    t_start = time.perf_counter()
    # --- check everything first ---
    if not models:
        raise UserError("no models to evaluate; pass at least one --model NAME=SPEC")
    specs: dict[str, Any] = {}
    for name, spec in models.items():
        check_name(name)
        specs[name] = parse_model_spec(spec) if isinstance(spec, str) else spec
    if base is not None and base not in specs:
        if len(specs) > 1 or not judge.startswith("oracle"):
            raise UserError(f"--base {base!r} is not one of the models ({', '.join(specs)}); "
                            "pass --base NAME to pick the model the others are compared with")  # fmt: skip
        base = None  # a single model: nothing to compare it with
    if same_margin < 0:
        raise UserError(f"--same-margin {same_margin}: the tie band must be >= 0")
    if batch_size < 1:
        raise UserError(f"--batch-size {batch_size}: use at least 1")
    if (benchmark is None) == (not toy):
        raise UserError("give exactly one of --benchmark DIR (your own, or a toy one) and --toy (build the toy one)")
    check_judge(judge)
    if reward_model is not None and prefs is None:
        raise UserError("--reward-model is used to measure accuracy on --prefs DIR; pass --prefs too (or drop it)")
    if prefs is not None:
        from onereward.data.prefs import load_pairs

        if reward_model is None and not judge.startswith("reward:"):
            raise UserError("--prefs needs a reward model: pass --reward-model DIR (or --judge reward:DIR)")
        check_reward_folder(reward_model or judge.partition(":")[2])
        load_pairs(prefs)  # validate now, not after an hour of generation

    out = Path(out)
    eval_dir = out / "eval"
    timings: dict[str, float] = {}
    # Launched as several processes (torchrun, accelerate launch), they split the generation; the main one judges.
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    main = state.is_main_process

    # --- the benchmark ---
    t0 = time.perf_counter()
    bench_dir = eval_dir / "benchmark" if toy else Path(benchmark)
    if toy and main:
        toy_benchmark(bench_dir, size=toy_size, seed=toy_seed, counts=toy_counts)
    if not toy and main:
        eval_dir.mkdir(parents=True, exist_ok=True)
        _link_benchmark(bench_dir, eval_dir)
    state.wait_for_everyone()  # the others read the benchmark the main process wrote
    items = load_benchmark(bench_dir, limit=limit)
    if judge.startswith("human:"):
        load_annotations(judge.partition(":")[2], items)  # every vote names a benchmark item: check before generating
    timings["eval: benchmark"] = time.perf_counter() - t0

    # --- generation: every model, same noise per item ---
    generated = {}
    for name, spec in specs.items():
        t0 = time.perf_counter()
        generated[name] = generate(
            spec, items, eval_dir / name, steps, true_cfg, guidance, seed, batch_size, device, progress, state
        )
        timings[f"eval: generate {name}"] = time.perf_counter() - t0
    if not main:
        state.wait_for_everyone()  # the main process judges and writes the results; leave together (gloo teardown)
        return {}

    # --- judging ---
    t0 = time.perf_counter()
    the_judge = parse_judge(judge, device, batch_size)
    judged = the_judge.evaluate(items, eval_dir, list(specs), base, same_margin)
    timings["eval: judge"] = time.perf_counter() - t0

    results: dict[str, Any] = {
        "judge": judge,
        "benchmark": {"dir": str(bench_dir), "toy": toy, "items": composition(items)},
        "models": {name: (g["settings"]["model"] or "(in memory)") for name, g in generated.items()},
        "generation": {name: {k: g[k] for k in ("generated", "skipped", "settings")} for name, g in generated.items()},
        "base": base,
        "seeds": {"eval_noise": int(seed), **({"toy_benchmark": int(toy_seed)} if toy else {})},
        **judged,
    }

    # --- the reward model's own accuracy ---
    if prefs is not None:
        t0 = time.perf_counter()
        same = isinstance(the_judge, PairwiseJudge) and the_judge.spec == f"reward:{reward_model}"
        if reward_model is None or same:
            rm = the_judge.reward  # the reward judge's own model, loaded once
        else:
            rm = PairwiseJudge.from_folder(reward_model, device, batch_size).reward
        results.update(reward_accuracy(rm, prefs, batch_size))
        timings["eval: reward accuracy"] = time.perf_counter() - t0

    timings["eval: total"] = time.perf_counter() - t_start
    results["timings"] = timings
    try:
        tables.validate_results(results)
    except ValueError as e:  # a bug here, not the user's input
        raise RuntimeError(f"evaluate() built an invalid results dict: {e}") from e
    save_json(eval_dir / "results.json", results)
    text = tables.markdown_tables(results)
    if results.get("win_rate"):
        text += "\n" + win_rate_markdown(results["win_rate"])
    atomic_write(eval_dir / "results.md", lambda tmp: Path(tmp).write_text(text))
    state.wait_for_everyone()
    return results


def summary_lines(results: Mapping[str, Any]) -> list[str]:
    """A few lines for the terminal: usability per model and task, GSB and win rates per comparison."""
    lines = []
    for model, per_task in results.get("usability", {}).items():
        cells = ", ".join(f"{t} {100 * v:.1f}%" for t, v in per_task.items())
        lines.append(f"usability {model}: {cells}")
    for comp, per_task in results.get("gsb", {}).items():
        cells = ", ".join(
            f"{t} {100 * c['good']:.0f}/{100 * c['same']:.0f}/{100 * c['bad']:.0f}" for t, c in per_task.items()
        )
        lines.append(f"GSB {comp} (good/same/bad %): {cells}")
    for comp, per_task in results.get("win_rate", {}).items():
        cells = ", ".join(f"{t} {100 * sum(d.values()) / len(d):.1f}%" for t, d in per_task.items())
        lines.append(f"win rate {comp} (mean over dimensions): {cells}")
    return lines
