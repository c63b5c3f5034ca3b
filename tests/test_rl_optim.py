"""The memory-saving optimiser options: Adafactor, and the optimiser step fused into backward (rl/optim.py)."""

import os
import subprocess

import pytest
import torch
from diffusers import FluxTransformer2DModel
from safetensors.torch import load_file
from test_rl import _cli, config, kill_at_first_checkpoint, train_args, weights

from onereward import checkpoint
from onereward.config import Config, apply_overrides
from onereward.errors import UserError
from onereward.rl.data import ConditionPool
from onereward.rl.optim import FusedBackward, make_optimizer
from onereward.rl.trainer import train
from onereward.tasks import TASKS
from onereward.toyworld import make_conditions

ADAFACTOR = ("train.optimizer=adafactor", "train.grad_clip=0")
FUSED = (*ADAFACTOR, "train.fused_backward=true")


@pytest.fixture(scope="module")
def pool():
    return ConditionPool([c for t in TASKS for c in make_conditions(t, 3, seed=0, size=64, split="rl")])


def policy_weights(out) -> dict[str, torch.Tensor]:
    return load_file(checkpoint.latest(out / "checkpoints") / "policy.safetensors")


def test_fused_adafactor_step_changes_every_trainable_parameter_and_nothing_else(
    tiny_fill_dir, tiny_rm, pool, tmp_path
):
    before = weights(FluxTransformer2DModel.from_pretrained(tiny_fill_dir / "transformer"))
    rm_before = weights(tiny_rm.model)
    out = train(config(tiny_fill_dir, "unused", tmp_path / "run", "train.steps=1", *FUSED), reward=tiny_rm, pool=pool)
    after = weights(FluxTransformer2DModel.from_pretrained(out / "policy" / "transformer"))
    unchanged = [n for n in before if torch.equal(before[n], after[n])]
    assert unchanged == [], f"{len(unchanged)} policy tensors did not move, e.g. {unchanged[:3]}"
    assert all(torch.equal(p, rm_before[n]) for n, p in weights(tiny_rm.model).items())
    assert (out / "ema" / "transformer").is_dir()  # the reference update (EMA) still ran after the fused step


def test_fused_lora_moves_the_adapters_only(tiny_fill_dir, tiny_rm, pool, tmp_path):
    from onereward.models.fill import FillModel

    def run(steps: int):
        fill = FillModel.from_pretrained(tiny_fill_dir)
        sets = ("model.lora_rank=4", f"train.steps={steps}", *FUSED)
        out = train(config(tiny_fill_dir, "x", tmp_path / f"lora{steps}", *sets), reward=tiny_rm, pool=pool, fill=fill)
        return weights(fill.transformer), load_file(out / "policy" / "pytorch_lora_weights.safetensors")

    base = weights(FluxTransformer2DModel.from_pretrained(tiny_fill_dir / "transformer"))
    _, init = run(0)  # the same seed draws the same adapter initialisation
    after, trained = run(2)  # 2 steps: lora_A has no gradient while lora_B is still 0
    assert init.keys() == trained.keys() and all(not torch.equal(init[k], trained[k]) for k in init)
    frozen = [n for n in after if "lora_" not in n]
    assert len(frozen) == len(base)
    assert all(torch.equal(after[n], base[n.replace(".base_layer", "")]) for n in frozen)


def test_fused_gives_the_weights_of_the_unfused_step(tiny_fill_dir, tiny_rm, pool, tmp_path):
    plain = train(config(tiny_fill_dir, "x", tmp_path / "plain", *ADAFACTOR), reward=tiny_rm, pool=pool)
    fused = train(config(tiny_fill_dir, "x", tmp_path / "fused", *FUSED), reward=tiny_rm, pool=pool)
    a, b = policy_weights(plain), policy_weights(fused)
    start = weights(FluxTransformer2DModel.from_pretrained(tiny_fill_dir / "transformer"))
    assert a.keys() == b.keys() and all(not torch.equal(a[k], start[k]) for k in a)
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-7)


