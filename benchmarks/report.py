"""``report.html``: one self-contained page per run — open it, share it, nothing else needed.

No network and no external files: styles are inline and every figure is embedded as a base64 PNG. Sections:
Table 2 (each measured cell beside the paper's number, with significance marks), explanation quality, map
fidelity (when a method has a decoder), MoRF curves and example grids (``figures/``), timings, failed cells with
their log files, the resolved settings and the environment. Written by every run and by
``python -m benchmarks.tables RUN_DIR``; ``python -m benchmarks.screenshot_report RUN_DIR`` renders it in headless
Chromium.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from core.artifacts import atomic_write_bytes
from benchmarks.results import read_results, read_rows
from benchmarks.table_frames import PAPER_METHODS, _marks, explanations_wide, fidelity_wide, table2_legend

REPORT_FILE = "report.html"
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1300px;
       color: #1d1d1f; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.meta { color: #555; } table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; vertical-align: top; }
th { background: #f2f2f4; } td.text, th.text { text-align: left; } td { white-space: nowrap; }
.scroll { overflow-x: auto; max-width: 100%; }
.paper { color: #666; font-size: 0.85em; } .pos { color: #17663a; } .neg { color: #a12622; }
.mark { color: #b35900; font-weight: bold; } .error { color: #a12622; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; } figure img { max-width: 620px; }
figcaption { font-size: 0.85em; color: #555; } pre { background: #f6f6f8; padding: 0.8em; overflow-x: auto;
font-size: 0.85em; } nav a { margin-right: 1em; }
"""
SECTIONS = (("table2", "Table 2"), ("explanations", "Explanation quality"), ("fidelity", "Map fidelity"),
            ("figures", "Figures"), ("timings", "Timings"), ("failures", "Failed cells"),
            ("config", "Settings"), ("environment", "Environment"))


def _e(value: Any) -> str:
    return html.escape(str(value))


