"""The HTML report: built from a hand-made run folder (TEST DATA, not results), checked as text and in a real
headless Chromium (Debian's /usr/bin/chromium driven by Playwright; `make browser` installs it)."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onereward.errors import UserError
from onereward.eval.commands import report
from onereward.eval.report import (
    CAPTION_H,
    FIGURES,
    GAP_PX,
    GREY,
    HEADER_H,
    REWARD_FIGURE,
    TILE_PX,
    USABILITY_FIGURE,
    grid_figure,
    write_report,
)
from onereward.io import save_image, save_json

CHROMIUM = os.environ.get("ONEREWARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Fake but plausible numbers, chosen so each shows up in exactly one formatted cell.
FAKE_RESULTS = {
    "reward_accuracy": {
        "fill": {"text_alignment": 0.971, "consistency": 0.642, "structure": 0.923, "aesthetics": 0.588},
        "extend": {"text_alignment": 0.611},
        "removal": {"removal_quality": 0.503},
    },
    "reward_accuracy_detail": {
        "removal": {"removal_quality": {"two_order": 0.503, "one_order": 0.708, "n": 24, "position_bias_flag": True}}
    },
    "reward_accuracy_by_task": {"text": {"structure": {"two_order": 0.854, "n": 65}}},
    "usability": {
        "base": {"fill": 0.165, "text": 0.05, "extend": 0.34, "extend_noprompt": 0.31, "removal": 0.73},
        "onereward": {"fill": 0.285, "text": 0.1, "extend": 0.4, "extend_noprompt": 0.33, "removal": 0.75},
    },
    "dimension_scores": {"base": {"removal": {"removal_quality": 0.812}}},
    "gsb": {"onereward_vs_base": {"fill": {"good": 0.59, "same": 0.38, "bad": 0.03}}},
    "timings": {"data": 54.2, "rl": 121.7},
    "peak_memory_mb": {"rl": 2048.0},
    "models": {"base": "models/base", "onereward": "models/onereward", "onereward_dynamic": "models/dyn"},
    "machine": "test machine, 2 cores",
    "date": "2025-01-01",
    "seeds": {"eval": 1234},
}


N_IMAGES = 3 * 4 + 2  # grid: 3 benchmark conditions x (source, mask, base, onereward); 2 RL plots


def make_run(root: Path, results=FAKE_RESULTS) -> Path:
    """A run folder with results.json, a few 16 px images, records and an RL log with a partly written last line."""
    rng = np.random.default_rng(0)
    save_json(root / "results.json", results)
    bench, ev = root / "eval" / "benchmark", root / "eval"
    for task, ids in {"fill": ["0000", "0001"], "removal": ["0000"]}.items():
        for i in ids:
            save_image(bench / task / i / "source.png", rng.random((16, 16, 3)))
            save_image(bench / task / i / "mask.png", (rng.random((16, 16)) > 0.5).astype(np.float32))
            for model in ("base", "onereward"):
                save_image(ev / model / task / f"{i}.png", rng.random((16, 16, 3)))
    save_json(
        ev / "onereward" / "records.json",
        [{"id": "0000", "task": "removal", "scores": {"removal_quality": 0.876}, "usable": True}],
    )
    log = root / "rl" / "onereward" / "log.jsonl"
    log.parent.mkdir(parents=True)
    rows = [
        {
            "step": s,
            "loss": 0.4 - 0.01 * s,
            "reward/fill/text_alignment": 0.5 + 0.01 * s,
            "reward/removal/removal_quality": 0.5,
        }
        | ({"usability/fill": 0.2 + 0.01 * s, "usability/removal": 0.7} if s % 5 == 0 else {})
        for s in range(11)
    ]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 11, "lo')
    return root


def test_report_is_self_contained_and_shows_every_piece(tmp_path):
    run = make_run(tmp_path / "run")
    path = write_report(run)
    assert path == run / "report.html"
    text = path.read_text()
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:image/png;base64,|#)""", text)  # nothing to fetch
    assert "@import" not in text and "url(" not in text
    assert text.count("data:image/png;base64,") == N_IMAGES
    assert "paper, on its benchmark" in text and "83.77" in text and "69.04" in text
    assert "50.3 †" in text and "24 (small)" in text  # position bias and small n are called out
    assert "per task row" in text and "85.4" in text  # the fill family's text-rendering row on its own
    assert "1 unreadable line skipped" in text
    assert "usable" in text and "remo 0.88" in text  # scores under the removal image of onereward
    assert "judge RL by the usability curves" in text


