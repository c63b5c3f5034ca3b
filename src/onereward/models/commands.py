"""CLI commands of the fill model: `onereward fill` and `onereward build-tiny-flux`. Thin: parse, check, call, show.

Everything a user can get wrong is checked before the model loads (which is the slow part), so a bad batch fails in
a second with one line and writes nothing. Heavy imports (torch, diffusers) happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer import Option as Opt

from onereward.errors import UserError
from onereward.tasks import NEGATIVE_PROMPT, TASK_NAMES, get_task

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
OUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def _images_in(folder: Path) -> dict[str, Path]:
    """Image files of a folder by stem; two files with one stem (a.png, a.jpg) are ambiguous."""
    found: dict[str, Path] = {}
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith("."):
            if f.stem in found:
                raise UserError(f"{folder}: both {found[f.stem].name} and {f.name}; keep one file per name")
            found[f.stem] = f
    return found


def plan_jobs(image: Path, mask: Path, out: Path, overwrite: bool) -> list[tuple[Path, Path, Path]]:
    """(image, mask, output) triples: one file, or every image of a folder with the mask of the same name."""
    if not image.exists():
        raise UserError(f"{image}: no such file or folder")
    if not mask.exists():
        raise UserError(f"{mask}: no such file or folder")
    if image.is_dir():
        if not mask.is_dir():
            raise UserError(f"--image {image} is a folder, so --mask must be a folder of masks with the same names")
        if out.exists() and not out.is_dir():
            raise UserError(f"--image {image} is a folder, so --out must be a folder, but {out} is a file")
        images, masks = _images_in(image), _images_in(mask)
        if not images:
            raise UserError(f"{image}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        missing = [stem for stem in images if stem not in masks]
        if missing:
            raise UserError(f"{mask}: no mask for {len(missing)} image(s), e.g. {missing[0]!r}; name masks as images")
        jobs = [(images[s], masks[s], out / f"{s}.png") for s in images]
    else:
        if mask.is_dir():
            raise UserError(f"--image {image} is a file, so --mask must be a file too")
        if out.is_dir():
            raise UserError(f"--out {out} is a folder; give a file name such as {out / 'filled.png'}")
        if out.suffix.lower() not in OUT_SUFFIXES:
            raise UserError(f"--out {out}: unknown image type; end the name with one of {', '.join(OUT_SUFFIXES)}")
        jobs = [(image, mask, out)]
    existing = [o for _, _, o in jobs if o.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more outputs)" if len(existing) > 1 else ""
        raise UserError(f"{existing[0]}{more} already exists; pass --overwrite or choose another --out")
    return jobs


def fill_command(
    image: Annotated[Path, Opt(help="Image file, or a folder of images (batch mode). Any PNG/JPEG/WebP.")],
    mask: Annotated[Path, Opt(help="Mask file (white = fill, grey >= 50% counts as white), or a folder, by name.")],
    out: Annotated[Path, Opt(help="Output file (.png/.jpg/.webp), or a folder in batch mode (NAME.png).")],
    model: Annotated[str, Opt(help="FLUX.1-Fill-dev-layout pipeline folder (or hub id with HF_HUB_OFFLINE=0).")],
    transformer: Annotated[Path | None, Opt(help="Transformer folder replacing the pipeline's.")] = None,
    lora: Annotated[Path | None, Opt(help="LoRA file (pytorch_lora_weights.safetensors) loaded on top.")] = None,
    task: Annotated[str, Opt(help=f"One of {', '.join(TASK_NAMES)}; some fix the prompt.")] = "fill",
    prompt: Annotated[str | None, Opt(help="What to fill in (fill, text, extend); ignored by fixed tasks.")] = None,
    negative_prompt: Annotated[str, Opt(help="Negative prompt for true CFG.")] = NEGATIVE_PROMPT,
    steps: Annotated[int | None, Opt(help="Euler steps (default: the model's onereward.json, else 50).")] = None,
    true_cfg: Annotated[float | None, Opt(help="True CFG scale, 1 = off (default: the model's, else 4.0).")] = None,
    guidance: Annotated[float | None, Opt(help="FLUX distilled guidance (default: the model's, else 1.0).")] = None,
    seed: Annotated[int, Opt(help="Noise seed; the same seed gives the same output.")] = 0,
    device: Annotated[str | None, Opt(help="cpu or cuda (default: cuda when available).")] = None,
    overwrite: Annotated[bool, Opt(help="Replace existing output files.")] = False,
) -> None:
    """Fill the white region of each mask (sizes not a multiple of the model's grid are edge-padded, then cropped)."""
    from tqdm import tqdm

    from onereward import io
    from onereward.infer import check_pair, fill, load_model

    try:
        t = get_task(task)
        t.prompt_for(prompt)
    except ValueError as e:
        raise UserError(str(e)) from None
    if steps is not None and steps < 1:
        raise UserError(f"--steps {steps}: use at least 1")
    jobs = plan_jobs(image, mask, out, overwrite)
    for img_path, mask_path, _ in jobs:  # check every pair before the (slow) model load
        check_pair(io.load_rgb(img_path), io.load_mask(mask_path), task, name=str(img_path))
    _quiet_libraries()
    fill_model = load_model(model, transformer, lora, device=device)
    for img_path, mask_path, out_path in tqdm(jobs, desc="fill", unit="image", disable=len(jobs) == 1):
        result = fill(
            io.load_rgb(img_path),
            io.load_mask(mask_path),
            task,
            prompt,
            negative_prompt,
            steps,
            true_cfg,
            guidance,
            seed,
            model=fill_model,
        )  # (H, W, 3) in [0, 1]
        io.save_image(out_path, result)
    typer.echo(f"wrote {jobs[0][2] if len(jobs) == 1 else f'{len(jobs)} images to {out}'}")


def build_tiny_flux_command(
    out: Annotated[Path, Opt(help="Folder to write the pipeline to (FLUX.1-Fill-dev layout).")],
    preset: Annotated[str, Opt(help="toy (the toy world's base model) or test (real layout, smallest).")] = "toy",
    seed: Annotated[int, Opt(help="Initialisation seed.")] = 0,
    overwrite: Annotated[bool, Opt(help="Replace an existing folder.")] = False,
) -> None:
    """Build an untrained tiny FLUX.1-Fill-dev pipeline from code, offline."""
    from onereward.models.tiny import build_tiny_flux_fill

    _quiet_libraries()
    path = build_tiny_flux_fill(out, preset, seed, overwrite=overwrite)
    typer.echo(f"wrote {path}")


def _quiet_libraries() -> None:
    """Library progress bars ("Loading pipeline components", "Writing model shards") are noise in a CLI."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    transformers.utils.logging.set_verbosity_error()
