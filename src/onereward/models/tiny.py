"""Tiny FLUX.1-Fill-dev pipelines built from code, offline, saved in the real folder layout.

Every component of FLUX.1-Fill-dev is made at a tiny size (no hub, no downloads): the transformer keeps Fill's input
layout (packed noisy latents + packed masked-image latents + packed mask), with `in_channels` derived from the VAE,
and both tokenizers are built from an in-code vocabulary that covers the toy world's words (with a character
fallback for anything else). The folder it writes loads through exactly the code path FLUX.1-Fill-dev does
(`FillModel.from_pretrained`).

Presets:
- "test": the cheapest model that keeps the REAL layout (VAE /8, latent C=16: in 384, out 64), for tests.
- "bench", "bench_large", "bench_xl": ~71M, ~283M and ~535M-parameter transformers for bench/rl_memory.py.
- "toy": the embedded default's base model: VAE /4 with latent C=4 (8x8 = 64 tokens of 16 dims at 64x64; low-dim
  latents keep velocity prediction viable, PILOT.md section 7), transformer d64 with 2 double + 4 single blocks.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

import torch

from onereward.errors import UserError
from onereward.io import atomic_dir, occupied

# Words that become single tokens in both tokenizers; anything else falls back to characters (T5) or bytes (CLIP).
TOY_WORDS: tuple[str, ...] = (
    # colours and shapes of the toy world
    "red", "green", "blue", "yellow", "magenta", "cyan", "orange", "purple", "pink", "white", "black", "grey", "gray",
    "brown", "circle", "square", "triangle", "cross", "circles", "squares", "triangles", "crosses",
    # text rendering (`the words "AB"`), removal, extend without prompt, the negative prompt
    "the", "words", "word", "text", "a", "an", "of", "with", "and", "in", "on",
    "remove", "high", "definition", "perfect", "composition", "nsfw",
    # positions and sizes a prompt may mention
    "left", "right", "top", "bottom", "center", "small", "large", "big",
)  # fmt: skip

CLIP_MAX_LENGTH = 77  # CLIP's own context length, as FLUX uses it
# FLUX uses 512. The longest toy prompt, extend without prompt's "high-definition, perfect composition", is 16 tokens
# (hyphen and comma fall back to characters); every transformer call pays for the text tokens: 16 instead of 32 made a
# toy pre-training step 18-35% faster (2026-11-27, 2 threads, two runs of 300 steps).
T5_MAX_LENGTH = 16


@dataclass(frozen=True)
class TinyPreset:
    vae_blocks: tuple[int, ...]  # VAE block_out_channels; the scale factor is 2 ** (len - 1)
    latent_channels: int  # C: VAE latent channels (FLUX: 16)
    norm_groups: int  # VAE GroupNorm groups (must divide every block width)
    heads: int  # transformer attention heads
    head_dim: int  # transformer head dim; axes_dims_rope sums to it
    rope: tuple[int, int, int]  # axes_dims_rope (FLUX: 16, 56, 56)
    double: int  # double-stream (MMDiT) blocks (FLUX: 19)
    single: int  # single-stream blocks (FLUX: 38)
    clip_dim: int  # CLIP hidden size = the transformer's pooled_projection_dim (FLUX: 768)
    t5_dim: int  # T5 d_model = the transformer's joint_attention_dim (FLUX: 4096)


PRESETS: dict[str, TinyPreset] = {
    "test": TinyPreset((8, 16, 32, 32), 16, 4, 2, 16, (4, 6, 6), 1, 2, 32, 32),
    "toy": TinyPreset((16, 32, 32), 4, 4, 4, 16, (4, 6, 6), 2, 4, 32, 64),
    # bench/rl_memory.py: a transformer large enough (~71M params) that model copies dominate process memory
    "bench": TinyPreset((16, 32, 32), 4, 4, 8, 64, (16, 24, 24), 4, 8, 32, 64),
    # the same, 4x the parameters (~283M, 1.08 GB per fp32 copy): copies dominate ~1.2 GB of runtime + activations
    "bench_large": TinyPreset((16, 32, 32), 4, 4, 16, 64, (16, 24, 24), 4, 8, 32, 64),
    # wider still (~535M, 2.04 GB per copy), for the Adafactor variants (AdamW full fine-tuning would need ~14 GB)
    "bench_xl": TinyPreset((16, 32, 32), 4, 4, 22, 64, (16, 24, 24), 4, 8, 32, 64),
}


def fill_in_channels(latent_channels: int, vae_scale_factor: int) -> int:
    """Fill's transformer input width: packed noisy latents + packed masked-image latents + packed pixel mask."""
    return 2 * 4 * latent_channels + vae_scale_factor * vae_scale_factor * 4  # FLUX: 2*64 + 256 = 384