def test_report_of_a_run_that_did_nothing_yet_says_not_run(tmp_path):
    run = tmp_path / "run"
    save_json(run / "results.json", {})
    text = write_report(run, tmp_path / "elsewhere" / "r.html").read_text()
    assert text.count("not run") >= 8
    assert "no rl/&lt;model&gt;/log.jsonl" in text and "no eval/ folder" in text
    assert "83.77" in text  # the paper's numbers are still shown, labelled


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "no such file"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "should be an object"),
        ('{"usability": {"base": {"fill": 16.5}}}', "fractions in"),
        ('{"gsb": {"x": {"inpaint": {}}}}', "unknown name 'inpaint'"),
    ],
)
def test_bad_results_json_is_a_one_line_user_error(tmp_path, content, match):
    run = tmp_path / "run"
    run.mkdir()
    if content is not None:
        (run / "results.json").write_text(content)
    with pytest.raises(UserError, match=match) as err:
        write_report(run)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="no such folder"):
        write_report(tmp_path / "missing")


def test_cli_command_writes_where_asked(tmp_path, capsys):
    run = tmp_path / "run"
    save_json(run / "results.json", {"usability": {"base": {"fill": 0.5}}})
    path = report(run, tmp_path / "out.html")
    assert path.is_file() and "wrote" in capsys.readouterr().out


# --- PNG grids ---


def test_figures_are_pngs_with_a_row_per_item_and_a_column_per_model(tmp_path, capsys):
    run = make_run(tmp_path / "run")
    out = tmp_path / "figs"
    report(run, tmp_path / "r.html", figures=out)
    printed = capsys.readouterr().out
    curves = [USABILITY_FIGURE, REWARD_FIGURE.format(model="onereward")]  # the run's one RL log
    assert sorted(p.name for p in out.iterdir()) == sorted([*FIGURES, *curves])  # no temporary file left behind
    for name in [*FIGURES, *curves]:
        assert str(out / name) in printed
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.width > (4 * TILE_PX if name in FIGURES else 200)
    # a run without RL logs gets the grids alone; into a reused folder, the earlier run's curves are removed and
    # other files are left alone
    (run / "rl" / "onereward" / "log.jsonl").unlink()
    report(run, tmp_path / "r2.html", figures=tmp_path / "figs2")
    assert sorted(p.name for p in (tmp_path / "figs2").iterdir()) == sorted(FIGURES)
    (out / "notes.txt").write_text("mine")
    report(run, tmp_path / "r3.html", figures=out)
    assert sorted(p.name for p in out.iterdir()) == sorted([*FIGURES, "notes.txt"])

    # rows: one per item shown (a task without items gets one "not run" row); the header row on top
    one, two = grid_figure(run, ["fill"], per_task=1), grid_figure(run, ["fill"], per_task=3)
    row_h = two.height - one.height
    assert row_h > TILE_PX
    assert grid_figure(run, ["fill", "removal"]).height == one.height + 2 * row_h
    assert grid_figure(run, ["fill", "text"]).height == two.height + row_h

    # columns: source + mask, base, onereward, onereward_dynamic, then any other model found in eval/
    save_image(run / "eval" / "opencv" / "fill" / "0000.png", np.zeros((16, 16, 3)))
    wider = grid_figure(run, ["fill"], per_task=1)
    assert wider.width - one.width == TILE_PX + GAP_PX and wider.height == one.height


def test_figure_shows_missing_outputs_as_grey_tiles_and_usability_under_judged_ones(tmp_path):
    run = make_run(tmp_path / "run")
    (run / "eval" / "base" / "removal" / "0000.png").unlink()
    (run / "eval" / "benchmark" / "removal" / "0000" / "mask.png").unlink()
    fig = np.asarray(grid_figure(run, ["removal"]))  # one row; columns ..., base, onereward, onereward_dynamic
    assert fig.shape[0] == HEADER_H + TILE_PX + CAPTION_H + 2 * GAP_PX  # header, tile, caption, gaps

    def tile(col_from_right):
        x = fig.shape[1] - GAP_PX - col_from_right * (TILE_PX + GAP_PX)
        return fig[HEADER_H : HEADER_H + TILE_PX, x : x + TILE_PX], fig[HEADER_H + TILE_PX : -GAP_PX, x : x + TILE_PX]

    dynamic, dynamic_caption = tile(1)  # never run
    onereward, onereward_caption = tile(2)  # output and a record saying usable
    base, base_caption = tile(3)  # output deleted
    source, _ = tile(4)  # mask deleted: the source alone would misstate the task
    for missing in (dynamic, base, source):
        assert (missing[:8, :8] == GREY).all()  # a grey "not run" tile ...
        assert (missing != GREY).any()  # ... with its words on it
    assert not (onereward == GREY).all(axis=-1).any()
    assert (dynamic_caption == 255).all() and (base_caption == 255).all()  # no record: nothing claimed
    ink = onereward_caption[(onereward_caption != 255).any(axis=-1)].astype(int)
    assert len(ink) and (ink[:, 1] > ink[:, 0]).mean() > 0.8  # green "usable"


