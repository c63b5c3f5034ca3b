"""The OneReward trainer end to end with the tiny VLM as the reward (the oracle is not differentiable)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from diffusers import FluxTransformer2DModel
from safetensors.torch import load_file

from onereward import checkpoint
from onereward.config import Config, apply_overrides
from onereward.errors import UserError
from onereward.rl.data import ConditionPool
from onereward.rl.trainer import dimension_gate, train
from onereward.tasks import TASKS
from onereward.toyworld import make_conditions

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pool():
    return ConditionPool([c for t in TASKS for c in make_conditions(t, 3, seed=0, size=64, split="rl")])


def config(policy, reward, out, *extra) -> Config:
    cfg = Config()
    apply_overrides(
        cfg,
        [
            f"model.policy={policy}",
            f"model.reward={reward}",
            f"log.out={out}",
            "train.steps=2",
            "train.batch_size=4",
            "train.lr=1e-3",
            "sampling.steps=4",
            "data.pool_size=3",
            "log.image_every=1",
            "log.save_every=1",
            *extra,
        ],
    )
    return cfg


def weights(module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in module.named_parameters()}


def test_one_step_changes_every_trainable_parameter_and_nothing_else(tiny_fill_dir, tiny_rm, pool, tmp_path):
    before = weights(FluxTransformer2DModel.from_pretrained(tiny_fill_dir / "transformer"))
    rm_before = weights(tiny_rm.model)
    out = train(config(tiny_fill_dir, "unused", tmp_path / "run", "train.steps=1"), reward=tiny_rm, pool=pool)
    after = weights(FluxTransformer2DModel.from_pretrained(out / "policy" / "transformer"))
    unchanged = [n for n in before if torch.equal(before[n], after[n])]
    assert unchanged == [], f"{len(unchanged)} policy tensors did not move, e.g. {unchanged[:3]}"
    # the reward model is frozen; the standard algorithm's reference is the untouched base model
    assert all(torch.equal(p, rm_before[n]) for n, p in weights(tiny_rm.model).items())
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 1 and any(k.startswith("reward/") for k in log[0])
    assert (out / "images" / "step-0000001.png").is_file() and (out / "ema" / "transformer").is_dir()


def test_lora_run_trains_only_adapters_and_exports_a_loadable_lora(tiny_fill_dir, tiny_rm, pool, tmp_path):
    from onereward.models.fill import FillModel

    out = train(config(tiny_fill_dir, "unused", tmp_path / "lora", "model.lora_rank=4"), reward=tiny_rm, pool=pool)
    lora_file = out / "policy" / "pytorch_lora_weights.safetensors"
    state = load_file(lora_file)
    assert state and all("lora" in k for k in state)
    assert any(v.abs().sum() > 0 for k, v in state.items() if "lora_B" in k)  # B starts at zero: it moved
    base = FillModel.from_pretrained(tiny_fill_dir)
    tuned = FillModel.from_pretrained(tiny_fill_dir, lora=lora_file)
    cond = next(iter(pool.by_id.values()))
    img = torch.from_numpy(cond.source).permute(2, 0, 1)[None]
    msk = torch.from_numpy(cond.mask)[None, None]
    a = base.sample(img, msk, [cond.prompt], steps=2, true_cfg=1.0, generator=torch.Generator().manual_seed(0))
    b = tuned.sample(img, msk, [cond.prompt], steps=2, true_cfg=1.0, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(a, b)


def test_dynamic_reference_is_the_ema_of_the_trained_policy(tiny_fill_dir, tiny_rm, pool, tmp_path):
    out = train(
        config(tiny_fill_dir, "x", tmp_path / "dyn", "train.algorithm=dynamic", "train.ema_tau=0.5"),
        reward=tiny_rm,
        pool=pool,
    )
    parts, meta = checkpoint.load(checkpoint.latest(out / "checkpoints"))
    assert meta["algorithm"] == "dynamic" and not (out / "ema").exists()
    start = weights(FluxTransformer2DModel.from_pretrained(tiny_fill_dir / "transformer"))
    # two steps of ref <- 0.5 ref + 0.5 policy: the EMA lies strictly between the start and the policy
    ema, pol = parts["reference"]["ema"], parts["policy"]
    name = next(n for n in pol if not torch.equal(pol[n], start[n]))
    assert not torch.equal(ema[name], start[name]) and not torch.equal(ema[name], pol[name])


def test_the_anchor_holds_the_policy_near_its_reference(tiny_fill_dir, tiny_rm, pool, tmp_path):
    start = weights(FluxTransformer2DModel.from_pretrained(tiny_fill_dir / "transformer"))

    def moved(out) -> float:
        after = weights(FluxTransformer2DModel.from_pretrained(out / "policy" / "transformer"))
        return float(sum((after[n] - start[n]).pow(2).sum() for n in start)) ** 0.5

    free = train(config(tiny_fill_dir, "x", tmp_path / "free", "train.steps=3"), reward=tiny_rm, pool=pool)
    held = train(
        config(tiny_fill_dir, "x", tmp_path / "held", "train.steps=3", "train.anchor=1e4"), reward=tiny_rm, pool=pool
    )
    assert moved(held) < 0.8 * moved(free)
    log = [json.loads(line) for line in (held / "log.jsonl").read_text().splitlines()]
    # step 1 starts at the reference itself (no drift); later steps see the drift the previous ones made
    assert log[0]["anchor"] == 0.0 and log[1]["anchor"] > 0.0
    # LoRA under the dynamic algorithm swaps the EMA into the adapters for the reference's prediction: it must
    # happen before the policy's graph is built (else backward fails on weights changed in place)
    sets = ("train.algorithm=dynamic", "model.lora_rank=4", "train.anchor=10")
    lora = train(config(tiny_fill_dir, "x", tmp_path / "lora", *sets), reward=tiny_rm, pool=pool)
    assert (lora / "policy" / "pytorch_lora_weights.safetensors").is_file()


def test_non_finite_loss_is_skipped_and_counted(tiny_fill_dir, tiny_rm, pool, tmp_path):
    class PoisonedOnce:
        """The real tiny reward, except that its first call answers NaN."""

        calls = 0

        def p_yes(self, *args, **kwargs):
            p = tiny_rm.p_yes(*args, **kwargs)
            PoisonedOnce.calls += 1
            return p * float("nan") if PoisonedOnce.calls == 1 else p

    before = weights(FluxTransformer2DModel.from_pretrained(tiny_fill_dir / "transformer"))
    out = train(
        config(tiny_fill_dir, "x", tmp_path / "nan", "train.steps=1", "train.batch_size=1"),
        reward=PoisonedOnce(),
        pool=pool,
    )
    _, meta = checkpoint.load(checkpoint.latest(out / "checkpoints"))
    assert meta["nan_skipped"] == 1
    after = weights(FluxTransformer2DModel.from_pretrained(out / "policy" / "transformer"))
    assert all(torch.equal(before[n], after[n]) for n in before)  # nothing was written into the weights


def test_existing_run_needs_resume_and_resume_needs_a_checkpoint(tiny_fill_dir, tiny_rm, pool, tmp_path):
    cfg = config(tiny_fill_dir, "x", tmp_path / "r", "train.steps=1")
    with pytest.raises(UserError, match="--resume: no complete checkpoint"):
        train(cfg, resume=True, reward=tiny_rm, pool=pool)
    train(cfg, reward=tiny_rm, pool=pool)
    with pytest.raises(UserError, match="already holds checkpoints"):
        train(cfg, reward=tiny_rm, pool=pool)


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "onereward.cli", *args]


def kill_at_first_checkpoint(args: list[str], env: dict, out) -> None:
    """Run `onereward ARGS` and SIGKILL it once its first checkpoint lands in out/checkpoints (or after 120 s)."""
    proc = subprocess.Popen(_cli(*args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while checkpoint.latest(out / "checkpoints") is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # a real kill: no handler runs, no final save
    proc.wait()


def train_args(policy, reward, out, *sets: str) -> list[str]:
    """`onereward train` arguments for a tiny subprocess run: the shared settings, then `sets` (field=value)."""
    fields = [
        "model.reward_accuracy=",
        "train.batch_size=2",
        "sampling.steps=4",
        "data.pool_size=2",
        "train.lr=1e-3",
        "log.eval_every=0",
        "log.image_every=0",
        "log.save_every=2",
        f"model.policy={policy}",
        f"model.reward={reward}",
        f"log.out={out}",
        *sets,
    ]
    return ["train", *(x for f in fields for x in ("--set", f))]


def test_killed_run_resumes_to_the_same_weights(tiny_fill_dir, tiny_rm_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    full = tmp_path / "full"
    subprocess.run(
        _cli(*train_args(tiny_fill_dir, tiny_rm_dir, full, "train.steps=6")), check=True, env=env, capture_output=True
    )

    killed = tmp_path / "killed"
    kill_at_first_checkpoint(train_args(tiny_fill_dir, tiny_rm_dir, killed, "train.steps=6"), env, killed)
    done = checkpoint.latest(killed / "checkpoints")
    assert done is not None and int(done.name.split("-")[1]) < 6, "the kill came too late to test resume"
    resume = [*train_args(tiny_fill_dir, tiny_rm_dir, killed, "train.steps=6"), "--resume"]
    subprocess.run(_cli(*resume), check=True, env=env, capture_output=True)

    a = load_file(checkpoint.latest(full / "checkpoints") / "policy.safetensors")
    b = load_file(checkpoint.latest(killed / "checkpoints") / "policy.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_reference_cache_gives_the_same_training_as_live_rollouts(tiny_fill_dir, tiny_rm, tmp_path):
    from onereward.rl.trainer import build_ref_cache

    cfg = config(tiny_fill_dir, "unused", tmp_path / "live", "data.pool_size=2", "log.image_every=0")
    live = train(cfg, reward=tiny_rm)
    build_ref_cache(cfg, tmp_path / "refs")
    cached_cfg = config(
        tiny_fill_dir,
        "unused",
        tmp_path / "cached",
        "data.pool_size=2",
        "log.image_every=0",
        f"data.ref_cache={tmp_path / 'refs'}",
    )
    cached = train(cached_cfg, reward=tiny_rm)
    a = load_file(checkpoint.latest(live / "checkpoints") / "policy.safetensors")
    b = load_file(checkpoint.latest(cached / "checkpoints") / "policy.safetensors")
    start = weights(FluxTransformer2DModel.from_pretrained(tiny_fill_dir / "transformer"))
    assert any(not torch.equal(a[k], start[k]) for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)


def test_accumulated_micro_batches_train_as_one_large_batch(tiny_fill_dir, tiny_rm, pool, tmp_path):
    """batch 2 x grad_accum 2 draws and weighs exactly what batch 4 does; batch 2 alone is another run."""
    runs = {
        name: train(
            config(tiny_fill_dir, "unused", tmp_path / name, "log.image_every=0", *sets), reward=tiny_rm, pool=pool
        )  # fmt: skip
        for name, sets in {
            "large": ["train.batch_size=4"],
            "accumulated": ["train.batch_size=2", "train.grad_accum=2"],
            "small": ["train.batch_size=2"],
        }.items()
    }
    w = {name: load_file(checkpoint.latest(out / "checkpoints") / "policy.safetensors") for name, out in runs.items()}
    for k in w["large"]:
        torch.testing.assert_close(w["accumulated"][k], w["large"][k], rtol=1e-4, atol=1e-5)  # AdamW, lr 1e-3
    assert any(not torch.allclose(w["small"][k], w["large"][k], rtol=1e-4, atol=1e-5) for k in w["large"])
    logs = {name: [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()] for name, out in runs.items()}
    for a, b in zip(logs["accumulated"], logs["large"], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert {k for k in a if k.startswith("reward/")} == {k for k in b if k.startswith("reward/")}


def _torchrun(out, policy, reward, port, *sets: str, resume: bool = False) -> None:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(port),
        "-m",
        "onereward.cli",
        *train_args(policy, reward, out, *sets),
        *(["--resume"] if resume else []),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


def test_ddp_and_fsdp_on_two_processes_agree_and_fsdp_resumes(tiny_fill_dir, tiny_rm_dir, tmp_path):
    """DDP and torch FSDP2 over gloo: the sharded run trains like the replicated one and resumes from a checkpoint;
    both accumulate micro-batches (gradients reduced once per step) to the weights of one larger batch."""
    _torchrun(tmp_path / "ddp", tiny_fill_dir, tiny_rm_dir, 29541, "train.steps=4")
    _torchrun(tmp_path / "fsdp", tiny_fill_dir, tiny_rm_dir, 29542, "train.steps=4", "model.fsdp=true")
    _torchrun(tmp_path / "fsdp2", tiny_fill_dir, tiny_rm_dir, 29543, "train.steps=2", "model.fsdp=true")
    _torchrun(tmp_path / "fsdp2", tiny_fill_dir, tiny_rm_dir, 29544, "train.steps=4", "model.fsdp=true", resume=True)
    accumulate = ("train.steps=4", "train.batch_size=1", "train.grad_accum=2")  # per process: 1 x 2 = the others' 2
    _torchrun(tmp_path / "ddp_accum", tiny_fill_dir, tiny_rm_dir, 29545, *accumulate)
    _torchrun(tmp_path / "fsdp_accum", tiny_fill_dir, tiny_rm_dir, 29546, *accumulate, "model.fsdp=true")
    ddp_run = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert ddp_run["num_processes"] == 2 and ddp_run["strategy"] == "ddp" and ddp_run["global_batch"] == 4
    assert json.loads((tmp_path / "ddp_accum" / "run.json").read_text())["global_batch"] == 4
    assert json.loads((tmp_path / "fsdp" / "run.json").read_text())["strategy"] == "fsdp"
    ddp = weights(FluxTransformer2DModel.from_pretrained(tmp_path / "ddp" / "policy" / "transformer"))
    fsdp = weights(FluxTransformer2DModel.from_pretrained(tmp_path / "fsdp" / "policy" / "transformer"))
    resumed = weights(FluxTransformer2DModel.from_pretrained(tmp_path / "fsdp2" / "policy" / "transformer"))
    start = weights(FluxTransformer2DModel.from_pretrained(tiny_fill_dir / "transformer"))
    assert any(not torch.equal(start[n], fsdp[n]) for n in start)
    ddp_accum = weights(FluxTransformer2DModel.from_pretrained(tmp_path / "ddp_accum" / "policy" / "transformer"))
    fsdp_accum = weights(FluxTransformer2DModel.from_pretrained(tmp_path / "fsdp_accum" / "policy" / "transformer"))
    for n in ddp:
        torch.testing.assert_close(fsdp[n], ddp[n], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(resumed[n], fsdp[n], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ddp_accum[n], ddp[n], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(fsdp_accum[n], ddp[n], rtol=1e-4, atol=1e-5)
    ema_std = weights(FluxTransformer2DModel.from_pretrained(tmp_path / "ddp" / "ema" / "transformer"))
    ema_fsdp = weights(FluxTransformer2DModel.from_pretrained(tmp_path / "fsdp" / "ema" / "transformer"))
    for n in ema_std:
        torch.testing.assert_close(ema_fsdp[n], ema_std[n], rtol=1e-4, atol=1e-5)


def test_tasks_without_a_reliable_reward_dimension_are_not_trained(tiny_fill_dir, tiny_rm, pool, tmp_path):
    acc = tmp_path / "accuracy.json"
    acc.write_text(
        json.dumps(
            {
                "reward_accuracy": {
                    "fill": {"text_alignment": 0.9, "consistency": 0.5, "structure": 0.5, "aesthetics": 0.5},
                    "extend": {"text_alignment": 0.5, "consistency": 0.5, "structure": 0.5, "aesthetics": 0.5},
                    "removal": {"removal_quality": 0.6},
                }
            }
        )
    )
    cfg = config(
        tiny_fill_dir,
        "x",
        tmp_path / "gate",
        "train.steps=1",
        f"model.reward_accuracy={acc}",
        "train.min_reward_accuracy=0.8",
    )
    out = train(cfg, reward=tiny_rm, pool=pool)
    run = json.loads((out / "run.json").read_text())
    assert run["dimensions_in_loss"] == {"fill": ["text_alignment"], "text": ["text_alignment"]}
    assert set(run["tasks_not_trained"]) == {"extend", "extend_noprompt", "removal"}
    acc.write_text(json.dumps({"reward_accuracy": {"fill": {}, "extend": {}, "removal": {}}}))
    with pytest.raises(UserError, match="every task is excluded"):
        train(
            config(
                tiny_fill_dir,
                "x",
                tmp_path / "gate2",
                "train.steps=1",
                f"model.reward_accuracy={acc}",
                "train.min_reward_accuracy=0.8",
            ),
            reward=tiny_rm,
            pool=pool,
        )


def test_gating_by_task_trains_a_task_only_when_every_dimension_passes(tmp_path):
    acc = tmp_path / "accuracy.json"
    cells = {
        "fill": {"text_alignment": 0.9, "consistency": 0.9, "structure": 0.5, "aesthetics": 0.9},
        "extend": {"text_alignment": 0.5, "consistency": 0.9, "structure": 0.9, "aesthetics": 0.9},
        "removal": {"removal_quality": 0.9},
    }
    acc.write_text(json.dumps({"reward_accuracy": cells}))
    cfg = Config()
    apply_overrides(cfg, [f"model.reward_accuracy={acc}", "train.min_reward_accuracy=0.8"])
    by_dimension = {t: k.tolist() for t, k in dimension_gate(cfg).items()}
    assert by_dimension["fill"] == [True, True, False, True] and by_dimension["extend"] == [False, True, True, True]
    cfg.train.gate = "task"
    by_task = {t: k.tolist() for t, k in dimension_gate(cfg).items()}
    assert by_task == {
        "fill": [False] * 4,
        "text": [False] * 4,  # judged by the fill family's dimensions
        "extend": [False] * 4,
        "extend_noprompt": [True] * 3,  # the extend family without text alignment
        "removal": [True],
    }
    cfg.train.gate = "tasks"
    with pytest.raises(UserError, match="train.gate"):
        cfg.check()


def test_gate_prefers_a_task_rows_own_accuracy_when_it_has_enough_pairs(tmp_path):
    """Table 1 mixes text rendering into fill: a row the judge reads well is trained though its family fails."""
    acc = tmp_path / "accuracy.json"
    family = {
        "fill": {"text_alignment": 0.6, "consistency": 0.9, "structure": 0.65, "aesthetics": 0.8},
        "extend": {"text_alignment": 0.5, "consistency": 0.9, "structure": 0.9, "aesthetics": 0.9},
        "removal": {"removal_quality": 0.9},
    }

    def cell(two_order, n):
        return {"two_order": two_order, "n": n}

    by_task = {
        "fill": {"text_alignment": cell(0.5, 70), "consistency": cell(0.9, 70), "structure": cell(0.5, 70)},
        "text": {
            "text_alignment": cell(0.72, 63),
            "consistency": cell(0.95, 65),
            "structure": cell(0.88, 64),
            "aesthetics": cell(0.81, 61),
        },
        # too few pairs of its own: extend without prompt's aesthetics falls back to the extend family's 0.9
        "extend_noprompt": {"consistency": cell(0.95, 62), "structure": cell(0.6, 65), "aesthetics": cell(0.6, 12)},
        # too few pairs, but significantly below the bar (95% Wilson upper bound 0.61 < 0.7): not the family's 0.9
        "extend": {"consistency": cell(0.45, 40)},
    }
    acc.write_text(json.dumps({"reward_accuracy": family, "reward_accuracy_by_task": by_task}))
    cfg = Config()
    apply_overrides(cfg, [f"model.reward_accuracy={acc}", "train.min_reward_accuracy=0.7"])
    gate = {t: k.tolist() for t, k in dimension_gate(cfg).items()}
    assert gate["text"] == [True] * 4  # its own cells pass; the fill family's text alignment (0.6) would not
    assert gate["fill"] == [False, True, False, True]  # fill's aesthetics has no row cell: the family's 0.8
    assert gate["extend_noprompt"] == [True, False, True]  # structure's own 0.6 fails; aesthetics n < 50
    assert gate["extend"] == [False, False, True, True] and gate["removal"] == [True]
    cfg.train.gate = "task"
    gate = {t: k.tolist() for t, k in dimension_gate(cfg).items()}
    assert gate["text"] == [True] * 4 and gate["fill"] == [False] * 4 and gate["extend_noprompt"] == [False] * 3


def test_wilson_upper_bound_on_known_values():
    from onereward.rl.trainer import wilson_upper

    assert wilson_upper(0.407, 43) == pytest.approx(0.556, abs=1e-3)  # d8621a3's object-fill structure
    assert wilson_upper(0.5, 10_000) == pytest.approx(0.5098, abs=1e-3)  # ~ p + 1.96 sqrt(p (1 - p) / n)
    assert wilson_upper(0.0, 10) == pytest.approx(0.2775, abs=1e-3)  # above 0 even when nothing was right


def test_held_out_curve_starts_at_the_base_and_the_best_candidate_is_released(tiny_fill_dir, tiny_rm, pool, tmp_path):
    cfg = config(tiny_fill_dir, "unused", tmp_path / "run", "log.eval_every=1", "log.eval_size=2")
    out = train(cfg, reward=tiny_rm, pool=pool)
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    evaluated = [row["step"] for row in log if "usability/mean" in row]
    assert evaluated == [0, 1, 2]  # the starting point, then every step
    assert all(0.0 <= row[f"usability/{t}"] <= 1.0 for row in log if "usability/mean" in row for t in TASKS)
    # every task x dimension's mean oracle score beside usability, and nothing else under oracle/
    want = {f"oracle/{t}/{d}" for t, task in TASKS.items() for d in task.dimensions}
    assert all({k for k in row if k.startswith("oracle/")} == want for row in log if "usability/mean" in row)
    assert all(0.0 <= row[k] <= 1.0 for row in log if "usability/mean" in row for k in want)
    meta = json.loads((checkpoint.latest(out / "checkpoints") / "meta.json").read_text())
    assert [step for step, _ in meta["history"]] == [0, 1, 2]
    assert meta["best_step"] in (1, 2)  # step 0 is the base: a baseline, never released as "best"
    assert (out / "best" / "transformer").is_dir()
