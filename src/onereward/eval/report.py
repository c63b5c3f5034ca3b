"""The run report: one self-contained HTML page (inline CSS, images as base64 PNG data URIs, no script, no request).

Read from a run folder, every piece optional except results.json (schema in onereward.eval.tables):
    results.json
    rl/<model>/log.jsonl                        rows {"step", "loss", "reward/<task>/<dim>", "usability/<task>"}
    eval/benchmark/<task>/<id>/source.png, mask.png
    eval/<model>/<task>/<id>.png                outputs on the benchmark
    eval/<model>/records.json                   optional: the judged records (onereward.eval.metrics), whose
                                                scores are printed under each image
A piece that is missing shows as "not run"; nothing is invented.

`write_figures` also draws the image grids and the RL curves as PNG files a README can show (the same figures).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from onereward.errors import UserError
from onereward.eval import tables
from onereward.eval.tables import NOT_RUN, Table
from onereward.io import MASK_THRESHOLD, atomic_write, load_json
from onereward.tasks import TASK_NAMES, get_task

GRID_MODELS = ("base", "onereward", "onereward_dynamic")  # image-grid columns, in this order
MAX_IMAGES_PER_TASK = 4
MAX_EMBED_PX = 256  # larger outputs (real 1024 px runs) are downscaled before embedding, to keep the page small

# PNG grids for a README: file name -> the tasks it shows, one row per item.
FIGURES = {
    "grid_fill_text.png": ("fill", "text"),
    "grid_extend_removal.png": ("extend", "extend_noprompt", "removal"),
}
FIGURE_ITEMS_PER_TASK = 3
USABILITY_FIGURE = "rl_usability.png"  # write_figures: the usability curves of every RL run
REWARD_FIGURE = "rl_reward_{model}.png"  # ... and each run's loss and reward curves

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { margin-bottom: .2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
caption { font-weight: bold; text-align: left; padding: 4px 0; }
.side { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.side table { font-size: 13px; } .side th { max-width: 6em; } .side .note { max-width: 36em; }
.paper { background: #f4f4fb; } .paper caption { color: #44a; }
.missing { color: #a33; font-style: italic; }
.note { color: #555; font-size: 13px; max-width: 60em; }
.warn { background: #fff5e0; border-left: 4px solid #e0a000; padding: .5em 1em; }
.grid td, .grid th { text-align: center; vertical-align: top; font-size: 12px; }
.grid img { width: 128px; height: auto; image-rendering: pixelated; display: block; margin: 0 auto; }
.curve { max-width: 100%; }
nav a { margin-right: 1em; }
"""

SECTIONS = [
    ("accuracy", "Reward-model accuracy"),
    ("usability", "Usability"),
    ("dimensions", "Dimension scores"),
    ("gsb", "GSB"),
    ("curves", "RL curves"),
    ("images", "Images"),
    ("cost", "Timings and memory"),
]

# --- small helpers ---


def _e(text: Any) -> str:
    return html.escape(str(text))


def _missing(what: str = NOT_RUN) -> str:
    return f'<p class="missing">{_e(what)}</p>'


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _image_uri(path: Path) -> str | None:
    """An image file re-encoded as a PNG data URI (validates it and drops metadata); None when unreadable."""
    try:
        with Image.open(path) as img:
            img.load()
            img = img.convert("RGB" if img.mode not in ("L", "RGB") else img.mode)
            img.thumbnail((MAX_EMBED_PX, MAX_EMBED_PX), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            img.save(buf, format="PNG")
    except (UnidentifiedImageError, OSError):
        return None
    return _png_uri(buf.getvalue())


def _figure_uri(fig: Figure) -> str:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return _png_uri(buf.getvalue())


def table_html(table: Table) -> str:
    cls = ' class="paper"' if table.paper else ""
    anchor = f' id="{_e(table.anchor)}"' if table.anchor else ""
    out = [f"<div{anchor}>"]
    if not table.rows:
        out += [f"<p><b>{_e(table.title)}</b></p>", _missing()]
    else:
        out.append(f"<table{cls}><caption>{_e(table.title)}</caption>")
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in table.header) + "</tr>")
        for row in table.rows:
            cells = "".join(f'<td class="missing">{_e(c)}</td>' if c == NOT_RUN else f"<td>{_e(c)}</td>" for c in row)
            out.append(f"<tr>{cells}</tr>")
        out.append("</table>")
    if table.note:
        out.append(f'<p class="note">{_e(table.note)}</p>')
    out.append("</div>")
    return "\n".join(out)


