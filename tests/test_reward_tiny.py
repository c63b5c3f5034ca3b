"""The tiny Qwen2.5-VL builder: real folder layout, offline loading by path, a tokenizer that keeps queries short."""

import json

import pytest
import torch
from transformers import Qwen2_5_VLForConditionalGeneration

from onereward.reward.processor import ImageOnlyQwen2_5_VLProcessor
from onereward.reward.templates import query_text
from onereward.reward.tiny import QWEN2_VL_CHAT_TEMPLATE, QWEN_SPECIAL_TOKENS, build_tiny_qwen_vl, build_tokenizer
from onereward.tasks import TASKS

SEVEN_B_FILES = [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "chat_template.json",
]


def test_saved_in_the_7b_layout_and_loads_offline(tiny_rm_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in SEVEN_B_FILES:
        assert (tiny_rm_dir / name).is_file(), name
    assert json.loads((tiny_rm_dir / "chat_template.json").read_text())["chat_template"] == QWEN2_VL_CHAT_TEMPLATE
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_rm_dir)
    proc = ImageOnlyQwen2_5_VLProcessor.from_pretrained(tiny_rm_dir)
    assert model.config.architectures == ["Qwen2_5_VLForConditionalGeneration"]
    assert proc.chat_template == QWEN2_VL_CHAT_TEMPLATE
    assert (proc.image_processor.patch_size, proc.image_processor.merge_size) == (8, 2)
    assert model.config.image_token_id == proc.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert model.config.vision_config.out_hidden_size == model.config.text_config.hidden_size


def test_build_is_seeded_and_leaves_global_rng_alone(tmp_path):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_tiny_qwen_vl(tmp_path / "a", seed=0)
    after = torch.rand(1)
    b = build_tiny_qwen_vl(tmp_path / "b", seed=0)
    c = build_tiny_qwen_vl(tmp_path / "c", seed=1)
    assert torch.equal(before, after)
    sd = {
        k: Qwen2_5_VLForConditionalGeneration.from_pretrained(p).state_dict()
        for k, p in {"a": a, "b": b, "c": c}.items()
    }
    assert all(torch.equal(sd["a"][k], sd["b"][k]) for k in sd["a"])
    assert any(not torch.equal(sd["a"][k], sd["c"][k]) for k in sd["a"])
    with pytest.raises(FileExistsError, match="overwrite"):
        build_tiny_qwen_vl(a)


def test_toy_preset_builds(tmp_path):
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(build_tiny_qwen_vl(tmp_path, preset="toy"))
    assert model.config.vision_config.hidden_size == 64
    with pytest.raises(ValueError, match="choose one of"):
        build_tiny_qwen_vl(tmp_path / "x", preset="huge")


def test_tokenizer_answers_specials_and_whole_words():
    tok = build_tokenizer()
    assert tok.tokenize("Yes") == ["Yes"] and tok.tokenize("No") == ["No"]
    for special in QWEN_SPECIAL_TOKENS:
        assert tok.tokenize(special) == [special]
    pre = tok.backend_tokenizer.pre_tokenizer
    for task in TASKS.values():
        for dim in task.dimensions:
            text = query_text(task.name, dim, "red circle")
            words = pre.pre_tokenize_str(text)
            assert len(tok.tokenize(text)) == len(words), text  # one token per word: queries stay short
            assert tok.decode(tok.encode(text)) == text
    assert tok.decode(tok.encode('the words "ZQ" Ünï')) == 'the words "ZQ" Ünï'  # anything else: bytes
