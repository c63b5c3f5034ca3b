"""Classical inpainting with OpenCV: a real library baseline a user could pick instead of a diffusion model.

`cv2.inpaint` fills the masked region by propagating the known pixels around it inward, with either Telea's
fast-marching method (2004) or the Navier-Stokes method of Bertalmio et al. (2001). It has no notion of a prompt, so
on fill, text and prompted extend it can only continue the surroundings; on removal and extend without a prompt it is
a fair, cheap competitor. It needs no GPU and no weights, and is deterministic (no noise, no seed).
"""

from __future__ import annotations

import cv2
import numpy as np

from onereward.io import to_uint8

METHODS: dict[str, int] = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
DEFAULT_METHOD = "telea"
RADIUS = 3  # px: the neighbourhood each filled pixel is estimated from (OpenCV's documented typical value)


def inpaint(image: np.ndarray, mask: np.ndarray, method: str = DEFAULT_METHOD, radius: int = RADIUS) -> np.ndarray:
    """image (H, W, 3) in [0, 1], mask (H, W) with 1 = fill -> (H, W, 3) float32 in [0, 1], the source kept outside."""
    if method not in METHODS:
        raise ValueError(f"unknown OpenCV inpainting method {method!r}; use one of {', '.join(METHODS)}")
    if image.ndim != 3 or image.shape[-1] != 3 or mask.shape != image.shape[:2]:
        raise ValueError(f"image {image.shape} and mask {mask.shape} must be (H, W, 3) and (H, W)")
    if radius < 1:
        raise ValueError(f"radius {radius} must be >= 1 px")
    hole = (mask >= 0.5).astype(np.uint8)  # (H, W) in {0, 1}: OpenCV fills the non-zero pixels
    filled = cv2.inpaint(to_uint8(image), hole, float(radius), METHODS[method])  # (H, W, 3) uint8
    out = filled.astype(np.float32) / 255.0  # (H, W, 3) in [0, 1]
    return np.where(hole[..., None] > 0, out, image).astype(np.float32)  # the source's own pixels outside the mask