def _side(*parts: str) -> str:
    return '<div class="side">' + "".join(parts) + "</div>"


# --- loading ---


def load_results(run_dir: Path) -> dict:
    path = run_dir / "results.json"
    if not path.is_file():
        raise UserError(f"{path}: no such file; give the folder of a run (e.g. runs/demo) that wrote results.json")
    results = load_json(path)
    try:
        tables.validate_results(results)
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    return results


def read_log(path: Path) -> tuple[list[dict], int]:
    """JSONL rows with a numeric step, and how many lines were unreadable (a running job may leave a partial one)."""
    rows, bad = [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int | float):
            rows.append(row)
        else:
            bad += 1
    return rows, bad


def _series(rows: list[dict], key: str) -> tuple[list[float], list[float]]:
    pts = [
        (float(r["step"]), float(r[key]))
        for r in rows
        if isinstance(r.get(key), int | float) and not isinstance(r.get(key), bool) and math.isfinite(r[key])
    ]
    return [p[0] for p in pts], [p[1] for p in pts]


def _load_records(path: Path) -> dict[tuple[str, str], dict]:
    """(task, id) -> record from eval/<model>/records.json; {} when absent or unreadable (scores are extras)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    if not isinstance(data, list):
        return {}
    return {(str(r.get("task")), str(r.get("id"))): r for r in data if isinstance(r, dict)}


# --- sections ---


def _header(results: Mapping, run_dir: Path) -> str:
    seeds = ", ".join(f"{k}={v}" for k, v in results.get("seeds", {}).items()) or NOT_RUN
    models = ", ".join(f"{k} ({v})" for k, v in results.get("models", {}).items()) or NOT_RUN
    items = [
        ("run", run_dir.resolve().name),
        ("machine", results.get("machine", "unknown")),
        ("date", results.get("date", "unknown")),
        ("seeds", seeds),
        ("models", models),
    ]
    items += [(f"not run: {name}", reason) for name, reason in results.get("skipped", {}).items()]
    nav = "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in SECTIONS)
    return (
        "<h1>OneReward run report</h1><ul>"
        + "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in items)
        + f"</ul><nav>{nav}</nav>"
    )


def _curves_section(run_dir: Path) -> str:
    logs = rl_logs(run_dir)
    if not logs:
        return _missing("not run (no rl/<model>/log.jsonl)")
    out = [
        '<p class="warn">The training reward rises even in runs whose images are ruined (PILOT.md 9); '
        "judge RL by the usability curves and the held-out tables above, never by the reward alone.</p>"
    ]
    per_model = {name: rows for name, (rows, _) in logs.items()}
    for name, (rows, bad) in logs.items():
        note = f" ({bad} unreadable line{'s' * (bad != 1)} skipped)" if bad else ""
        out.append(f"<h3>{_e(name)}: reward{_e(note)}</h3>")
        fig = reward_figure(name, rows)
        alt = f"reward curves of {_e(name)}"
        out.append(f'<img class="curve" alt="{alt}" src="{_figure_uri(fig)}">' if fig else _missing())
    out.append("<h3>Usability during RL</h3>")
    fig = usability_figure(per_model)
    out.append(f'<img class="curve" alt="usability during RL" src="{_figure_uri(fig)}">' if fig else _missing())
    return "\n".join(out)


def rl_logs(run_dir: Path) -> dict[str, tuple[list[dict], int]]:
    """{model: (rows of rl/<model>/log.jsonl, how many unreadable lines were left out)}, by model name."""
    logs = sorted(p for p in (run_dir / "rl").glob("*/log.jsonl") if p.is_file())
    return {log.parent.name: read_log(log) for log in logs}


def reward_figure(model: str, rows: list[dict]) -> Figure | None:
    """Loss and one panel per task with its reward/<task>/<dim> curves; None if nothing to plot."""
    keys = sorted({k for r in rows for k in r if k.startswith("reward/")})
    panels = [("loss", ["loss"])] if _series(rows, "loss")[0] else []
    panels += [(t, [k for k in keys if k.split("/")[1] == t]) for t in TASK_NAMES]
    panels = [(title, ks) for title, ks in panels if ks]
    if not panels:
        return None
    fig = Figure(figsize=(3.2 * len(panels), 2.8), dpi=80, layout="constrained")
    for ax, (title, ks) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels, strict=True):
        for k in ks:
            ax.plot(*_series(rows, k), label=k.split("/")[-1], lw=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if title != "loss":
            ax.legend(fontsize=6)
    fig.suptitle(f"{model}: loss and reward P(Yes) vs reference", fontsize=10)
    return fig


def usability_figure(per_model: dict[str, list[dict]]) -> Figure | None:
    """One panel per task: the held-out usability curve of every RL run; None if nothing to plot."""
    tasks = [t for t in TASK_NAMES if any(_series(rows, f"usability/{t}")[0] for rows in per_model.values())]
    if not tasks:
        return None
    fig = Figure(figsize=(3.2 * len(tasks), 2.8), dpi=80, layout="constrained")
    for ax, t in zip(np.atleast_1d(fig.subplots(1, len(tasks))), tasks, strict=True):
        for model, rows in per_model.items():
            xs, ys = _series(rows, f"usability/{t}")
            if xs:
                ax.plot(xs, ys, marker="o", ms=3, lw=1, label=model)
        ax.set_title(t, fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.suptitle("oracle usability on the held-out val conditions during RL", fontsize=10)
    return fig


def _grid_models(eval_dir: Path) -> list[str]:
    """The three models of the paper's comparison always (a missing one says "not run"), then any other found."""
    found = sorted(p.name for p in eval_dir.iterdir() if p.is_dir() and p.name != "benchmark")
    return list(GRID_MODELS) + [m for m in found if m not in GRID_MODELS]


