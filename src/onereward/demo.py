"""`onereward demo`: the whole system on the embedded default, stage by stage, each stage cached.

Every stage is an ordinary `onereward` command run in its own process (so a user can rerun any one of them by hand,
and so each stage's peak memory is measured on its own: the child's max RSS from wait4). Stages that do not depend
on each other (the two RL runs) share a `together` label and run side by side, the cores split between them and each
one's output in `stages/<name>.log`: a tiny model uses a second thread poorly (2026-11-27, same models: one RL run
on 2 threads took 75-83 s; both side by side on one thread each, 98 s). A stage that finished
leaves `stages/<name>.json` (its command, seconds, peak MB); a rerun skips it, so `make demo` after an interruption
continues where it stopped; a killed reward-model or RL stage continues from its newest checkpoint (`--resume`).
At the end the results of every stage are merged into `results.json`, and the report and the image grids and RL
curves (`figures/*.png`) are written.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from onereward.errors import UserError
from onereward.io import load_json, save_json
from onereward.presets import get_preset

RL_MODELS = ("onereward", "onereward_dynamic")  # the RL runs' model names: standard, dynamic


@dataclass
class Stage:
    name: str  # key in results.json's timings / peak_memory_mb
    title: str  # what the user reads
    args: Callable[[Path], list[str]]  # the onereward command line, given the run folder
    done: Callable[[Path], bool]  # the stage's own output exists (besides its marker)
    skip: Callable[[Path], str | None] = lambda out: None  # why the stage must not run now (None: run it)
    together: str | None = None  # consecutive stages with the same label run at the same time
    # where a killed run of the stage leaves its checkpoints: if one is complete, the rerun continues it (--resume)
    checkpoints: tuple[str, ...] | None = None


def _exists(*parts: str) -> Callable[[Path], bool]:
    return lambda out: (out.joinpath(*parts)).exists()


def _resume_args(stage: Stage, out: Path) -> list[str]:
    """["--resume"] when a killed run of the stage left a complete checkpoint, else []."""
    from onereward import checkpoint

    if stage.checkpoints is None or checkpoint.latest(out.joinpath(*stage.checkpoints)) is None:
        return []
    return ["--resume"]


def rl_skip_reason(out: Path, min_accuracy: float, gate: str = "dimension") -> str | None:
    """Why RL must not run on this reward model, or None.

    The trainer trains each task only on the reward dimensions that pass its gate (`rl.trainer.dimension_gate`:
    held-out accuracy at least `min_accuracy`; PILOT.md: dimensions at chance are adversarial directions, not
    neutral); with no task left it refuses to start. The demo then skips both RL runs, says why, and evaluates the
    models it has, instead of failing or training on noise.
    """
    from onereward.rl.trainer import dimension_gate

    cfg = get_preset("toy")
    cfg.model.reward_accuracy = str(out / "reward_accuracy.json")
    cfg.train.min_reward_accuracy, cfg.train.gate = min_accuracy, gate
    if any(bool(keep.any()) for keep in dimension_gate(cfg).values()):
        return None
    accuracy = load_json(out / "reward_accuracy.json")["reward_accuracy"]
    best = max((v for dims in accuracy.values() for v in dims.values() if v is not None), default=float("nan"))
    what = "no task has every reward dimension at" if gate == "task" else "no reward dimension reached"
    return (
        f"{what} {min_accuracy:.2f} held-out accuracy (best {best:.2f}); RL on a judge at chance would follow"
        " adversarial gradients. Train a better reward model (e.g. another --seed) and rerun"
    )


def stages(seed: int, quick: bool) -> list[Stage]:
    """The demo's stages in order. `quick` shrinks every budget (a smoke run for tests, not for results)."""
    q = quick
    # 340 s: 40 s of the ~55 s that running the two RL stages side by side saves (2026-11-27)
    pretrain_s = "20" if q else "340"
    # 2026-11-27: 1,900 reward-model steps judged no better than ~930 (240 s) on the same preferences, so the reward
    # model got 200 s and the whole demo (install included) fits in 20 minutes on 2 cores. 2026-11-28: 400 s did
    # lift fill structure and extend text alignment (71 / 67 against 66 / 50 on 47d9eca's preferences); the ~30 s
    # that building the auxiliary pool on both cores saves go to training (230 s), the stage as long as before.
    rm_budget = ["--steps", "4"] if q else ["--seconds", "230"]
    # The stages run one after another on an otherwise idle machine: the trainers may take both cores (their own
    # default is one thread, the safe choice on shared cores).
    threads = ["--threads", "1" if q else "2"]
    rl_steps = "4" if q else "120"
    # a quick run's reward model is untrained: gate nothing, so the mechanics still run
    toy = get_preset("toy").train
    min_accuracy, gate = 0.0 if q else toy.min_reward_accuracy, toy.gate
    bench = ["--counts", "fill=4,text=2,extend=2,extend_noprompt=2,removal=2"] if q else []
    return [
        Stage(
            "world",
            "build the held-out toy benchmark",
            lambda o: ["benchmark", "--out", str(o / "eval" / "benchmark"), "--seed", str(seed), *bench],
            _exists("eval", "benchmark", "benchmark.json"),
        ),
        Stage(
            "pretrain",
            "pretrain the tiny base fill model (VAE + transformer)",
            lambda o: [
                "pretrain",
                "--out",
                str(o / "models" / "base"),
                "--seconds",
                pretrain_s,
                "--seed",
                str(seed),
                *threads,
            ],
            _exists("models", "base", "model_index.json"),
        ),
        Stage(
            "collect",
            "collect preferences with the simulated annotators",
            lambda o: [
                "collect",
                "--model",
                str(o / "models" / "base"),
                "--out",
                str(o / "prefs"),
                "--seed",
                str(seed),
                *(["--conditions", "8", "--target-pairs", "0"] if q else []),
            ],
            _exists("prefs", "pairs.jsonl"),
        ),
        Stage(
            "train_reward",
            "train the reward model",
            lambda o: [
                "train-reward",
                "--prefs",
                str(o / "prefs"),
                "--out",
                str(o / "models" / "reward"),
                "--seed",
                str(seed),
                *rm_budget,
                *threads,
            ],
            _exists("models", "reward", "config.json"),
            checkpoints=("models", "reward", "checkpoints"),
        ),
        Stage(
            "eval_reward",
            "measure the reward model's held-out accuracy",
            lambda o: [
                "eval-reward",
                "--model",
                str(o / "models" / "reward"),
                "--prefs",
                str(o / "prefs"),
                "--out",
                str(o / "reward_accuracy.json"),
                "--on-policy",  # the pairs RL will ask about: two samples of the base model
                str(o / "models" / "base"),
                "--on-policy-n",
                "4" if q else "128",
            ],
            _exists("reward_accuracy.json"),
        ),
        *[
            Stage(
                f"rl_{name}",
                f"OneReward RL, {alg} (Algorithm {1 if alg == 'standard' else 2})",
                lambda o, alg=alg, name=name: [
                    "train",
                    "--preset",
                    "toy",
                    "--set",
                    f"model.policy={o / 'models' / 'base'}",
                    "--set",
                    f"model.reward={o / 'models' / 'reward'}",
                    "--set",
                    f"model.reward_accuracy={o / 'reward_accuracy.json'}",
                    "--set",
                    f"train.algorithm={alg}",
                    "--set",
                    f"train.steps={rl_steps}",
                    "--set",
                    f"train.seed={seed}",
                    "--set",
                    f"log.out={o / 'rl' / name}",
                    "--set",
                    f"train.min_reward_accuracy={min_accuracy}",
                    *(["--set", "log.eval_every=2", "--set", "log.eval_size=4"] if q else []),
                ],
                _exists("rl", name, "policy"),
                lambda o: rl_skip_reason(o, min_accuracy, gate),
                together="rl",
                checkpoints=("rl", name, "checkpoints"),
            )
            for alg, name in zip(("standard", "dynamic"), RL_MODELS, strict=True)
        ],
        Stage(
            "eval",
            "evaluate every model on the benchmark",
            lambda o: [
                "eval",
                "--benchmark",
                str(o / "eval" / "benchmark"),
                "--out",
                str(o),
                "--seed",
                str(seed),
                "--model",
                f"base={o / 'models' / 'base'}",
                *[
                    arg
                    for name in RL_MODELS
                    if _released(o, name).is_dir()  # absent when RL was skipped
                    for arg in ("--model", f"{name}={o / 'models' / 'base'}:transformer={_released(o, name)}")
                ],
                "--model",
                "opencv=opencv",
            ],
            _exists("eval", "results.json"),
        ),
    ]


