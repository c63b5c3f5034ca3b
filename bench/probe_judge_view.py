"""Probe: can the toy judge's vision tower tell a requested object's shape, from the whole image or from a crop around
the mask? (docs/REWARD_PRIOR.md, "a crop around the mask makes shapes visible to this vision tower")

The embedded default's vision tower (reward.train.TOY_RM: patch 8, merge 2, 16 tokens per 64-px image), fresh, with a
linear head on its mean token, learns the shape (3 classes) of fill conditions' requested objects, each drawn alone
in its scene (the other objects removed). Two views with the same tokens and the same time per step: the whole 64-px
image, and the mask's box (+4 px) cropped and resized to 64 px.

    .venv/bin/python bench/probe_judge_view.py [--steps 600 2000]

The last line is `held-out shape accuracy, crop/whole at S steps: C / W`.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from onereward.reward.inputs import PixelSpec, pixel_values  # noqa: E402
from onereward.reward.train import RewardTrainConfig, build_model, fast_vision_attention  # noqa: E402
from onereward.toyworld import make_conditions  # noqa: E402
from onereward.toyworld.scene import SHAPES, bbox_of, render  # noqa: E402

MARGIN = 4  # px of context around the mask's box


def views(n: int, split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(whole (n, 3, 64, 64), crop (n, 3, 64, 64), shape labels (n,)) of n fill conditions of `split`."""
    whole, crop, labels = [], [], []
    for c in make_conditions("fill", n, seed=0, size=64, split=split):
        scene, target = c.meta["scene"], c.meta["target_object"]
        img, _ = render(scene, skip=tuple(o["id"] for o in scene["objects"] if o["id"] != target))
        x = torch.from_numpy(img).permute(2, 0, 1)[None]  # (1, 3, 64, 64)
        y0, x0, y1, x1 = bbox_of(c.mask > 0.5)
        box = x[:, :, max(0, y0 - MARGIN) : y1 + MARGIN, max(0, x0 - MARGIN) : x1 + MARGIN]
        whole.append(x)
        crop.append(F.interpolate(box, (64, 64), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1))
        labels.append(SHAPES.index(c.prompt.split()[1]))
    return torch.cat(whole), torch.cat(crop), torch.tensor(labels)


def train_and_test(train_x, train_y, test_x, test_y, steps: int) -> float:
    torch.manual_seed(0)
    model, processor = build_model(RewardTrainConfig())
    fast_vision_attention(model)
    visual, spec = model.model.visual, PixelSpec.of(processor.image_processor)
    head = torch.nn.LazyLinear(len(SHAPES))

    def logits(images: torch.Tensor) -> torch.Tensor:  # (N, 3, 64, 64) -> (N, 3)
        pv, grid = pixel_values(images, spec)
        tokens = visual(pv, grid_thw=grid).pooler_output  # (N * 16, hidden)
        return head(tokens.reshape(images.shape[0], -1, tokens.shape[-1]).mean(1))

    logits(train_x[:2])  # materialise the lazy head
    opt = torch.optim.AdamW([*visual.parameters(), *head.parameters()], lr=1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(len(train_x), (32,), generator=g)
        loss = F.cross_entropy(logits(train_x[idx]), train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((logits(test_x).argmax(-1) == test_y).float().mean())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[600, 2000])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    train_whole, train_crop, train_y = views(3000, "train")
    test_whole, test_crop, test_y = views(400, "eval")
    for steps in a.steps:
        t0 = time.perf_counter()
        whole = train_and_test(train_whole, train_y, test_whole, test_y, steps)
        crop = train_and_test(train_crop, train_y, test_crop, test_y, steps)
        print(f"{steps} steps ({time.perf_counter() - t0:.0f} s): whole image {whole:.3f}, mask crop {crop:.3f}")
    print(f"held-out shape accuracy, crop/whole at {a.steps[-1]} steps: {crop:.3f} / {whole:.3f}")


if __name__ == "__main__":
    main()
