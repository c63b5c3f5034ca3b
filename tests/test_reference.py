"""The two algorithms' Reference objects: frozen stays frozen, dynamic equals the EMA of the policy."""

import pytest
import torch
from diffusers import FluxTransformer2DModel
from peft import LoraConfig

from onereward.rl.reference import EMAReference, FrozenReference, frozen_copy, make_reference, trainable


def tiny_transformer() -> FluxTransformer2DModel:
    torch.manual_seed(0)
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=8,
        out_channels=4,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=8,
        pooled_projection_dim=8,
        axes_dims_rope=(2, 2, 4),
    )


def fake_step(module, scale=0.1):
    with torch.no_grad():
        for _, p in trainable(module):
            p.add_(scale * torch.randn_like(p))


def lora(module):
    module.requires_grad_(False)
    module.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k", "to_v"], init_lora_weights=False))
    return module


def params(m):
    return {n: p.detach().clone() for n, p in m.named_parameters()}


def test_standard_reference_stays_frozen_and_keeps_an_ema():
    policy = tiny_transformer()
    start = params(policy)
    ref = FrozenReference(policy, tau=0.5)
    expected = {n: p.clone() for n, p in start.items()}
    for _ in range(3):
        fake_step(policy)
        ref.update()
        for n, p in policy.named_parameters():
            expected[n] = 0.5 * expected[n] + 0.5 * p.detach()
    with ref.model() as m:
        assert m is not policy
        for n, p in m.named_parameters():
            assert torch.equal(p, start[n]) and not p.requires_grad
    ema = ref.exports()["ema"].state_dict()
    for n in ema:
        torch.testing.assert_close(ema[n], expected[n])


def test_dynamic_reference_is_the_ema_of_the_policy():
    policy = tiny_transformer()
    ref = make_reference("dynamic", policy, tau=0.9)
    assert isinstance(ref, EMAReference) and not ref.cacheable
    expected = params(policy)
    for _ in range(4):
        fake_step(policy)
        ref.update()
        for n, p in policy.named_parameters():
            expected[n] = 0.9 * expected[n] + 0.1 * p.detach()
    with ref.model() as m:
        assert m is not policy
        for n, p in m.named_parameters():
            torch.testing.assert_close(p.detach(), expected[n])


def test_lora_standard_reference_is_the_base_model_with_adapters_off():
    base = tiny_transformer()
    base_out = params(base)
    policy = lora(tiny_transformer())
    ref = FrozenReference(policy, tau=0.9)
    assert ref._frozen is None  # no second copy of the weights
    assert all("lora_" in n for n in ref.ema.names)
    x = dict(
        hidden_states=torch.randn(1, 4, 8),
        encoder_hidden_states=torch.randn(1, 2, 8),
        pooled_projections=torch.randn(1, 8),
        timestep=torch.tensor([0.5]),
        img_ids=torch.zeros(4, 3),
        txt_ids=torch.zeros(2, 3),
    )
    base.load_state_dict({n: base_out[n] for n in base_out})
    with torch.no_grad():
        want = base(**x).sample
        with ref.model() as m:
            got = m(**x).sample
        adapted = policy(**x).sample
    torch.testing.assert_close(got, want)
    assert not torch.allclose(adapted, want)  # the adapter is back on afterwards


def test_lora_dynamic_reference_swaps_the_ema_in_and_restores_the_policy():
    policy = lora(tiny_transformer())
    ref = EMAReference(policy, tau=0.5)
    before = {n: p.detach().clone() for n, p in trainable(policy)}
    fake_step(policy)
    ref.update()
    now = {n: p.detach().clone() for n, p in trainable(policy)}
    with ref.model() as m:
        assert m is policy
        for n, p in trainable(m):
            torch.testing.assert_close(p.detach(), 0.5 * before[n] + 0.5 * now[n])
    for n, p in trainable(policy):
        assert torch.equal(p.detach(), now[n])


@pytest.mark.parametrize("algorithm", ["standard", "dynamic"])
def test_reference_state_round_trips(algorithm):
    policy = tiny_transformer()
    ref = make_reference(algorithm, policy, tau=0.7)
    fake_step(policy)
    ref.update()
    state = {k: {n: t.clone() for n, t in v.items()} for k, v in ref.state_dict().items()}
    other = make_reference(algorithm, policy, tau=0.7)
    other.load_state_dict(state)
    for a, b in zip(other.ema.shadow, ref.ema.shadow, strict=True):
        assert torch.equal(a, b)


def test_dynamic_reference_holds_no_second_copy(monkeypatch):
    """The full fine-tuning dynamic reference's EMA shadows ARE its module's parameters, and building it copies
    nothing besides the module itself (no throwaway clone of the policy)."""
    policy = tiny_transformer()
    module = frozen_copy(policy)

    def no_clone(*_, **__):
        raise AssertionError("EMAReference cloned a tensor")

    monkeypatch.setattr(torch.Tensor, "clone", no_clone)
    ref = EMAReference(policy, tau=0.9, copy_module=lambda _: module)
    monkeypatch.undo()
    with ref.model() as m:
        module_storages = {p.untyped_storage().data_ptr() for p in m.parameters()}
    shadow_storages = {s.untyped_storage().data_ptr() for s in ref.ema.shadow}
    assert len(ref.ema.shadow) == len(list(policy.parameters()))
    assert shadow_storages == module_storages


def test_ema_swap_trades_in_place_and_restores_exactly():
    """swapped_into loads the EMA, then gives back the policy's and the EMA's values bit for bit."""
    policy = tiny_transformer()
    ref = FrozenReference(policy, tau=0.5)
    fake_step(policy)
    ref.update()
    now = params(policy)
    ema = {n: s.clone() for n, s in ref.ema.state_dict().items()}
    with ref.ema.swapped_into([p for _, p in trainable(policy)]):
        for n, p in policy.named_parameters():
            assert torch.equal(p, ema[n])
    for n, p in policy.named_parameters():
        assert torch.equal(p, now[n])
    for n, s in ref.ema.state_dict().items():
        assert torch.equal(s, ema[n])


def test_ema_swap_into_bf16_weights_keeps_the_fp32_shadow():
    policy = tiny_transformer().to(torch.bfloat16)
    ref = FrozenReference(policy, tau=0.5)
    fake_step(policy)
    ref.update()
    now = params(policy)
    ema = {n: s.clone() for n, s in ref.ema.state_dict().items()}
    assert all(s.dtype == torch.float32 for s in ema.values())
    with ref.ema.swapped_into([p for _, p in trainable(policy)]):
        for n, p in policy.named_parameters():
            assert torch.equal(p, ema[n].to(torch.bfloat16))
    for n, p in policy.named_parameters():
        assert torch.equal(p, now[n])
    for n, s in ref.ema.state_dict().items():
        assert torch.equal(s, ema[n])
