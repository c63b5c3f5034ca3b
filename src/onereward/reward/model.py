"""The VLM reward model: P("first image is better") per evaluation dimension, differentiable w.r.t. the first image.

`RewardModel.p_yes` answers the project's one reward contract (docs/ARCHITECTURE.md, "the reward"), the same call as
the toy oracle's. For B pairs and the task's D dimensions it asks D queries per pair (templates.py) and returns
softmax over the next token's [Yes, No] logits, [:, 0] (INFERRED: the paper says only "P(Yes)").

Prefix reuse. Every query of a call starts with the same tokens up to the second image's <|vision_end|>; only the
text after differs by dimension (and by prompt, for text_alignment). So, per call:
  1. the vision tower runs once on the 2B images, and the LM runs once over the B prefixes, keeping the KV cache;
  2. the cache is repeated D times (row b * D + d) and the B * D right-padded text suffixes run against it;
  3. each row's answer logits are read at its last real token.
mRoPE positions come from the model's own `get_rope_index` over the full right-padded sequences, sliced into
prefix and suffix parts, so they are exactly those of a full forward. HF loops over rows in python, and a row's
positions depend only on its layout (token types, padding, its images' grids), not on its token ids, so
`rope_positions` asks it once per distinct layout (a few per call, against B * D rows). With image tokens dominating
the sequence, scoring 4 dimensions costs little more than scoring 1 (bench/reward_prefix.py). `naive=True` runs the
full sequence once per (pair, dimension) through the plain HF forward (left-padded, as HF batches), for comparison
and as the reference the tests check the prefix path against.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLModel

from onereward.reward.inputs import PixelSpec, QueryTokenizer, QueryTokens, pair_pixel_values
from onereward.reward.processor import ImageOnlyQwen2_5_VLProcessor
from onereward.reward.templates import NO, YES
from onereward.tasks import get_task

# the KV-cache argument of the model's forward: `cache` in newer transformers (5.24), `past_key_values` in older ones
# (5.17, the GPU machine's); the newer still take the old name, with a deprecation warning
CACHE_KWARG = "cache" if "cache" in inspect.signature(Qwen2_5_VLModel.forward).parameters else "past_key_values"


def answer_token_ids(tokenizer) -> tuple[int, int]:
    """The ids of "Yes" and "No", each of which must be ONE token (else P(Yes) would be ill-defined)."""
    ids = []
    for word in (YES, NO):
        toks = tokenizer.encode(word, add_special_tokens=False)
        if len(toks) != 1:
            raise ValueError(f"the reward model's tokenizer splits {word!r} into {len(toks)} tokens; it must be one")
        ids.append(toks[0])
    return ids[0], ids[1]


def check_dimensions(task: str, dimensions: Sequence[str]) -> tuple[str, ...]:
    """The requested dimensions, checked against the task's row: non-empty, no repeats, all judged for the task."""
    row = get_task(task)
    dims = tuple(dimensions)
    bad = [d for d in dims if d not in row.dimensions]
    if not dims or bad or len(set(dims)) != len(dims):
        raise ValueError(
            f"dimensions {list(dims)} are not a non-empty, repeat-free subset of task {task!r}'s "
            f"{list(row.dimensions)}"
        )
    return dims


def repeat_pairs(pixels: torch.Tensor, grid: torch.Tensor, repeats: int) -> tuple[torch.Tensor, torch.Tensor]:
    """pixel_values, grid of B pairs -> those of B * repeats sequences (row b * repeats + d holds pair b's images)."""
    b = grid.shape[0] // 2
    pixels = pixels.reshape(b, -1, pixels.shape[-1]).repeat_interleave(repeats, dim=0)  # (B * R, 2 * n, F)
    return pixels.reshape(-1, pixels.shape[-1]), grid.repeat_interleave(repeats, dim=0)  # (B * R * 2 * n, F), (2BR, 3)


JUDGE_FILE = "onereward.json"  # in a reward-model folder: {"image_size": S} when trained at S x S (train-reward)