def _score_line(record: dict | None, task: str) -> str:
    if not record or not isinstance(record.get("scores"), dict):
        return ""
    parts = []
    for d in get_task(task).dimensions:
        v = record["scores"].get(d)
        if isinstance(v, int | float) and not isinstance(v, bool):
            parts.append(f"{tables.DIM_TITLES[d][:4].lower()} {v:.2f}")
    usable = {True: "usable", False: "not usable"}.get(record.get("usable"), "")
    return "<br>".join(_e(p) for p in [usable, " ".join(parts)] if p)


def _cell(path: Path, alt: str, caption: str = "") -> str:
    if not path.is_file():
        return f'<td class="missing">{NOT_RUN}</td>'
    uri = _image_uri(path)
    if uri is None:
        return '<td class="missing">unreadable image</td>'
    return f'<td><img alt="{_e(alt)}" src="{uri}">{caption}</td>'


def _task_ids(eval_dir: Path, task: str, models: list[str]) -> list[str]:
    """Every item id of a task, sorted: the benchmark's and any model's outputs (an output without its item shows)."""
    bench = eval_dir / "benchmark" / task
    ids = {p.name for p in bench.iterdir() if p.is_dir()} if bench.is_dir() else set()
    for m in models:
        if (eval_dir / m / task).is_dir():
            ids |= {p.stem for p in (eval_dir / m / task).glob("*.png")}
    return sorted(ids)


def _images_section(run_dir: Path, max_images: int) -> str:
    eval_dir = run_dir / "eval"
    if not eval_dir.is_dir():
        return _missing("not run (no eval/ folder)")
    models = _grid_models(eval_dir)
    records = {m: _load_records(eval_dir / m / "records.json") for m in models}
    bench = eval_dir / "benchmark"
    out = []
    for task in TASK_NAMES:
        ids = _task_ids(eval_dir, task, models)
        out.append(f"<h3>{_e(task)}</h3>")
        if not ids:
            out.append(_missing())
            continue
        shown = ids[:max_images]
        head = "".join(f"<th>{_e(h)}</th>" for h in ["id", "source", "mask", *models])
        rows = []
        for i in shown:
            cells = [f"<td>{_e(i)}</td>"]
            cells.append(_cell(bench / task / i / "source.png", f"{task} {i} source"))
            cells.append(_cell(bench / task / i / "mask.png", f"{task} {i} mask"))
            for m in models:
                caption = _score_line(records[m].get((task, i)), task)
                cells.append(_cell(eval_dir / m / task / f"{i}.png", f"{task} {i} {m}", f"<div>{caption}</div>"))
            rows.append("<tr>" + "".join(cells) + "</tr>")
        more = f'<p class="note">showing {len(shown)} of {len(ids)}</p>' if len(ids) > len(shown) else ""
        out.append(f'<table class="grid"><tr>{head}</tr>{"".join(rows)}</table>{more}')
    return "\n".join(out)


# --- the page ---