def _released(out: Path, name: str) -> Path:
    """The released checkpoint of an RL run: the best held-out evaluation if there was one, else the last step."""
    best = out / "rl" / name / "best" / "transformer"
    return best if best.is_dir() else out / "rl" / name / "policy" / "transformer"


def run_group(group: list[Stage], out: Path, first: int, total: int) -> dict[str, dict]:
    """Run stages as child processes, all at once, the CPU cores split between them.

    Returns {name: {seconds, peak_mb}} or {name: {skipped: reason}}. A stage that is cached (its marker's command is
    the same and its output exists) is not run again; a skip leaves no marker, so the next run asks again. Raises
    UserError if a stage fails, after the others have finished (their results are kept).
    """
    infos: dict[str, dict] = {}
    to_run: list[tuple[int, Stage, list[str]]] = []
    for index, stage in enumerate(group, start=first):
        marker = out / "stages" / f"{stage.name}.json"
        args = stage.args(out)
        # cached only while the command is the same: e.g. the evaluation reruns (for the missing models only, it is
        # resumable) once RL runs that were skipped exist
        if marker.is_file() and stage.done(out) and load_json(marker).get("command") == ["onereward", *args]:
            infos[stage.name] = load_json(marker)
            print(f"[{index}/{total}] {stage.title}: cached ({infos[stage.name]['seconds']:.0f} s)", flush=True)
            continue
        reason = stage.skip(out)
        if reason is not None:
            print(f"[{index}/{total}] {stage.title}: SKIPPED: {reason}", flush=True)
            infos[stage.name] = {"skipped": reason}
            continue
        to_run.append((index, stage, args + _resume_args(stage, out)))
    running: dict[str, tuple[subprocess.Popen, list[str], float, Any]] = {}
    threads = max(1, (os.cpu_count() or 1) // max(1, len(to_run)))
    for index, stage, args in to_run:
        env, log = None, None
        if len(to_run) > 1:  # side by side: one share of the cores each, output to a log instead of the terminal
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            (out / "stages").mkdir(parents=True, exist_ok=True)
            log = (out / "stages" / f"{stage.name}.log").open("w")
        where = f" (output: {log.name})" if log else ""
        print(f"[{index}/{total}] {stage.title}: onereward {' '.join(args)}{where}", flush=True)
        cmd = [sys.executable, "-m", "onereward.cli", *args]
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT if log else None)
        running[stage.name] = (proc, args, time.perf_counter(), log)
    failed = []
    for index, stage in enumerate(group, start=first):
        if stage.name not in running:
            continue
        proc, args, t0, log = running[stage.name]
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        if log is not None:
            log.close()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            failed.append(f"{stage.name} (exit {code}{f'; see {log.name}' if log else ''})")
            continue
        done = [a for a in args if a != "--resume"]  # the cache compares commands: a resumed run is the same stage
        infos[stage.name] = {"command": ["onereward", *done], "seconds": seconds, "peak_mb": usage.ru_maxrss / 1024}
        save_json(out / "stages" / f"{stage.name}.json", infos[stage.name])
        print(
            f"[{index}/{total}] {stage.title}: done in {seconds:.0f} s, peak {infos[stage.name]['peak_mb']:.0f} MB",
            flush=True,
        )
    if failed:
        raise UserError(f"stage {', '.join(failed)} failed; fix the cause and rerun: finished stages are kept")
    return infos


