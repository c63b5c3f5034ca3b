"""The labelling page: label.html beside a candidates folder's to_label.jsonl, for people to pick best and worst.

A static, self-contained page (no server, no network): one card per (condition, dimension) row with the source, the
mask and the N candidates, read from the folder by relative path; a "best" and a "worst" choice under each candidate
(choosing one as both clears the other); choices kept in the browser's localStorage, so a reload restores them
(the browser stores a click within moments, not at once); "Download labels.jsonl" writes every row, best/worst
filled in where both were chosen (else null): the file `onereward import-labels` reads.
"""

from __future__ import annotations

import hashlib
import html
import json
from pathlib import Path

from onereward.io import atomic_write

PAGE = "label.html"

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OneReward labelling: __TITLE__</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; background: #fafafa; }
header { position: sticky; top: 0; background: #fafafa; padding: .5em 0; border-bottom: 1px solid #ccc; z-index: 1; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; margin: 1em 0; padding: .8em; }
.card.done { border-color: #4a4; }
.row { display: flex; gap: .8em; flex-wrap: wrap; align-items: flex-start; }
figure { margin: 0; text-align: center; }
img { width: 192px; height: auto; image-rendering: pixelated; border: 1px solid #ccc; display: block; }
.def { color: #555; }
label { margin: 0 .3em; }
</style></head>
<body>
<header><b>__TITLE__</b> &mdash; pick the best and the worst candidate on the named dimension.
<span id="progress"></span> <button id="download">Download labels.jsonl</button></header>
<main id="cards"></main>
<script>
"use strict";
const ROWS = __ROWS__;
const KEY = "onereward-labels-__KEY__";
const saved = JSON.parse(localStorage.getItem(KEY) || "{}");
const id = r => r.condition + "|" + r.dimension;
function save() { localStorage.setItem(KEY, JSON.stringify(saved)); progress(); }
function progress() {
  const done = ROWS.filter(r => saved[id(r)] && saved[id(r)].best && saved[id(r)].worst).length;
  document.getElementById("progress").textContent = done + " of " + ROWS.length + " labelled";
  for (const r of ROWS) {
    const s = saved[id(r)] || {};
    document.getElementById("card-" + ROWS.indexOf(r)).classList.toggle("done", !!(s.best && s.worst));
  }
}
function figure(src, caption) {
  const f = document.createElement("figure");
  const img = document.createElement("img");
  img.src = src; img.alt = caption; img.loading = "lazy";
  const c = document.createElement("figcaption"); c.textContent = caption;
  f.append(img, c);
  return f;
}
ROWS.forEach((r, i) => {
  const card = document.createElement("section");
  card.className = "card"; card.id = "card-" + i;
  const h = document.createElement("h3");
  h.textContent = r.condition + " \\u2014 " + r.task + " \\u2014 " + r.dimension;
  const d = document.createElement("p"); d.className = "def";
  d.textContent = r.definition + (r.prompt ? " Prompt: \\u201c" + r.prompt + "\\u201d" : "");
  const row = document.createElement("div"); row.className = "row";
  row.append(figure(r.condition + "/source.png", "source"), figure(r.condition + "/mask.png", "mask"));
  for (const c of r.candidates) {
    const f = figure(r.condition + "/" + c + ".png", c);
    for (const which of ["best", "worst"]) {
      const l = document.createElement("label");
      const b = document.createElement("input");
      b.type = "radio"; b.name = which + "-" + i; b.value = c; b.dataset.which = which;
      b.checked = (saved[id(r)] || {})[which] === c;
      b.addEventListener("change", () => {
        const s = saved[id(r)] = saved[id(r)] || {};
        s[which] = c;
        const other = which === "best" ? "worst" : "best";
        if (s[other] === c) {
          s[other] = null;
          card.querySelectorAll("input[data-which=" + other + "]").forEach(x => { x.checked = false; });
        }
        save();
      });
      l.append(b, " " + which);
      f.append(l);
    }
    row.append(f);
  }
  card.append(h, d, row);
  document.getElementById("cards").append(card);
});
document.getElementById("download").addEventListener("click", () => {
  const lines = ROWS.map(r => {
    const s = saved[id(r)] || {};
    const done = !!(s.best && s.worst);  // a half-labelled row goes out unlabelled
    return JSON.stringify({condition: r.condition, task: r.task, dimension: r.dimension,
                           best: done ? s.best : null, worst: done ? s.worst : null});
  });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([lines.join("\\n") + "\\n"], {type: "application/jsonl"}));
  a.download = "labels.jsonl";
  document.body.append(a); a.click(); a.remove();
});
progress();
</script></body></html>
"""


def write_label_page(folder: str | Path, rows: list[dict]) -> Path:
    """folder/label.html for these to_label rows (condition, task, prompt, dimension, definition, candidates)."""
    folder = Path(folder)
    keep = ("condition", "task", "prompt", "dimension", "definition", "candidates")
    data = json.dumps([{k: r[k] for k in keep} for r in rows]).replace("</", "<\\/")  # no early </script>
    key = hashlib.sha1(data.encode()).hexdigest()[:12]  # a new sheet does not inherit another one's choices
    page = (
        _TEMPLATE.replace("__TITLE__", html.escape(folder.resolve().name))
        .replace("__KEY__", key)
        .replace("__ROWS__", data)
    )
    return atomic_write(folder / PAGE, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
