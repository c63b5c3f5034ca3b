"""CLI commands of the eval area (registered in onereward.cli). Thin: parse, call, show."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from onereward.eval.report import FIGURES, USABILITY_FIGURE, check_figures_dir, write_figures, write_report


def report(
    run_dir: Annotated[Path, typer.Argument(help="folder of a run, holding results.json (e.g. runs/demo)")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="the page to write [RUN_DIR/report.html]")] = None,
    figures: Annotated[
        Path | None,
        typer.Option(
            "--figures",
            help=f"also write the image grids and RL curves as PNG files into this folder: {', '.join(FIGURES)},"
            f" {USABILITY_FIGURE} and rl_reward_<run>.png per RL run",
        ),
    ] = None,
) -> Path:
    """Write a self-contained HTML report of a run: tables beside the paper's, RL curves, image grids, costs."""
    if figures is not None:
        check_figures_dir(figures)
    path = write_report(run_dir, out)
    typer.echo(f"wrote {path}")
    if figures is not None:
        for fig in write_figures(run_dir, figures):
            typer.echo(f"wrote {fig}")
    return path


def eval_command(
    out: Annotated[Path, typer.Option("--out", help="run folder; writes OUT/eval/<model>/..., OUT/eval/results.json")],
    model: Annotated[
        list[str],
        typer.Option(
            "--model",
            help="NAME=SPEC, repeatable. SPEC: a pipeline folder, FOLDER:transformer=DIR, FOLDER:lora=FILE, "
            "or opencv (opencv:ns for Navier-Stokes)",
        ),
    ],
    benchmark: Annotated[
        Path | None,
        typer.Option(
            help="benchmark folder: BENCH/<task>/<id>/{source,mask}.png + meta.json (see onereward.eval.benchmark)"
        ),
    ] = None,
    toy: Annotated[bool, typer.Option("--toy", help="build the toy benchmark into OUT/eval/benchmark")] = False,
    base: Annotated[str, typer.Option(help="the model GSB compares the others with")] = "base",
    judge: Annotated[
        str,
        typer.Option(
            help="oracle (toy benchmark), reward:DIR (a reward model) or human:FILE "
            "(JSONL of {id, model_a, model_b, task, winner})"
        ),
    ] = "oracle",
    reward_model: Annotated[Path | None, typer.Option(help="reward model whose accuracy on --prefs to report")] = None,
    prefs: Annotated[Path | None, typer.Option(help="held-out preference folder (pairs.jsonl + images)")] = None,
    steps: Annotated[int | None, typer.Option(help="Euler steps (default: the model's, else 50)")] = None,
    true_cfg: Annotated[float | None, typer.Option(help="true CFG, 1 = off (default: the model's, else 4)")] = None,
    guidance: Annotated[float | None, typer.Option(help="FLUX guidance (default: the model's, else 1)")] = None,
    seed: Annotated[int, typer.Option(help="noise seed; every model gets the same noise per item")] = 0,
    same_margin: Annotated[float, typer.Option(help="GSB tie band: |difference| <= this is 'same'")] = 0.02,
    batch_size: Annotated[int, typer.Option(help="images per model call")] = 8,
    limit: Annotated[int | None, typer.Option(help="at most this many items per task (quick runs)")] = None,
    toy_size: Annotated[int, typer.Option(help="image size of the toy benchmark (px)")] = 64,
    toy_seed: Annotated[int, typer.Option(help="seed of the toy benchmark's scenes")] = 0,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda when available)")] = None,
) -> dict:
    """Generate every model's outputs on a benchmark, judge them, and write usability, dimension scores and GSB."""
    from onereward.eval.evaluate import evaluate, parse_model_args, summary_lines

    models = parse_model_args(model)
    _quiet_libraries()
    results = evaluate(
        out, models, base=base, benchmark=benchmark, toy=toy, judge=judge, reward_model=reward_model, prefs=prefs,
        steps=steps, true_cfg=true_cfg, guidance=guidance, seed=seed, batch_size=batch_size, same_margin=same_margin,
        toy_size=toy_size, toy_seed=toy_seed, limit=limit, device=device,
    )  # fmt: skip
    if not results:  # another process than the main one (several generate, the main one judges and reports)
        return results
    for line in summary_lines(results):
        typer.echo(line)
    typer.echo(f"wrote {out / 'eval' / 'results.json'} and {out / 'eval' / 'results.md'}")
    return results


def _quiet_libraries() -> None:
    """Library progress bars and load warnings are noise in a CLI; our own tqdm bar stays."""
    import diffusers
    import transformers

    for lib in (diffusers, transformers):
        lib.utils.logging.disable_progress_bar()
        lib.utils.logging.set_verbosity_error()


def benchmark_command(
    out: Annotated[Path, typer.Option("--out", help="folder to write the toy benchmark into")],
    size: Annotated[int, typer.Option(help="image side in pixels")] = 64,
    seed: Annotated[int, typer.Option(help="seed of the benchmark's scenes (split 'bench', never trained on)")] = 0,
    counts: Annotated[
        str | None, typer.Option(help="items per task, e.g. fill=4,text=2 (default: the paper's composition)")
    ] = None,
) -> None:
    """Build the held-out toy benchmark: 130 fill (30 of them text), 200 extend (half without prompt), 100 removal."""
    from onereward.errors import UserError
    from onereward.eval.benchmark import toy_benchmark

    parsed = None
    if counts:
        try:
            parsed = {k.strip(): int(v) for k, v in (part.split("=") for part in counts.split(","))}
        except ValueError:
            raise UserError(f"--counts {counts!r}: write task=N pairs joined by commas, e.g. fill=4,text=2") from None
    typer.echo(f"benchmark: {toy_benchmark(out, size=size, seed=seed, counts=parsed)}")


def demo_command(
    out: Annotated[Path, typer.Option(help="run folder (a rerun continues where the last one stopped)")] = Path(
        "runs/demo"
    ),
    seed: Annotated[int, typer.Option(help="seed of every stage")] = 0,
    quick: Annotated[
        bool, typer.Option(help="tiny budgets everywhere: a smoke run of the mechanics, not results")
    ] = False,
) -> None:
    """The whole system on the embedded default: world, base model, preferences, reward model, RL x2, eval, report."""
    from onereward.demo import run

    run(out, seed=seed, quick=quick)