def render_html(results: Mapping, run_dir: Path, max_images: int = MAX_IMAGES_PER_TASK) -> str:
    t = tables
    body = {
        "accuracy": _side(table_html(t.accuracy_table(results)), table_html(t.paper_table1()))
        + table_html(t.accuracy_detail_table(results))
        + table_html(t.accuracy_by_task_table(results)),
        "usability": _side(table_html(t.usability_table(results)), table_html(t.paper_usability_table()))
        + table_html(t.binary_rates_table(results)),
        "dimensions": table_html(t.dimension_table(results)),
        "gsb": table_html(t.gsb_table(results)),
        "curves": _curves_section(run_dir),
        "images": _images_section(run_dir, max_images),
        "cost": table_html(t.cost_table(results)),
    }
    sections = "\n".join(f'<section id="{a}"><h2>{_e(title)}</h2>\n{body[a]}</section>' for a, title in SECTIONS)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>OneReward report: {_e(run_dir.resolve().name)}</title><style>{CSS}</style></head>\n"
        f"<body>\n{_header(results, run_dir)}\n{sections}\n</body></html>\n"
    )


def write_report(run_dir: str | Path, out_path: str | Path | None = None) -> Path:
    """Write the run's self-contained HTML report (default RUN_DIR/report.html) and return its path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such folder; give the folder of a run (e.g. runs/demo)")
    results = load_results(run_dir)
    text = render_html(results, run_dir)
    out = Path(out_path) if out_path is not None else run_dir / "report.html"
    return atomic_write(out, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


# --- PNG grids (for a README) ---

TILE_PX = 128  # side of one image tile; 64 px outputs are upscaled x2 (nearest), larger ones downscaled to fit
GAP_PX = 6
LABEL_MIN_W = 116  # left column: task, id, prompt; widened to the longest task name or id
HEADER_H = 22
CAPTION_H = 16  # "usable" / "not usable" under each output
MASK_TINT = (0, 225, 255)  # the overlay on the masked region: a cyan wash plus hatching (no toy object is cyan)
INK, GREY, USABLE, NOT_USABLE = (30, 30, 30), (205, 205, 205), (20, 130, 40), (190, 40, 40)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _read_rgb(path: Path) -> Image.Image | str:
    """The image as RGB, or why not ("not run" when absent, "unreadable" when broken)."""
    if not path.is_file():
        return NOT_RUN
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError):
        return "unreadable"


def _fit(img: Image.Image) -> Image.Image:
    """Scale to fit TILE_PX: small images by a whole factor, nearest-neighbour (pixels stay crisp), large ones down."""
    side = max(img.size)
    if side <= TILE_PX:
        k = TILE_PX // side
        return img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST)
    out = img.copy()
    out.thumbnail((TILE_PX, TILE_PX), Image.Resampling.LANCZOS)
    return out


def _tile(content: Image.Image | str) -> Image.Image:
    """A TILE_PX square: the image centred, or a grey tile that says why there is none."""
    tile = Image.new("RGB", (TILE_PX, TILE_PX), "white" if isinstance(content, Image.Image) else GREY)
    if isinstance(content, Image.Image):
        img = _fit(content)
        tile.paste(img, ((TILE_PX - img.width) // 2, (TILE_PX - img.height) // 2))
    else:
        ImageDraw.Draw(tile).text((TILE_PX // 2, TILE_PX // 2), content, fill=INK, font=_font(13), anchor="mm")
    return tile


def _masked_source(item: Path) -> Image.Image | str:
    """The source with the region to generate washed and hatched, so the mask and what it covers both show."""
    source = _read_rgb(item / "source.png")
    if isinstance(source, str):
        return source
    mask = _read_rgb(item / "mask.png")
    if isinstance(mask, str):
        return f"mask {mask}"  # a source without its mask would misstate the task
    big = _fit(source)
    # same rule as onereward.io.load_mask: grey >= MASK_THRESHOLD of white is "generate here"
    cut = round(MASK_THRESHOLD * 255)
    m = mask.convert("L").resize(big.size, Image.Resampling.NEAREST).point(lambda v: 255 if v >= cut else 0)
    hatch = Image.new("L", big.size, 0)
    draw = ImageDraw.Draw(hatch)
    for x in range(-big.height, big.width, 8):
        draw.line([(x, big.height), (x + big.height, 0)], fill=255, width=2)
    tint = Image.new("RGB", big.size, MASK_TINT)
    out = Image.composite(Image.blend(big, tint, 0.35), big, m)
    return Image.composite(tint, out, Image.fromarray(np.minimum(np.asarray(m), np.asarray(hatch))))


def _prompt(item: Path, task: str) -> str:
    """The user's prompt from meta.json when the task uses one ("" otherwise, or when unreadable)."""
    if not get_task(task).uses_prompt:
        return ""
    try:
        prompt = json.loads((item / "meta.json").read_text()).get("prompt")
    except (OSError, json.JSONDecodeError, AttributeError):
        return ""
    return prompt if isinstance(prompt, str) else ""