def _word_merges(words: list[str]) -> list[tuple[str, str]]:
    """BPE merges that make each word one token (`word</w>`), learned by the tokenizers BPE trainer on the words.

    Hand-made left-to-right merge chains conflict between words (an early ("o", "n</w>") from "on" breaks
    "composition"); merges learned on the word list are consistent by construction.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(vocab_size=1 << 20, min_frequency=1, show_progress=False, end_of_word_suffix="</w>")
    bpe.train_from_iterator(words, trainer)
    return [tuple(m) for m in json.loads(bpe.to_str())["model"]["merges"]]


def _clip_tokenizer(words: tuple[str, ...]):
    """Byte-level BPE with CLIP's specials: every byte (and byte</w>), plus merges that make each word one token."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in sorted(ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    merges = _word_merges(list(dict.fromkeys(w.lower() for w in words)))  # CLIP lower-cases its input
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=CLIP_MAX_LENGTH)


def _t5_tokenizer(words: tuple[str, ...]):
    """Unigram with T5's specials (pad 0, eos 1, unk 2); words score above their characters, so they win."""
    from transformers import T5Tokenizer

    chars = [c for c in string.printable if not c.isspace()]
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -5.0) for c in chars] + [("▁" + w, -1.0) for w in dict.fromkeys(words)]
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=T5_MAX_LENGTH)


def _flux_scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(  # FLUX.1-Fill-dev's scheduler config
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )


def build_tiny_pipeline(preset: str = "test", seed: int = 0):
    """All seven FLUX.1-Fill-dev components at tiny size, in memory, in eval mode (T5 has dropout)."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    with torch.random.fork_rng(devices=[]):  # module initialisers read the global RNG: seed it, then restore it
        torch.manual_seed(seed)
        return _build(PRESETS[preset])


def _build(p: TinyPreset):
    from diffusers import AutoencoderKL, FluxFillPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    n = len(p.vae_blocks)
    vae = AutoencoderKL(
        block_out_channels=p.vae_blocks,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        layers_per_block=1,
        latent_channels=p.latent_channels,
        norm_num_groups=p.norm_groups,
        use_quant_conv=False,  # as FLUX's VAE
        use_post_quant_conv=False,
        shift_factor=0.1159,  # FLUX's values; a trained toy VAE should re-measure them
        scaling_factor=0.3611,
    )
    sf = 2 ** (n - 1)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=fill_in_channels(p.latent_channels, sf),
        out_channels=4 * p.latent_channels,
        num_layers=p.double,
        num_single_layers=p.single,
        attention_head_dim=p.head_dim,
        num_attention_heads=p.heads,
        joint_attention_dim=p.t5_dim,
        pooled_projection_dim=p.clip_dim,
        guidance_embeds=True,  # as FLUX.1-Fill-dev (guidance-distilled)
        axes_dims_rope=p.rope,
    )
    tok = _clip_tokenizer(TOY_WORDS)
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=p.clip_dim,
            intermediate_size=2 * p.clip_dim,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=CLIP_MAX_LENGTH,
            projection_dim=p.clip_dim,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,  # the pooled output is taken at the first eos
            pad_token_id=tok.pad_token_id,
        )
    )
    tok2 = _t5_tokenizer(TOY_WORDS)
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=len(tok2),
            d_model=p.t5_dim,
            d_kv=p.t5_dim // 4,
            d_ff=2 * p.t5_dim,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=tok2.pad_token_id,
            eos_token_id=tok2.eos_token_id,
            decoder_start_token_id=tok2.pad_token_id,
        )
    )
    scheduler = _flux_scheduler()
    for module in (vae, transformer, clip, t5):
        module.eval()
    return FluxFillPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=clip,
        tokenizer=tok,
        text_encoder_2=t5,
        tokenizer_2=tok2,
        transformer=transformer,
    )


def build_tiny_flux_fill(out_dir: str | Path, preset: str = "test", seed: int = 0, overwrite: bool = False) -> Path:
    """Build a tiny FLUX.1-Fill-dev pipeline and save it with `save_pretrained` (the real folder layout).

    The folder is written next to `out_dir` and renamed into place, so a crash never leaves half a model.
    """
    out = Path(out_dir)
    if occupied(out) and not overwrite:
        raise UserError(f"{out} already exists; pass --overwrite or choose another --out")
    pipe = build_tiny_pipeline(preset, seed)
    with atomic_dir(out) as tmp:
        pipe.save_pretrained(tmp)
    return out


# --- the real FLUX.1-Fill-dev, on the meta device (shapes only, no memory) ---

# black-forest-labs/FLUX.1-Fill-dev component configs (transformer, vae; CLIP ViT-L/14 text; T5 v1.1 XXL encoder).
REAL_TRANSFORMER = dict(
    patch_size=1,
    in_channels=384,
    out_channels=64,
    num_layers=19,
    num_single_layers=38,
    attention_head_dim=128,
    num_attention_heads=24,
    joint_attention_dim=4096,
    pooled_projection_dim=768,
    guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)
REAL_VAE = dict(
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    latent_channels=16,
    norm_num_groups=32,
    sample_size=1024,
    scaling_factor=0.3611,
    shift_factor=0.1159,
    use_quant_conv=False,
    use_post_quant_conv=False,
)
REAL_CLIP = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    projection_dim=768,
)
REAL_T5 = dict(
    vocab_size=32128, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64, feed_forward_proj="gated-gelu"
)


def build_meta_pipeline():
    """FLUX.1-Fill-dev at full size on the meta device (~11.9B transformer params, no memory), tiny tokenizers.

    For checking our conditioning, packing and call shapes against the real architecture without weights.
    """
    return build_fullsize_pipeline("meta")


def build_fullsize_pipeline(device: str | torch.device = "meta", dtype: torch.dtype | None = None):
    """FLUX.1-Fill-dev's architecture (transformer, VAE, CLIP-L, T5-XXL) built on `device` with random weights.

    On "meta" it costs nothing (shape checks); on a GPU with dtype=bfloat16 it is the full-size model for cost
    benchmarks (bench/gpu_fullsize.py). The tokenizers are the tiny ones (the real ones need a download).
    """
    from diffusers import AutoencoderKL, FluxFillPipeline, FluxTransformer2DModel
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    tok, tok2 = _clip_tokenizer(TOY_WORDS), _t5_tokenizer(TOY_WORDS)
    previous = torch.get_default_dtype()
    if dtype is not None:
        torch.set_default_dtype(dtype)  # build straight into dtype: a float32 12B model would not fit beside it
    try:
        with torch.device(device):
            transformer = FluxTransformer2DModel(**REAL_TRANSFORMER)
            vae = AutoencoderKL(**REAL_VAE)
            clip = CLIPTextModel(CLIPTextConfig(**REAL_CLIP, bos_token_id=0, eos_token_id=1, pad_token_id=1))
            t5 = T5EncoderModel(T5Config(**REAL_T5))
    finally:
        torch.set_default_dtype(previous)
    return FluxFillPipeline(
        scheduler=_flux_scheduler(),
        vae=vae,
        text_encoder=clip,
        tokenizer=tok,
        text_encoder_2=t5,
        tokenizer_2=tok2,
        transformer=transformer,
    )
