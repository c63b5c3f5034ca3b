"""RewardModel.p_yes: the reward contract, prefix reuse == the naive full forward (values and gradients), gradients
to the first image only, the same numbers as HF's own processor + forward, and the training logits."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration

from onereward.reward.model import RewardModel
from onereward.reward.processor import ImageOnlyQwen2_5_VLProcessor
from onereward.reward.templates import query_messages
from onereward.tasks import TASKS

PROMPTS = ["red circle", 'the words "AB" in blue', "a yellow triangle on stripes"]  # differing suffix lengths


def sharpened(model):
    """Scale the random weights up so P(Yes) varies a lot with image, text and position (at init it sits at ~0.5,
    which would let a wrong position or a lost prefix token pass a tolerance check)."""
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim >= 2:
                p.mul_(8)
    return model


@pytest.fixture(scope="module")
def sharp_rm(tiny_rm_dir):
    rm = RewardModel.from_pretrained(tiny_rm_dir)
    sharpened(rm.model)
    return rm


def images(b, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, size, size, generator=g), torch.rand(b, 3, size, size, generator=g)


@pytest.mark.parametrize("task", ["fill", "extend_noprompt", "removal"])
def test_prefix_reuse_equals_naive_values_and_gradients(sharp_rm, task):
    dims = TASKS[task].dimensions
    first, second = images(3)
    results = {}
    for naive in (False, True):
        x = first.clone().requires_grad_(True)
        p = sharp_rm.p_yes(x, second, task, dims, PROMPTS, naive=naive)  # (B, D)
        (p * torch.arange(1.0, 1 + p.numel()).view_as(p)).sum().backward()  # a different weight per entry
        results[naive] = p.detach(), x.grad
    (p_pre, g_pre), (p_naive, g_naive) = results[False], results[True]
    assert p_pre.shape == (3, len(dims))
    assert p_pre.max() - p_pre.min() > 0.05  # the sharpened model discriminates: the check below means something
    torch.testing.assert_close(p_pre, p_naive, atol=1e-5, rtol=0)
    torch.testing.assert_close(g_pre, g_naive, atol=1e-6, rtol=1e-4)


def test_p_yes_equals_hf_processor_and_forward(sharp_rm):
    """Our whole path (torch pixels, cached ids, prefix reuse) against HF's: processor on PIL images, full forward."""
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(4)]
    t = torch.stack([torch.from_numpy(a).permute(2, 0, 1) for a in arrays]).float() / 255  # (4, 3, 64, 64)
    dims = TASKS["fill"].dimensions
    ours = sharp_rm.p_yes(t[0::2], t[1::2], "fill", dims, PROMPTS[:2])  # pairs (a0, a1), (a2, a3)
    proc, model = sharp_rm.processor, sharp_rm.model
    for b in range(2):
        texts = [
            proc.apply_chat_template(
                query_messages("fill", d, PROMPTS[b] if d == "text_alignment" else None),
                add_generation_prompt=True,
                tokenize=False,
            )
            for d in dims
        ]
        for i, text in enumerate(texts):
            pil = [Image.fromarray(arrays[2 * b]), Image.fromarray(arrays[2 * b + 1])]
            inputs = proc(text=[text], images=pil, return_tensors="pt")
            with torch.no_grad():
                logits = model(**inputs, logits_to_keep=1).logits[0, -1]  # (V,)
            ref = logits[[sharp_rm.yes_id, sharp_rm.no_id]].softmax(-1)[0]
            assert abs(ours[b, i].item() - ref.item()) < 1e-5


def test_gradients_reach_first_image_not_parameters(tiny_rm):
    first, second = images(2, seed=1)
    first.requires_grad_(True)
    p = tiny_rm.p_yes(first, second, "fill", ["structure", "aesthetics"], PROMPTS[:2])
    assert p.shape == (2, 2) and p.dtype == torch.float32 and ((p > 0) & (p < 1)).all()
    p.sum().backward()
    assert (first.grad != 0).float().mean() > 0.99
    assert not tiny_rm.model.training
    assert all(not q.requires_grad and q.grad is None for q in tiny_rm.model.parameters())
    assert not second.requires_grad


def test_conditions_are_ignored_and_no_grad_works(tiny_rm):
    first, second = images(2, seed=2)
    with torch.no_grad():
        a = tiny_rm.p_yes(first, second, "removal", ["removal_quality"], [None, None])
        b = tiny_rm.p_yes(first, second, "removal", ["removal_quality"], ["x", "y"], conditions=[object(), object()])
    assert torch.equal(a, b)  # removal's only dimension does not read the prompt