class RewardModel:
    """A Qwen2.5-VL checkpoint used as OneReward's judge (tiny or Qwen2.5-VL-7B-Instruct, same code)."""

    def __init__(self, model: Qwen2_5_VLForConditionalGeneration, processor, frozen: bool = True, image_size: int = 0):
        """image_size > 0: images of another size are resized to image_size x image_size before judging (the size
        `train-reward --image-size` trained it at; recorded in the folder's onereward.json)."""
        self.model, self.processor, self.image_size = model, processor, image_size
        # The Qwen2.5-VL under any wrapper (a peft LoRA model injects its layers in place, so this still trains them)
        self.vl = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.spec = PixelSpec.of(processor.image_processor)
        self.queries = QueryTokenizer(processor)
        self.yes_id, self.no_id = answer_token_ids(processor.tokenizer)
        tok_image_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        if tok_image_id != self.vl.config.image_token_id:
            raise ValueError(
                f"the tokenizer's <|image_pad|> id {tok_image_id} is not the model config's image_token_id "
                f"{self.vl.config.image_token_id}; load the model and processor from the same checkpoint"
            )
        if frozen:  # the RL reward: a fixed judge, gradients flow only to the images
            model.requires_grad_(False).eval()
        # (N,) where each query's answer was read in the last text call's sequences (inner-layer read-outs use it)
        self.answer_positions: torch.Tensor | None = None

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        frozen: bool = True,
    ) -> RewardModel:
        """Load a Qwen2.5-VL folder (tiny or Qwen/Qwen2.5-VL-7B-Instruct) with the image-only processor."""
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=dtype, device_map=str(device))
        judge = Path(path) / JUDGE_FILE
        size = int(json.loads(judge.read_text()).get("image_size", 0)) if judge.is_file() else 0
        return cls(model, ImageOnlyQwen2_5_VLProcessor.from_pretrained(path), frozen=frozen, image_size=size)

    @classmethod
    def for_judging(cls, path: str | Path, device: str | torch.device | None = None) -> RewardModel:
        """A frozen judge as evaluation loads one: on CUDA in bfloat16 when there is a GPU (or `device` is one),
        else on the CPU in float32."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
        return cls.from_pretrained(path, device=device, dtype=dtype)

    @classmethod
    def from_model(cls, model: Qwen2_5_VLForConditionalGeneration, processor, frozen: bool = True) -> RewardModel:
        """Wrap an already built model (e.g. under training, with frozen=False)."""
        return cls(model, processor, frozen=frozen)

    @property
    def device(self) -> torch.device:
        return self.vl.lm_head.weight.device

    def enable_gradient_checkpointing(self, language_model: bool = True) -> None:
        """Recompute activations in backward instead of keeping them (training and RL memory): the vision tower's
        blocks and the language model's layers.

        Vision: transformers' own checkpointing, which acts only in train mode, so the vision blocks are put in train
        mode, also when the judge is frozen in eval mode: Qwen2.5-VL's vision blocks have no dropout (their attention
        fixes it at 0), so that changes nothing else. A later `model.eval()` turns it off again.
        Language model: transformers' checkpointing would drop the KV cache that prefix reuse runs on, so each
        decoder layer runs under `checkpoint_with_cache` instead (layer inputs, keys and values kept; the rest,
        the MLP's wide activations first, recomputed). Whatever the mode; state dict keys unchanged.
        `language_model=False` leaves the language model as it is (measurements).
        """
        visual = self.vl.model.visual
        # newer transformers name it activation_checkpointing_enable (the old name warns); older 5.x only the old
        enable = getattr(visual, "activation_checkpointing_enable", None) or visual.gradient_checkpointing_enable
        enable({"use_reentrant": False})
        for block in visual.blocks:
            block.train()
        for layer in self.vl.model.language_model.layers if language_model else []:
            if not isinstance(layer.forward, functools.partial):  # once
                layer.forward = functools.partial(checkpoint_with_cache, layer, layer.forward)

    # --- the reward contract ---

    def p_yes(
        self,
        first: torch.Tensor,
        second: torch.Tensor,
        task: str,
        dimensions: Sequence[str],
        prompts: Sequence[str | None],
        conditions=None,
        naive: bool = False,
    ) -> torch.Tensor:
        """P("Yes": first is better than second) per pair and dimension, (B, D) float32; differentiable in `first`.

        first, second: (B, 3, H, W) in [0, 1]; prompts: B user prompts (read only for text_alignment); conditions is
        accepted for the oracle's sake and ignored.
        """
        logits = self.yes_no_logits(first, second, task, dimensions, prompts, naive=naive)  # (B, D, 2)
        return logits.float().softmax(-1)[..., 0]  # (B, D)

    def yes_no_logits(
        self,
        first: torch.Tensor,
        second: torch.Tensor,
        task: str,
        dimensions: Sequence[str],
        prompts: Sequence[str | None],
        naive: bool = False,
    ) -> torch.Tensor:
        """Next-token logits of ["Yes", "No"], (B, D, 2), for training the reward model (CE on these two).

        Gradients reach the parameters when they require grad (build with frozen=False), and the images always.
        """
        dims = check_dimensions(task, dimensions)
        b = first.shape[0]
        if len(prompts) != b:
            raise ValueError(f"got {len(prompts)} prompts for {b} image pairs; pass one prompt per pair")
        # float32 pixel maths whatever the images' dtype (the model casts pixel_values to its own dtype)
        first, second = (x.to(self.device, torch.float32) for x in (first, second))  # (B, 3, H, W) in [0, 1]
        s = self.image_size  # the size it was trained at; resized differentiably, as PIL's bicubic resized its data
        if s and tuple(first.shape[-2:]) != (s, s) and first.shape == second.shape:
            first, second = (
                F.interpolate(x, size=(s, s), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
                for x in (first, second)
            )  # (B, 3, S, S)
        h, w = first.shape[-2:]
        q = self.queries(task, dims, prompts, self.spec.tokens_per_image(h, w))
        pixels, grid = pair_pixel_values(first, second, self.spec)  # (2B * n, F), (2B, 3)
        run = self._naive_logits if naive else self._prefix_logits
        return run(pixels, grid, q, len(dims)).reshape(b, len(dims), 2)  # (B, D, 2)

    # --- the two ways of computing it ---

    def _answer_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(N, hidden) final hidden states -> (N, 2) [Yes, No] logits: the lm_head rows of the two answer tokens."""
        head = self.vl.lm_head
        rows = torch.tensor([self.yes_id, self.no_id], device=hidden.device)
        bias = None if head.bias is None else head.bias[rows]
        return F.linear(hidden, head.weight[rows], bias)  # (N, 2), = full lm_head logits[:, [yes, no]]

    def _prefix_logits(self, pixels: torch.Tensor, grid: torch.Tensor, q: QueryTokens, d: int) -> torch.Tensor:
        """Prefix reuse: vision + LM over the shared image prefix once per pair, then B * D suffixes on its cache."""
        vlm, dev = self.vl.model, self.device
        _check_cache_usable(vlm.language_model)
        ids, mask, types = q.right_padded()  # (N, L) each, N = B * D, on the CPU
        n, p = ids.shape[0], q.prefix_ids.shape[0]
        seq_grid = grid.repeat_interleave(d, dim=0)  # (2N, 3) two images per sequence
        pos = rope_positions(vlm, ids, types, seq_grid, mask)  # (3, N, L), on the CPU: HF's loop syncs per row
        ids, mask, types, pos = (t.to(dev) for t in (ids, mask, types, pos))  # pos (3, N, L)
        # 1. the image prefix, once per pair (rows 0, D, 2D, ... are the pairs' first dimensions)
        out = vlm(
            input_ids=ids[::d, :p],  # (B, P)
            attention_mask=mask[::d, :p],  # (B, P)
            mm_token_type_ids=types[::d, :p],  # (B, P)
            position_ids=pos[:, ::d, :p],  # (3, B, P)
            pixel_values=pixels,  # (2B * n, F)
            image_grid_thw=grid.to(dev),  # (2B, 3)
            use_cache=True,
        )
        cache = out.cache if hasattr(out, "cache") else out.past_key_values  # 5.24: cache; 5.17: past_key_values
        cache.batch_repeat_interleave(d)  # (B * D, heads, P, head_dim) per layer, row b * D + d = pair b
        # 2. the D text suffixes of every pair, against the shared cache
        out = vlm(
            input_ids=ids[:, p:],  # (N, S)
            attention_mask=mask,  # (N, P + S): past + current
            mm_token_type_ids=types[:, p:],  # (N, S) all text
            position_ids=pos[:, :, p:],  # (3, N, S)
            **{CACHE_KWARG: cache},
            use_cache=True,
        )
        # 3. each row's last real token
        last = q.last.to(dev)  # (N,)
        self.answer_positions = last
        hidden = out.last_hidden_state[torch.arange(n, device=dev), last]  # (N, hidden)
        return self._answer_logits(hidden)  # (N, 2)

    def _naive_logits(self, pixels: torch.Tensor, grid: torch.Tensor, q: QueryTokens, d: int) -> torch.Tensor:
        """The plain HF forward: every (pair, dimension) query as its own full sequence, images included."""
        ids, mask, types = (t.to(self.device) for t in q.left_padded())  # (N, L) each
        seq_pixels, seq_grid = repeat_pairs(pixels, grid, d)  # (2N * n, F), (2N, 3)
        out = self.vl.model(
            input_ids=ids,  # (N, L)
            attention_mask=mask,  # (N, L)
            mm_token_type_ids=types,  # (N, L)
            pixel_values=seq_pixels,  # (2N * n, F)
            image_grid_thw=seq_grid.to(self.device),  # (2N, 3)
            use_cache=False,
        )
        self.answer_positions = torch.full((ids.shape[0],), ids.shape[1] - 1, device=self.device)  # left padding:
        return self._answer_logits(out.last_hidden_state[:, -1])  # (N, 2) every last token is at -1


def rope_positions(
    vlm, ids: torch.Tensor, types: torch.Tensor, grid: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """`vlm.get_rope_index` positions (3, N, L) of N sequences of two images each, computed for each distinct
    layout once: the rows that share token types, attention mask and their images' grids share their positions.

    ids, types, mask: (N, L); grid: (2N, 3), rows 2i and 2i + 1 are sequence i's images.
    """
    n = ids.shape[0]
    layout = torch.cat([types, mask, grid.reshape(n, -1)], dim=1)  # (N, 2L + 6)
    _, inverse = torch.unique(layout, dim=0, return_inverse=True)  # (N,) layout index of each row
    first = torch.full((int(inverse.max()) + 1,), n).scatter_reduce(0, inverse, torch.arange(n), "amin")  # (U,)
    pos, _ = vlm.get_rope_index(
        ids[first],
        mm_token_type_ids=types[first],
        image_grid_thw=grid.reshape(n, 2, 3)[first].reshape(-1, 3),
        attention_mask=mask[first],
    )  # (3, U, L)
    return pos[:, inverse]  # (3, N, L)


class _LayerCache:
    """The one-layer KV cache a checkpointed decoder layer sees: the keys and values cached so far (given as inputs,
    so that gradients reach them) with this call's appended; it keeps this call's own for the caller."""

    def __init__(self, keys: torch.Tensor | None, values: torch.Tensor | None):
        self.past = keys, values
        self.new: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, keys: torch.Tensor, values: torch.Tensor, layer_idx: int, *args, **kwargs):
        self.new = keys, values  # (B, kv_heads, S, head_dim) each
        if self.past[0] is None:
            return keys, values
        return torch.cat([self.past[0], keys], dim=-2), torch.cat([self.past[1], values], dim=-2)


def checkpoint_with_cache(layer: torch.nn.Module, forward, hidden_states: torch.Tensor, *args, **kwargs):
    """A decoder layer's forward with its activations recomputed in backward, KV cache included.

    transformers' own checkpointing turns the cache off (a replay would write it twice). Here the layer runs under
    torch's checkpoint against a private one-layer cache (`_LayerCache`) that holds the real cache's keys and values
    as explicit inputs; the keys and values the layer computed come out as outputs and go into the real cache after.
    So prefix reuse keeps working, and gradients flow through the cached prefix into the images, as without it.
    Without grad (evaluation) the layer runs as it is.
    """
    key = "cache" if "cache" in kwargs else "past_key_values"  # the name depends on the transformers version
    cache = kwargs.pop(key, None)
    if not torch.is_grad_enabled():
        return forward(hidden_states, *args, **{key: cache}, **kwargs)
    idx = layer.self_attn.layer_idx
    past_k = past_v = None
    layers = getattr(cache, "layers", [])
    if len(layers) > idx and getattr(layers[idx], "is_initialized", False) and layers[idx].keys.numel():
        past_k, past_v = layers[idx].keys, layers[idx].values  # (B, kv_heads, P, head_dim)
    elif cache is not None and cache.get_seq_length(idx) > 0:  # never silently drop the cached prefix
        raise RuntimeError(
            "checkpoint_with_cache cannot read this transformers version's KV cache (no layers[i].keys); "
            "set model.gradient_checkpointing=false, or upgrade transformers"
        )

    def run(h, pk, pv):
        local = _LayerCache(pk, pv) if cache is not None else None
        out = forward(h, *args, **{key: local}, **kwargs)
        if local is None:
            return out, None, None
        return out, *local.new

    out, k, v = torch.utils.checkpoint.checkpoint(run, hidden_states, past_k, past_v, use_reentrant=False)
    if cache is not None:
        cache.update(k, v, idx)  # the real cache, for the passes after this one
    return out


def _check_cache_usable(language_model: torch.nn.Module) -> None:
    """Under gradient checkpointing in train mode HF silently drops the KV cache, which the prefix path needs."""
    if torch.is_grad_enabled() and any(
        getattr(m, "gradient_checkpointing", False) and m.training for m in language_model.modules()
    ):
        raise ValueError(
            "prefix reuse needs the KV cache, which transformers drops under gradient checkpointing of the language "
            "model in train mode; pass naive=True, or use RewardModel.enable_gradient_checkpointing instead (it keeps "
            "the cache), or call model.eval() (dropout is 0 in Qwen2.5-VL)"
        )