def test_figures_into_a_file_is_a_one_line_user_error_before_any_writing(tmp_path):
    run = make_run(tmp_path / "run")
    (tmp_path / "taken").write_text("x")
    with pytest.raises(UserError, match="is a file") as err:
        report(run, tmp_path / "r.html", figures=tmp_path / "taken")
    assert "\n" not in str(err.value) and not (tmp_path / "r.html").exists()


# --- a real browser ---


def _browser():
    """Playwright with Debian's Chromium. Missing pieces FAIL the test (CI must prove the page renders), never skip."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: install it with `make browser` (apt-get install chromium chromium-driver)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the playwright package is missing: `make install` installs the dev extras")
    return sync_playwright


def _table(page, caption: str) -> list[list[str]]:
    return page.evaluate(
        """cap => {
            const t = [...document.querySelectorAll('table')].find(t => t.caption && t.caption.innerText === cap);
            return t ? [...t.rows].map(r => [...r.cells].map(c => c.innerText.trim())) : null;
        }""",
        caption,
    )


def test_report_renders_in_headless_chromium(tmp_path):
    sync_playwright = _browser()
    path = write_report(make_run(tmp_path / "run"))
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            widths = page.evaluate("[...document.images].map(i => [i.alt, i.complete, i.naturalWidth])")
            usability = _table(page, "Usability (ours, %)")
            paper_use = _table(page, "Usability (paper, on its benchmark, %)")
            accuracy = _table(page, "Reward-model accuracy (ours)")
            paper_acc = _table(page, "Reward-model accuracy (paper, on its benchmark: Table 1)")
            gsb = _table(page, "GSB (ours, Good / Same / Bad %)")
            cost = _table(page, "Timings and peak memory per stage")
            grid_missing = page.locator(".grid td.missing").count()
        finally:
            browser.close()

    assert errors == []
    assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
    assert len(widths) == N_IMAGES and all(done and w > 0 for _, done, w in widths), widths
    assert usability[0] == ["model", "fill", "text", "extend", "extend (no prompt)", "removal"]
    assert usability[1:] == [
        ["base", "16.5", "5.0", "34.0", "31.0", "73.0"],
        ["onereward", "28.5", "10.0", "40.0", "33.0", "75.0"],
        ["onereward_dynamic", "not run", "not run", "not run", "not run", "not run"],
    ]
    assert paper_use[1] == ["Seedream 3.0 Fill + OneReward", "69.04", "-", "64.72", "87.54", "82.22"]
    assert accuracy[1] == ["Image Fill", "97.1", "64.2", "92.3", "58.8", "-"]
    assert accuracy[2] == ["Image Extend", "61.1", "not run", "not run", "not run", "-"]
    assert accuracy[3][-1] == "50.3 †"
    assert paper_acc[3] == ["Object Removal", "-", "-", "-", "-", "84.93"]
    assert gsb[1] == ["onereward_vs_base", "59.0 / 38.0 / 3.0", "not run", "not run", "not run", "not run"]
    assert cost[1:] == [["data", "54.2", "not run"], ["rl", "121.7", "2048"], ["total", "175.9", ""]]
    assert grid_missing == 3  # onereward_dynamic has no outputs yet: its column says "not run"


def test_the_cost_table_counts_stages_run_side_by_side_once():
    from onereward.eval.tables import cost_table

    results = {"timings": {"pretrain": 300.0, "rl_a": 98.0, "rl_b": 97.0}, "peak_memory_mb": {}}
    assert cost_table(results).rows[-1] == ["total", "495.0", ""]  # no total recorded: the sum
    results["total_seconds"] = 398.0  # as the demo records it: the two RL runs overlapped
    assert cost_table(results).rows[-1] == ["total (stages side by side count once)", "398.0", ""]