def frame_html(frame: pd.DataFrame, text_columns: int = 2) -> str:
    """A plain HTML table of ``frame`` (all cells escaped; the first ``text_columns`` left-aligned)."""
    head = "".join(f'<th class="{"text" if i < text_columns else ""}">{_e(c)}</th>'
                   for i, c in enumerate(frame.columns))
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(f'<td class="{"text" if i < text_columns else ""}">{_e("" if v is None else v)}</td>'
                        for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<div class=\"scroll\"><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def _number(value: Any) -> float | None:
    return None if value is None or value != value else float(value)


def table2_html(records: list[dict[str, Any]]) -> str:
    """Rows dataset x backbone, one column per method: measured mean ± std with marks, the paper's value and the
    difference under it where the cell matches a paper cell."""

    if not records:
        return "<p>No cell produced an accuracy.</p>"
    seen = list(dict.fromkeys(r["method"] for r in records))
    methods = [m for m in PAPER_METHODS if m in seen] + [m for m in seen if m not in PAPER_METHODS]
    rows: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for r in records:
        rows.setdefault((r["dataset"], r["backbone"]), {})[r["method"]] = r
    head = "".join(f"<th>{_e(m)}</th>" for m in methods)
    body = []
    for (dataset, backbone), cells in rows.items():
        tds = []
        for m in methods:
            r = cells.get(m)
            if r is None:
                tds.append("<td></td>")
                continue
            text = f"{r['mean']:.2f}" if r["n"] <= 1 else f"{r['mean']:.2f} ± {r['std']:.2f}"
            # the same marks as table2.md (direction, undefined t-test), from the same p-values
            marks = _marks({k: (float("nan") if v is None else v) for k, v in r.items()})
            cell = f"{_e(text)}<span class=\"mark\">{_e(marks)}</span> <small>(n={int(r['n'])})</small>"
            paper = _number(r.get("paper"))
            if paper is not None:
                delta = r["mean"] - paper
                cell += (f'<br><span class="paper">paper {paper:.2f} · '
                         f'<span class="{"pos" if delta >= 0 else "neg"}">Δ {delta:+.2f}</span></span>')
            tds.append(f"<td>{cell}</td>")
        body.append(f'<tr><td class="text">{_e(dataset)}</td><td class="text">{_e(backbone)}</td>{"".join(tds)}</tr>')
    return (f'<table><thead><tr><th class="text">dataset</th><th class="text">backbone</th>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>"
            "<p class=\"meta\">Test accuracy (%), measured by this suite: mean ± std over n seeds. Under a cell: "
            "the IMPACTX paper's reported number (reference, not measured here) and Δ = measured − paper. "
            f"{_e(table2_legend(records[0].get('correction') or 'none'))}</p>")


def figure_html(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{_e(path.stem)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(path.name)}</figcaption></figure>")


def build_report(out: str | Path, results: dict[str, Any] | None = None) -> str:
    """The page for the run in ``out`` (``results``: its ``results.json`` content, read when not given)."""

    out = Path(out)
    results = read_results(out) if results is None else results
    env = results.get("environment") or {}
    parts = [f"<h1>impactx-bench run: {_e(out.name)}</h1>",
             f'<p class="meta">{_e(out.resolve())} · started {_e(results.get("started") or "?")} · finished '
             f'{_e(results.get("finished") or "?")} · git {_e(env.get("git_sha", "?"))} · '
             f'{_e(env.get("device_name", ""))}'
             "</p>", "<nav>" + "".join(f'<a href="#{k}">{_e(t)}</a>' for k, t in SECTIONS) + "</nav>"]
    parts += ['<h2 id="table2">Table 2: test accuracy</h2>', table2_html(results.get("table2") or [])]

    parts.append('<h2 id="explanations">Explanation quality</h2>')
    long = pd.DataFrame(results.get("explanations") or [])
    if long.empty:
        parts.append("<p>No explanation scores (run without --no-explain-eval to get them).</p>")
    else:
        wide = explanations_wide(long, images=pd.DataFrame(results.get("explanation_images") or []))
        parts += [frame_html(wide, text_columns=4),
                  '<p class="meta">↑ higher is better, ↓ lower is better; source = whose map: the method\'s own, a '
                  "post-hoc explainer applied to the same model, random or constant; mean ± std over seeds.</p>"]

    parts.append('<h2 id="fidelity">Map fidelity</h2>')
    fidelity = fidelity_wide(read_rows(out)) if (out / "rows.csv").exists() else pd.DataFrame()
    parts.append("<p>No method with a decoder in this run.</p>" if fidelity.empty else
                 frame_html(fidelity, text_columns=3) + '<p class="meta">map_fidelity = 1 − MSE(decoder) / '
                 "MSE(per-class mean map) on validation teacher maps (≤ 0: nothing image-specific).</p>")

    parts.append('<h2 id="figures">Figures: MoRF curves and example maps</h2>')
    pngs = sorted((out / "figures").glob("*.png"), key=lambda p: (not p.name.startswith("morf_"), p.name)) \
        if (out / "figures").is_dir() else []
    parts.append("".join(figure_html(p) for p in pngs) or "<p>No figures.</p>")

    parts.append('<h2 id="timings">Timings</h2>')
    timings = pd.DataFrame(results.get("timings") or [])
    parts.append("<p>No timings.</p>" if timings.empty else
                 frame_html(timings.round(1).astype(object).where(timings.notna(), ""), text_columns=3)
                 + '<p class="meta">Wall time in seconds, median over seeds (a cached stage keeps the time it took '
                   "when it ran).</p>")

    parts.append('<h2 id="failures">Failed cells</h2>')
    failed = [c for c in results.get("cells") or [] if c.get("error")]
    parts.append("<p>None: every cell ran.</p>" if not failed else "<ul>" + "".join(
        f'<li class="error">{_e(c["method"])} / {_e(c["backbone"])} / {_e(c["dataset"])} / seed {_e(c["seed"])}: '
        f'{_e(c["error"])} — <a href="{_e(c["log"])}">{_e(c["log"])}</a></li>' for c in failed) + "</ul>")

    parts.append('<h2 id="config">Settings</h2>')
    resolved = out / "resolved.toml"
    settings = resolved.read_text() if resolved.exists() else json.dumps(results.get("config"), indent=1)
    parts.append(f"<pre>{_e(settings)}</pre>")
    parts += ['<h2 id="environment">Environment</h2>', f"<pre>{_e(json.dumps(env, indent=1, default=str))}</pre>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>impactx-bench: {_e(out.name)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def write_report(out: str | Path) -> Path:
    path = Path(out) / REPORT_FILE
    atomic_write_bytes(path, build_report(out).encode("utf-8"))
    return path
