"""A tiny Qwen2.5-VL reward model, built offline from code and saved in the Qwen2.5-VL-7B-Instruct folder layout.

`build_tiny_qwen_vl(out_dir)` writes config.json, model.safetensors, the tokenizer files, preprocessor_config.json and
the chat template, so that `RewardModel.from_pretrained(out_dir)` loads it through exactly the code path that loads
Qwen/Qwen2.5-VL-7B-Instruct (`Qwen2_5_VLForConditionalGeneration.from_pretrained` + the image-only processor), with
HF_HUB_OFFLINE=1. Nothing here touches a model hub.

The tokenizer is a byte-level BPE with Qwen2's pre-tokenizer, Qwen's special tokens, and whole-word merges for every
word of the query templates (plus a few prompt words), so a query is ~30 tokens instead of ~200 bytes; "Yes" and "No"
are single tokens. Any other text still tokenizes (byte fallback), just longer.

The image processor uses patch 8 and merge 2: a 64x64 image is a whole number of 16x16 merged patches, so it is
never resized (the differentiable pixel path is then bit-exact) and gives 16 tokens per image.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import AddedToken
from tokenizers.pre_tokenizers import ByteLevel
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2Tokenizer
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from onereward.reward.templates import NO, YES, template_texts
from onereward.tasks import EXTEND_NOPROMPT_PROMPT, REMOVAL_PROMPT

# Qwen2's special tokens, in Qwen's order (ids 151643-151656 in the real tokenizer; here they follow the vocabulary).
QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# The chat template of Qwen/Qwen2.5-VL-7B-Instruct (chat_template.json), verbatim.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in "
    "content or 'image_url' in content %}{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}"
    "Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] "
    "== 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}"
    "Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content "
    "%}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "<|im_start|>assistant\n{% endif %}"
)

# Words that prompts of the toy world (and the tasks' fixed prompts) use; they get whole-word tokens too.
PROMPT_WORDS = " ".join(
    [
        "red green blue yellow magenta cyan orange purple pink brown white black grey gray",
        "circle square triangle cross star disc box shape object the a an of on in words text",
        REMOVAL_PROMPT,
        EXTEND_NOPROMPT_PROMPT,
    ]
)

# Sizes of the two presets. "test": the smallest that exercises every code path, for unit tests. "toy": the
# reward model of the 64x64 toy world, sized as the prototype's (PILOT.md section 4: 64 wide x 2 deep, both towers).
PRESETS: dict[str, dict[str, int]] = {
    "test": dict(v_hidden=32, v_depth=2, v_heads=2, hidden=64, layers=2, heads=4, kv_heads=2),
    "toy": dict(v_hidden=64, v_depth=2, v_heads=4, hidden=64, layers=2, heads=4, kv_heads=2),
}
PATCH, MERGE, TEMPORAL = 8, 2, 2
MIN_PIXELS, MAX_PIXELS = (PATCH * MERGE) ** 2, (PATCH * MERGE) ** 2 * 1024  # 1 to 1024 merged tokens per image


def _bpe(word: str, ranks: dict[tuple[str, str], int]) -> list[str]:
    """Byte-level BPE of one pre-token under `ranks` (lowest rank merges first), as the tokenizers library does."""
    parts = list(word)
    while len(parts) > 1:
        pairs = [(ranks.get((a, b), len(ranks)), i) for i, (a, b) in enumerate(zip(parts, parts[1:], strict=False))]
        rank, i = min(pairs)
        if rank == len(ranks):
            break
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return parts


def whole_word_merges(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level vocabulary and merges under which every word (a byte-level pre-token) is a single token.

    Each word's merges are appended after all earlier ones and chain its current pieces left to right, so BPE
    (lowest rank first) rebuilds it whole and later words cannot split it.
    """
    vocab = {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in words:
        pieces = _bpe(word, ranks)
        cur = pieces[0]
        for nxt in pieces[1:]:
            ranks[(cur, nxt)] = len(merges)
            merges.append((cur, nxt))
            cur += nxt
            vocab.setdefault(cur, len(vocab))
    return vocab, merges


def build_tokenizer() -> Qwen2Tokenizer:
    """The tiny Qwen2 tokenizer: byte-level BPE, whole-word merges for the templates, Qwen specials, chat template."""
    bare = Qwen2Tokenizer(vocab={ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}, merges=[])
    pre = bare.backend_tokenizer.pre_tokenizer
    texts = template_texts() + ["You are a helpful assistant.", "system\nuser\nassistant\n", PROMPT_WORDS]
    texts += [f" {YES} {NO}", f"{YES}{NO}"]  # "Yes"/"No" whole, with and without a leading space
    bases = [w.removeprefix("Ġ") for t in texts for w, _ in pre.pre_tokenize_str(t)]
    words = dict.fromkeys(w for b in bases for w in (b, "Ġ" + b))  # each word with and without a leading space
    vocab, merges = whole_word_merges(sorted(words, key=len))
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, model_max_length=32768)
    special = [AddedToken(s, special=True, normalized=False) for s in QWEN_SPECIAL_TOKENS]
    tok.add_tokens(special, special_tokens=True)
    tok.eos_token, tok.pad_token = "<|im_end|>", "<|endoftext|>"
    tok.chat_template = QWEN2_VL_CHAT_TEMPLATE
    return tok