def test_a_second_fused_run_on_the_same_model_steps_it_once_per_backward(tiny_fill_dir, tiny_rm, pool, tmp_path):
    """A fused run leaves no hook on the caller's model: a second run (another algorithm, say, as
    bench/gpu_fullsize.py does) is stepped by its own optimiser alone, as if the model were fresh."""
    from onereward.models.fill import FillModel

    def run(fill, name: str):
        sets = ("train.steps=1", "train.algorithm=dynamic", *FUSED)
        train(config(tiny_fill_dir, "x", tmp_path / name, *sets), reward=tiny_rm, pool=pool, fill=fill)
        return weights(fill.transformer)

    twice = FillModel.from_pretrained(tiny_fill_dir)
    run(twice, "first")
    assert not any(hasattr(p, "_onereward_fused_step") for p in twice.transformer.parameters())
    once = FillModel.from_pretrained(tiny_fill_dir)
    once.transformer.load_state_dict(twice.transformer.state_dict())
    a, b = run(twice, "second"), run(once, "fresh")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_new_fused_optimiser_replaces_the_hooks_of_an_earlier_one():
    lin = torch.nn.Linear(3, 2)
    train_cfg = apply_overrides(Config(), list(FUSED)).train
    make_optimizer(list(lin.named_parameters()), train_cfg, 1)  # abandoned without close(), e.g. a run that failed
    make_optimizer(list(lin.named_parameters()), train_cfg, 1)
    lin(torch.ones(1, 3)).sum().backward()  # the earlier hook would step first and free the grad under this one
    assert lin.weight.grad is None


def test_fused_step_skips_a_parameter_whose_gradient_is_not_finite():
    lin = torch.nn.Linear(3, 2)
    before = weights(lin)
    opt = make_optimizer(list(lin.named_parameters()), apply_overrides(Config(), list(FUSED)).train, 1)
    lin.bias.register_hook(lambda g: g * float("nan"))
    lin(torch.ones(1, 3)).sum().backward()
    assert isinstance(opt, FusedBackward)
    assert lin.weight.grad is None and not torch.equal(lin.weight, before["weight"])  # stepped, gradient freed
    assert torch.equal(lin.bias, before["bias"]) and lin.bias.grad.isnan().all()  # kept for the trainer's guard


def test_killed_fused_run_resumes_to_the_same_weights(tiny_fill_dir, tiny_rm_dir, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    sets = ("train.steps=6", *FUSED)
    full = tmp_path / "full"
    args = train_args(tiny_fill_dir, tiny_rm_dir, full, *sets)
    subprocess.run(_cli(*args), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    kill_at_first_checkpoint(train_args(tiny_fill_dir, tiny_rm_dir, killed, *sets), env, killed)
    done = checkpoint.latest(killed / "checkpoints")
    assert done is not None and int(done.name.split("-")[1]) < 6, "the kill came too late to test resume"
    resume = [*train_args(tiny_fill_dir, tiny_rm_dir, killed, *sets), "--resume"]
    subprocess.run(_cli(*resume), check=True, env=env, capture_output=True)

    a, b = policy_weights(full), policy_weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # Adafactor's factored state came back too: resuming with a fresh optimiser would give other weights
    state = torch.load(checkpoint.latest(killed / "checkpoints") / "optimizer.pt", weights_only=False)
    state = state["per_parameter"]
    assert any("row_var" in s["state"][0] for s in state.values())


def test_resume_refuses_another_optimizer(tiny_fill_dir, tiny_rm, pool, tmp_path):
    train(config(tiny_fill_dir, "x", tmp_path / "r", "train.steps=1", *FUSED), reward=tiny_rm, pool=pool)
    with pytest.raises(UserError, match="optimizer or fused_backward"):
        train(config(tiny_fill_dir, "x", tmp_path / "r", "train.steps=2"), resume=True, reward=tiny_rm, pool=pool)


@pytest.mark.parametrize(
    "sets, message",
    [
        (["train.optimizer=sgd"], "use 'adamw' or 'adafactor'"),
        (["train.fused_backward=true"], "set train.grad_clip=0"),
        ([*FUSED, "model.mixed_precision=fp16"], "use model.mixed_precision=bf16"),
        ([*FUSED, "train.grad_accum=2"], "set train.grad_accum=1"),
        (["train.grad_accum=0"], "use 1 \\(no accumulation\\)"),
    ],
)
def test_config_errors_are_one_line_and_say_what_to_do(sets, message):
    with pytest.raises(UserError, match=message) as e:
        apply_overrides(Config(), sets).check()
    assert "\n" not in str(e.value)


def test_fused_backward_refuses_more_than_one_process():
    lin = torch.nn.Linear(3, 2)
    with pytest.raises(UserError, match="run one process") as e:
        make_optimizer(list(lin.named_parameters()), apply_overrides(Config(), list(FUSED)).train, 2)
    assert "\n" not in str(e.value)