def groups(plan: list[Stage]) -> list[list[Stage]]:
    """Consecutive stages with the same `together` label in one group; every other stage alone."""
    out: list[list[Stage]] = []
    for stage in plan:
        if out and stage.together is not None and out[-1][-1].together == stage.together:
            out[-1].append(stage)
        else:
            out.append([stage])
    return out


def run(out: str | Path = "runs/demo", seed: int = 0, quick: bool = False) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = stages(seed, quick)
    infos: dict[str, dict] = {}
    total = 0.0  # stages side by side count once: the longest of them
    for group in groups(plan):
        ran = run_group(group, out, len(infos) + 1, len(plan))
        infos.update(ran)
        total += max((v.get("seconds", 0.0) for v in ran.values()), default=0.0)
    results = collect_results(out, infos, seed)
    results["total_seconds"] = round(total, 1)
    save_json(out / "results.json", results)
    from onereward.eval.report import write_figures, write_report

    report = write_report(out)
    figures = write_figures(out, out / "figures")
    print(summary_table(results))
    for name, reason in results["skipped"].items():
        print(f"NOT RUN: {name}: {reason}")
    print(f"report: {report}\nresults: {out / 'results.json'}\nfigures: {', '.join(map(str, figures))}")
    return out


def collect_results(out: Path, infos: dict[str, dict], seed: int) -> dict:
    """Merge every stage's measured output into the results.json schema (eval/tables.py documents it)."""
    results = load_json(out / "eval" / "results.json")
    accuracy = load_json(out / "reward_accuracy.json")
    results["reward_accuracy"] = accuracy["reward_accuracy"]
    for key in ("reward_accuracy_detail", "reward_accuracy_by_task", "on_policy_accuracy"):
        if key in accuracy:
            results[key] = accuracy[key]
    ran = {k: v for k, v in infos.items() if "skipped" not in v}
    results["timings"] = {k: round(v["seconds"], 1) for k, v in ran.items()}
    results["peak_memory_mb"] = {k: round(v["peak_mb"], 1) for k, v in ran.items()}
    results["skipped"] = {k: v["skipped"] for k, v in infos.items() if "skipped" in v}
    results["models"] = {"base": "models/base", "reward": "models/reward"}
    results["models"].update(
        {name: str(_released(out, name).relative_to(out)) for name in RL_MODELS if _released(out, name).is_dir()}
    )
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform(terse=True)}"
    results["date"] = date.today().isoformat()
    results["seeds"] = {"demo": seed}
    return results


def summary_table(results: dict) -> str:
    """Usability per model x task, as a short terminal table."""
    use = results.get("usability", {})
    tasks = sorted({t for per in use.values() for t in per})
    lines = ["model".ljust(20) + "".join(t[:15].rjust(16) for t in tasks)]
    for model, per in use.items():
        lines.append(model.ljust(20) + "".join(f"{100 * per[t]:15.1f}%" if t in per else " " * 16 for t in tasks))
    return "\n".join(lines)


def load_results(out: Path) -> dict:
    path = out / "results.json"
    if not path.is_file():
        raise UserError(f"{out}: no results.json; run `onereward demo --out {out}` first")
    return json.loads(path.read_text())