def _wrap(text: str, font, width: int, max_lines: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] += " ..."
    return lines


def grid_figure(
    run_dir: Path, tasks: list[str] | tuple[str, ...], per_task: int = FIGURE_ITEMS_PER_TASK
) -> Image.Image:
    """One picture: a row per item (the first `per_task` of each task, in id order, as in the HTML report), columns
    source-with-mask then each model of `_grid_models`, "usable" / "not usable" from records.json under each output.
    A task without items gets one row of "not run" tiles."""
    eval_dir = Path(run_dir) / "eval"
    models = _grid_models(eval_dir) if eval_dir.is_dir() else list(GRID_MODELS)
    records = {m: _load_records(eval_dir / m / "records.json") for m in models}
    rows = [(t, i) for t in tasks for i in (_task_ids(eval_dir, t, models)[:per_task] or [None])]
    columns = ["source + mask", *models]
    big, small = _font(13), _font(11)
    names = [big.getlength(t) for t in tasks] + [small.getlength(i or "") for _, i in rows]
    label_w = max(LABEL_MIN_W, math.ceil(max(names, default=0)) + 2 * GAP_PX)

    cell_w, cell_h = TILE_PX + GAP_PX, TILE_PX + CAPTION_H + GAP_PX
    fig = Image.new("RGB", (label_w + len(columns) * cell_w + GAP_PX, HEADER_H + len(rows) * cell_h + GAP_PX), "white")
    draw = ImageDraw.Draw(fig)
    for c, name in enumerate(columns):
        font = big if big.getlength(name) <= TILE_PX else small  # a long model name must not run into the next
        draw.text((label_w + c * cell_w + TILE_PX // 2, HEADER_H // 2), name, fill=INK, font=font, anchor="mm")

    for r, (task, item_id) in enumerate(rows):
        y = HEADER_H + r * cell_h
        item = eval_dir / "benchmark" / task / (item_id or "")
        lines = [item_id, *_wrap(_prompt(item, task), small, label_w - 2 * GAP_PX, 4)] if item_id else ["no items"]
        draw.text((GAP_PX, y + 4), task, fill=INK, font=big)
        draw.multiline_text((GAP_PX, y + 22), "\n".join(lines), fill=INK, font=small, spacing=3)
        fig.paste(_tile(_masked_source(item) if item_id else NOT_RUN), (label_w, y))
        for c, m in enumerate(models, start=1):
            x = label_w + c * cell_w
            fig.paste(_tile(_read_rgb(eval_dir / m / task / f"{item_id}.png") if item_id else NOT_RUN), (x, y))
            usable = (records[m].get((task, item_id)) or {}).get("usable")
            if usable in (True, False):
                text, colour = ("usable", USABLE) if usable else ("not usable", NOT_USABLE)
                draw.text((x + TILE_PX // 2, y + TILE_PX + 2), text, fill=colour, font=small, anchor="mt")
    return fig


def check_figures_dir(out_dir: Path) -> None:
    """Fail before any work when the figure folder cannot be one."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--figures {out_dir}: is a file; give a folder (it is created when missing)")


def write_figures(run_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the FIGURES grids and, for a run with RL logs, the RL curves (USABILITY_FIGURE, one REWARD_FIGURE per
    run) into out_dir (created when missing), each atomically; return their paths."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such folder; give the folder of a run (e.g. runs/demo)")
    check_figures_dir(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--figures {out_dir}: cannot create the folder ({e.strerror})") from None
    paths = []
    for name, tasks in FIGURES.items():
        fig = grid_figure(run_dir, tasks)
        paths.append(atomic_write(out_dir / name, lambda tmp, fig=fig: fig.save(tmp, format="PNG", optimize=True)))
    per_model = {name: rows for name, (rows, _) in rl_logs(run_dir).items()}
    curves = [(USABILITY_FIGURE, usability_figure(per_model))]
    curves += [(REWARD_FIGURE.format(model=m), reward_figure(m, rows)) for m, rows in per_model.items()]
    for name, fig in curves:
        if fig is not None:
            paths.append(atomic_write(out_dir / name, lambda tmp, fig=fig: FigureCanvasAgg(fig).print_png(tmp)))
    # a curve of an earlier run in a reused folder (another RL run's name, or RL skipped this time) would pass for
    # this run's: remove our own curve files that this run did not write
    ours = [out_dir / USABILITY_FIGURE, *out_dir.glob(REWARD_FIGURE.format(model="*"))]
    for stale in set(ours) - set(paths):
        stale.unlink(missing_ok=True)
    return paths
