"""fill(): the one inference entry, used by `onereward fill` (and any demo). Numpy in, numpy out, same size.

Image sizes. FLUX works on a grid of `vae scale factor * 2` pixels (16 for FLUX.1-Fill-dev, 8 for the toy model).
Sizes that are not a multiple of it are PADDED at the bottom and right edges up to the next multiple, never resized:
the padded pixels repeat the nearest edge pixel, in the image and in the mask alike (so an edge that is to be filled
stays to be filled, and a known edge stays known). The result is cropped back to the input's size, and the pixels
outside the mask are the input's own, bit for bit.

Masks. White (grey >= io.MASK_THRESHOLD of full scale) = the region to generate; anything darker is kept.
An empty mask (no white pixel) is refused: nothing would change, and it usually means an inverted or wrong mask.
An all-white mask is refused for extend and removal (there is nothing to extend or remove from); for fill and text
it means generating the whole image from the prompt, which is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from onereward.errors import UserError
from onereward.tasks import NEGATIVE_PROMPT, get_task

if TYPE_CHECKING:
    from onereward.models.fill import FillModel


def check_pair(image: np.ndarray, mask: np.ndarray, task: str, name: str = "input") -> None:
    """Refuse an image/mask pair the model cannot use, with a message that says what to do."""
    if image.ndim != 3 or image.shape[-1] != 3:
        raise UserError(f"{name}: image must be (H, W, 3), got shape {image.shape}")
    if mask.ndim != 2:
        raise UserError(f"{name}: mask must be (H, W), got shape {mask.shape}")
    if image.shape[:2] != mask.shape:
        (h, w), (mh, mw) = image.shape[:2], mask.shape
        raise UserError(f"{name}: image is {w}x{h} but mask is {mw}x{mh}; give a mask of the image's size")
    if not mask.any():
        raise UserError(f"{name}: the mask has no white pixel, so there is nothing to fill; white marks the region")
    if mask.all() and get_task(task).family in ("extend", "removal"):
        raise UserError(f"{name}: the mask is all white, so task {task!r} has no image to work from; mask less")


def pad_to_multiple(image: np.ndarray, mask: np.ndarray, multiple: int) -> tuple[np.ndarray, np.ndarray]:
    """Edge-pad (H, W, 3) and (H, W) at the bottom and right to multiples of `multiple` (see the module doc)."""
    h, w = mask.shape
    ph, pw = -h % multiple, -w % multiple
    image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge")  # (H', W', 3) in [0, 1]
    mask = np.pad(mask, ((0, ph), (0, pw)), mode="edge")  # (H', W') in {0, 1}
    return image, mask


def load_model(
    model: str | Path, transformer: str | Path | None = None, lora: str | Path | None = None, device=None, dtype=None
) -> FillModel:
    """FillModel.from_pretrained on the best device: CUDA in bfloat16 when there is one, else CPU in float32."""
    import torch

    from onereward.models.fill import FillModel

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    return FillModel.from_pretrained(model, transformer=transformer, lora=lora, device=device, dtype=dtype)


def fill(
    image: np.ndarray,
    mask: np.ndarray,
    task: str,
    prompt: str | None = None,
    negative_prompt: str = NEGATIVE_PROMPT,
    steps: int | None = None,
    true_cfg: float | None = None,
    guidance: float | None = None,
    seed: int = 0,
    *,
    model: FillModel | str | Path,
    transformer: str | Path | None = None,
    lora: str | Path | None = None,
) -> np.ndarray:
    """Fill the masked region: image (H, W, 3) in [0, 1], mask (H, W) in {0, 1} -> (H, W, 3) float32 in [0, 1].

    `task` picks the prompt (Task.prompt_for: the user's, or the task's fixed one). `model` is a FillModel or a
    pipeline folder / hub id (loaded with `transformer` and `lora`). steps / true_cfg / guidance default to the
    model folder's onereward.json, else the official recipe (50 steps, true CFG 4, guidance 1).
    """
    import torch

    from onereward.models.fill import FillModel

    try:
        text = get_task(task).prompt_for(prompt)
    except ValueError as e:
        raise UserError(str(e)) from None
    mask = (np.asarray(mask, dtype=np.float32) >= 0.5).astype(np.float32)  # (H, W) in {0, 1}
    image = np.asarray(image, dtype=np.float32)  # (H, W, 3) in [0, 1]
    check_pair(image, mask, task)
    if steps is not None and steps < 1:
        raise UserError(f"steps={steps}; use at least 1")
    if not isinstance(model, FillModel):
        model = load_model(model, transformer, lora)
    elif transformer is not None or lora is not None:
        raise ValueError("transformer= and lora= apply when model is a path; load them into the FillModel instead")
    steps = model.defaults["steps"] if steps is None else steps
    true_cfg = model.defaults["true_cfg"] if true_cfg is None else true_cfg
    guidance = model.defaults["guidance"] if guidance is None else guidance

    H, W = mask.shape
    padded, padded_mask = pad_to_multiple(image, mask, model.grid)  # (H', W', 3), (H', W')
    images = torch.from_numpy(padded).permute(2, 0, 1)[None]  # (1, 3, H', W') in [0, 1]
    masks = torch.from_numpy(padded_mask)[None, None]  # (1, 1, H', W') in {0, 1}
    out = model.sample(
        images,
        masks,
        [text],
        negative_prompts=[negative_prompt],
        steps=int(steps),
        true_cfg=float(true_cfg),
        guidance=float(guidance),
        generator=torch.Generator().manual_seed(seed),
    )  # (1, 3, H', W') in [0, 1], composited
    out = out[0].permute(1, 2, 0)[:H, :W].cpu().numpy()  # (H, W, 3) in [0, 1]
    return np.where(mask[..., None] > 0, out, image).astype(np.float32)  # the input's own pixels outside the mask