def test_yes_no_logits_train_every_parameter(tiny_rm_dir):
    """The reward-model trainer's entry: logits (B, D, 2) with gradients on the parameters, same on both paths."""
    model = sharpened(Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_rm_dir))
    rm = RewardModel.from_model(model, ImageOnlyQwen2_5_VLProcessor.from_pretrained(tiny_rm_dir), frozen=False)
    first, second = images(2, seed=3)
    target = torch.tensor([[0, 1, 0, 1], [1, 1, 0, 0]])  # (B, D): 0 = "Yes", 1 = "No"
    grads = {}
    for naive in (False, True):
        model.zero_grad()
        logits = rm.yes_no_logits(first, second, "fill", TASKS["fill"].dimensions, PROMPTS[:2], naive=naive)
        assert logits.shape == (2, 4, 2)
        torch.nn.functional.cross_entropy(logits.reshape(-1, 2), target.reshape(-1)).backward()
        grads[naive] = {n: q.grad.clone() for n, q in model.named_parameters() if q.grad is not None}
    assert len(grads[False]) == len(list(model.parameters()))  # every parameter gets a gradient
    assert all(g.abs().sum() > 0 for g in grads[False].values())
    for name, g in grads[False].items():
        torch.testing.assert_close(g, grads[True][name], atol=1e-5, rtol=1e-3, msg=name)