def build_image_processor() -> Qwen2VLImageProcessorPil:
    """Qwen2-VL's image processor at patch 8, merge 2 (the 7B uses patch 14): 64x64 -> 8x8 patches -> 16 tokens."""
    return Qwen2VLImageProcessorPil(
        patch_size=PATCH, merge_size=MERGE, temporal_patch_size=TEMPORAL, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS
    )


def tiny_config(tok: Qwen2Tokenizer, preset: str = "test") -> Qwen2_5_VLConfig:
    """A Qwen2_5_VLConfig of the preset's size whose token ids are the tokenizer's."""
    if preset not in PRESETS:
        raise ValueError(f"unknown tiny reward-model preset {preset!r}; choose one of {', '.join(PRESETS)}")
    p = PRESETS[preset]
    half_head = p["hidden"] // p["heads"] // 2  # mrope_section must sum to head_dim / 2
    hw = 3 * half_head // 8
    mrope = [half_head - 2 * hw, hw, hw]  # temporal, height, width: the 7B's [16, 24, 24] scaled down
    ids = tok.convert_tokens_to_ids
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=p["hidden"],
            intermediate_size=2 * p["hidden"],
            num_hidden_layers=p["layers"],
            num_attention_heads=p["heads"],
            num_key_value_heads=p["kv_heads"],
            max_position_embeddings=32768,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": mrope},
            bos_token_id=None,
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
        ),
        vision_config=dict(
            depth=p["v_depth"],
            hidden_size=p["v_hidden"],
            intermediate_size=2 * p["v_hidden"],
            num_heads=p["v_heads"],
            patch_size=PATCH,
            spatial_merge_size=MERGE,
            temporal_patch_size=TEMPORAL,
            out_hidden_size=p["hidden"],
            window_size=PATCH * MERGE * 2,
            fullatt_block_indexes=[p["v_depth"] - 1],
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )


def qwen25_vl_7b_config(tok: Qwen2Tokenizer | None = None) -> Qwen2_5_VLConfig:
    """Qwen/Qwen2.5-VL-7B-Instruct's architecture (its config.json as transformers 5 spells it), about 8.3B params.

    With `tok`, the special-token ids are that tokenizer's (random-weight benchmarks use the tiny tokenizer, whose ids
    differ from the 7B's; the layout and compute are the same), else the 7B's own ids.
    """
    ids = tok.convert_tokens_to_ids if tok is not None else None
    special = {
        "image_token_id": ("<|image_pad|>", 151655),
        "video_token_id": ("<|video_pad|>", 151656),
        "vision_start_token_id": ("<|vision_start|>", 151652),
        "vision_end_token_id": ("<|vision_end|>", 151653),
    }
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=152064,
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            max_position_embeddings=128000,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]},
            bos_token_id=151643,
            eos_token_id=ids("<|im_end|>") if ids else 151645,
        ),
        vision_config=dict(
            depth=32,
            hidden_size=1280,
            intermediate_size=3420,
            num_heads=16,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=112,
            out_hidden_size=3584,
            fullatt_block_indexes=[7, 15, 23, 31],
            tokens_per_second=2,
        ),
        **{k: (ids(name) if ids else real) for k, (name, real) in special.items()},
        tie_word_embeddings=False,
    )


def build_tiny_qwen_vl(out_dir: str | Path, preset: str = "test", seed: int = 0, overwrite: bool = False) -> Path:
    """Build a randomly initialised tiny Qwen2.5-VL and its processor; save both to `out_dir` and return it."""
    out = Path(out_dir)
    if (out / "config.json").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds a model; choose another folder or pass overwrite=True")
    tok = build_tokenizer()
    config = tiny_config(tok, preset)
    with torch.random.fork_rng():  # transformers' initialisers read the global RNG; leave the caller's untouched
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    # The files of Qwen/Qwen2.5-VL-7B-Instruct: config.json, generation_config.json, model*.safetensors,
    # tokenizer.json + tokenizer_config.json, preprocessor_config.json, chat_template.json.
    model.save_pretrained(out)
    tok.save_pretrained(out)
    build_image_processor().save_pretrained(out)
    (out / "chat_template.json").write_text(json.dumps({"chat_template": QWEN2_VL_CHAT_TEMPLATE}, indent=2) + "\n")
    return out