def test_prefix_path_refuses_checkpointing_in_train_mode(tiny_rm_dir):
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_rm_dir)
    rm = RewardModel.from_model(model, ImageOnlyQwen2_5_VLProcessor.from_pretrained(tiny_rm_dir), frozen=False)
    # transformers' own checkpointing, under its name in this version (activation_ in 5.24, gradient_ in 5.17)
    (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
    model.train()
    first, second = images(1)
    with pytest.raises(ValueError, match="naive=True"):
        rm.yes_no_logits(first, second, "fill", ["structure"], ["x"])
    assert rm.yes_no_logits(first, second, "fill", ["structure"], ["x"], naive=True).shape == (1, 1, 2)


def saved_bytes_and_grad(rm, first, second, dims, naive=False):
    """(bytes of the tensors autograd keeps for backward, P(Yes), d sum P(Yes) / d first) of one p_yes call."""
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    x = first.clone().requires_grad_(True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        p = rm.p_yes(x, second, "fill", dims, PROMPTS[:2], naive=naive)
    p.sum().backward()
    return sum(saved), p.detach(), x.grad


def test_gradient_checkpointing_keeps_less_and_gives_the_same_reward_and_gradients(tiny_rm_dir):
    """The RL reward with model.gradient_checkpointing: the judge's activations are recomputed in backward (fewer
    bytes kept), P(Yes) and the gradient to the first image unchanged, the language model's KV cache intact."""
    dims = TASKS["fill"].dimensions
    first, second = images(2, size=128)
    plain = RewardModel.from_pretrained(tiny_rm_dir)
    sharpened(plain.model)
    ckpt = RewardModel.from_pretrained(tiny_rm_dir)
    ckpt.model.load_state_dict(plain.model.state_dict())
    ckpt.enable_gradient_checkpointing()
    kept_plain, p_plain, g_plain = saved_bytes_and_grad(plain, first, second, dims)
    kept_ckpt, p_ckpt, g_ckpt = saved_bytes_and_grad(ckpt, first, second, dims)
    assert p_plain.max() - p_plain.min() > 0.05
    torch.testing.assert_close(p_ckpt, p_plain, atol=1e-6, rtol=0)
    torch.testing.assert_close(g_ckpt, g_plain, atol=1e-6, rtol=1e-4)
    assert kept_ckpt < 0.8 * kept_plain, (kept_ckpt, kept_plain)
    assert all(q.grad is None for q in ckpt.model.parameters())  # still a frozen judge


@pytest.mark.parametrize("naive", [False, True])
def test_language_model_checkpointing_keeps_less_with_the_same_reward_and_gradients(tiny_rm_dir, naive):
    """The language model's layers recomputed too (`checkpoint_with_cache`): fewer bytes kept than with the vision
    tower alone, and the same P(Yes) and gradients, on the prefix path (its KV cache run through the checkpointed
    layers) and the naive one (no cache)."""
    dims = TASKS["fill"].dimensions
    first, second = images(2)
    runs = {}
    for lm in (False, True):
        rm = RewardModel.from_pretrained(tiny_rm_dir)
        sharpened(rm.model)
        rm.enable_gradient_checkpointing(language_model=lm)
        runs[lm] = saved_bytes_and_grad(rm, first, second, dims, naive=naive)
    assert runs[True][0] < 0.8 * runs[False][0], (runs[True][0], runs[False][0])
    torch.testing.assert_close(runs[True][1], runs[False][1], atol=1e-6, rtol=0)
    torch.testing.assert_close(runs[True][2], runs[False][2], atol=1e-6, rtol=1e-4)


def test_gradient_checkpointing_in_training_keeps_prefix_reuse_and_the_gradients(tiny_rm_dir):
    """train-reward --gradient-checkpointing: the model in train mode, trainable; both towers are recomputed, the
    prefix path still runs (its KV cache through the checkpointed language layers), and every parameter gets the
    same gradient."""
    grads = {}
    for ckpt in (False, True):
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_rm_dir)
        sharpened(model)
        rm = RewardModel.from_model(model, ImageOnlyQwen2_5_VLProcessor.from_pretrained(tiny_rm_dir), frozen=False)
        model.train()
        if ckpt:
            rm.enable_gradient_checkpointing()
        first, second = images(2)
        rm.yes_no_logits(first, second, "fill", TASKS["fill"].dimensions, PROMPTS[:2])[..., 0].sum().backward()
        grads[ckpt] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert grads[True].keys() == grads[False].keys() and any("visual" in n for n in grads[True])
    for n, g in grads[False].items():
        torch.testing.assert_close(grads[True][n], g, atol=1e-6, rtol=1e-4)


def test_a_judge_trained_at_one_size_resizes_other_images_to_it(tiny_rm_dir, tmp_path):
    """A reward model from `train-reward --image-size 32` (its onereward.json) judges 64 px images as it would their
    32 px versions, and the gradient still reaches the 64 px first image."""
    import json
    import shutil

    import torch.nn.functional as F

    folder = shutil.copytree(tiny_rm_dir, tmp_path / "rm-at-32")
    (folder / "onereward.json").write_text(json.dumps({"image_size": 32}))
    rm = RewardModel.from_pretrained(folder)
    sharpened(rm.model)
    assert rm.image_size == 32
    first, second = images(2, size=64)
    x = first.clone().requires_grad_(True)
    p = rm.p_yes(x, second, "removal", ["removal_quality"], ["", ""])  # (2, 1)
    p.sum().backward()
    small = [F.interpolate(t, size=(32, 32), mode="bicubic", antialias=True).clamp(0, 1) for t in (first, second)]
    torch.testing.assert_close(p.detach(), rm.p_yes(*small, "removal", ["removal_quality"], ["", ""]))
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_bad_calls_teach(tiny_rm):
    first, second = images(2)
    with pytest.raises(ValueError, match="subset of task 'removal'"):
        tiny_rm.p_yes(first, second, "removal", ["structure"], ["", ""])
    with pytest.raises(ValueError, match="subset"):
        tiny_rm.p_yes(first, second, "fill", ["structure", "structure"], ["", ""])
    with pytest.raises(ValueError, match="one prompt per pair"):
        tiny_rm.p_yes(first, second, "fill", ["structure"], ["x"])
    with pytest.raises(ValueError, match="same shape"):
        tiny_rm.p_yes(first, second[:, :, :32], "fill", ["structure"], ["x", "y"])
    with pytest.raises(ValueError, match="needs the user's prompt"):
        tiny_rm.p_yes(first, second, "fill", ["text_alignment"], ["x", None])


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # inside peft
def test_lora_wrapped_model_trains_its_adapters(tiny_rm_dir):
    """The reward-model trainer may wrap the VLM in peft LoRA; the wrapper's injected layers are the ones we run."""
    from peft import LoraConfig, get_peft_model

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_rm_dir)
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=r".*language_model.*\.(q_proj|v_proj)"))
    rm = RewardModel.from_model(lora, ImageOnlyQwen2_5_VLProcessor.from_pretrained(tiny_rm_dir), frozen=False)
    first, second = images(1)
    rm.yes_no_logits(first, second, "fill", ["structure", "aesthetics"], ["x"])[..., 0].sum().backward()
    trainable = {n: q for n, q in lora.named_parameters() if q.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert all(q.grad is not None for q in trainable.values())
    assert any(q.grad.abs().sum() > 0 for n, q in trainable.items() if "lora_B" in n)  # lora_B starts at 0


def test_checkpoint_with_cache_refuses_a_cache_it_cannot_read():
    """A cache layout it does not know must stop the run, never silently drop the cached image prefix."""
    from types import SimpleNamespace

    from onereward.reward.model import checkpoint_with_cache

    class OpaqueCache:  # holds 5 cached tokens, but not as layers[i].keys
        def get_seq_length(self, layer_idx=0):
            return 5

    layer = SimpleNamespace(self_attn=SimpleNamespace(layer_idx=0))
    with pytest.raises(RuntimeError, match="cannot read this transformers version's KV cache"):
        checkpoint_with_cache(layer, lambda h, **kw: h, torch.zeros(1, 2, 4, requires_grad=True), cache=OpaqueCache())
