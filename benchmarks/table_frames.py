"""Table frames from tidy rows: Table 2 with paired tests and marks, the explanation, map-fidelity, budget and
timing tables, Markdown and LaTeX rendering. Pure functions of ``rows.csv`` / ``per_image.csv`` frames;
:mod:`benchmarks.tables` writes them into a run folder.

Tables from tidy rows, without retraining: Table 2 (accuracy) and the explanation-quality table.

  python -m benchmarks.tables results/runs/smoke                     # rewrites table2.* and explanations.* there
  python -m benchmarks.tables results/runs/smoke --correction holm   # marks from Holm-adjusted p-values

Table 2 keeps the paper's layout (rows: dataset x backbone; columns: methods), mean ± std over seeds. The paper's
numbers (``benchmarks/paper_table2.csv``) appear only in separate columns labelled "paper" and "Δ paper", and only for
cells that match a paper cell (same dataset, backbone and method).

Paired tests of every method against the baseline of its row, both two-sided at ``ALPHA``: a t-test over seeds
(defined only with at least ``MIN_SEEDS_T`` paired seeds and differences that are not all equal; otherwise its p is
NaN, shown as ``°``) and an exact McNemar test over test images pooled over seeds (two-sided binomial test on the
discordant pairs). Marks show direction: ``*`` / ``†`` significantly better, ``*⁻`` / ``†⁻`` significantly worse.
``--correction holm`` adjusts each test's p-values over the methods of a row (Holm step-down) before marking.

LaTeX output is plain ASCII (every special character escaped, symbols as math) and needs only the packages its
header comment names (booktabs, graphicx); blocks wider than the line are shrunk to ``\\linewidth``.
"""
from __future__ import annotations

import math
import re
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

import benchmarks.scores  # noqa: F401  (declares every score)
from benchmarks.profiles import PAPER_METHODS
from core.scores import SCORES, names_of_kind

REFERENCE = Path(__file__).resolve().parent / "paper_table2.csv"  # shipped in the wheel (package data)
ALPHA = 0.05
MIN_SEEDS_T = 3  # a t-test on 2 paired seeds has 1 degree of freedom: reported as undefined, not as a mark
CORRECTIONS = ("none", "holm")
MARK_BETTER = {"seeds": "*", "images": "†"}
MARK_WORSE = {"seeds": "*⁻", "images": "†⁻"}
MARK_T_UNDEFINED = "°"
ARROW = {"higher": "↑", "lower": "↓"}
LATEX_ARROW = {"higher": r"$\uparrow$", "lower": r"$\downarrow$"}


def load_reference(path: Path = REFERENCE) -> pd.DataFrame:
    return pd.read_csv(path)


def summarize(rows: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Mean, std and count over seeds per (dataset, backbone, method) of one metric; error rows excluded."""
    ok = rows[(rows["metric"] == metric) & (rows["error"] == "")]
    grouped = ok.groupby(["dataset", "backbone", "method"], sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def mcnemar_p(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar test on paired boolean correctness vectors (a binomial test on the discordant
    pairs; 1.0 when there are none)."""
    from scipy.stats import binomtest

    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_t_p(ours: np.ndarray, base: np.ndarray) -> float:
    """Two-sided paired t-test p over seeds; NaN (undefined, not 0) with fewer than ``MIN_SEEDS_T`` pairs or when
    every seed gives the same difference (zero variance: t is infinite or 0/0, no p-value a reviewer accepts)."""
    from scipy.stats import ttest_rel

    ours, base = np.asarray(ours, float), np.asarray(base, float)
    if len(ours) < MIN_SEEDS_T:
        return float("nan")
    diff = ours - base
    scale = max(1.0, float(np.abs(np.concatenate([ours, base])).max()))
    if float(np.std(diff)) <= 1e-9 * scale:  # equal up to float noise (accuracies are multiples of 100 / N)
        return float("nan")
    return float(ttest_rel(ours, base).pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries stay NaN and do not count as comparisons."""
    p = np.asarray(pvalues, float)
    out = np.full(p.shape, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    m = len(defined)
    running = 0.0
    for rank, i in enumerate(defined[np.argsort(p[defined], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


STATS_COLUMNS = ["dataset", "backbone", "method", "n_seeds", "mean_diff", "p_seeds", "n_images", "better_images",
                 "worse_images", "p_images", "correction", "p_seeds_adj", "p_images_adj"]


def paired_tests(rows: pd.DataFrame, per_image: pd.DataFrame | None, baseline: str = "baseline",
                 correction: str = "none") -> pd.DataFrame:
    """Every method against the baseline of the same (dataset, backbone): paired over seeds (`paired_t_p`) and
    over test images pooled over those seeds (`mcnemar_p`). ``better_images`` / ``worse_images``: the discordant
    pairs (method right and baseline wrong / the reverse). ``p_*_adj``: the p-values the marks use (Holm over the
    methods of a row with ``correction="holm"``, else the raw ones)."""
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
    acc = rows[(rows["metric"] == "accuracy") & (rows["error"] == "")]
    out = []
    for (dataset, backbone), cell in acc.groupby(["dataset", "backbone"], sort=False):
        base = cell[cell["method"] == baseline].set_index("seed")["value"]
        for method, sub in cell[cell["method"] != baseline].groupby("method", sort=False):
            values = sub.set_index("seed")["value"]
            seeds = sorted(set(base.index) & set(values.index))
            diff = values[seeds] - base[seeds] if seeds else pd.Series(dtype=float)
            images = _image_counts(per_image, dataset, backbone, method, baseline, seeds)
            out.append({"dataset": dataset, "backbone": backbone, "method": method, "n_seeds": len(seeds),
                        "mean_diff": float(diff.mean()) if len(seeds) else float("nan"),
                        "p_seeds": paired_t_p(values[seeds].to_numpy(), base[seeds].to_numpy()), **images})
    frame = pd.DataFrame(out, columns=STATS_COLUMNS)
    frame["correction"] = correction
    for test in ("seeds", "images"):
        frame[f"p_{test}_adj"] = frame[f"p_{test}"]
        if correction == "holm" and not frame.empty:
            for _, idx in frame.groupby(["dataset", "backbone"], sort=False).groups.items():
                frame.loc[idx, f"p_{test}_adj"] = holm(frame.loc[idx, f"p_{test}"].to_numpy())
    return frame


def _image_counts(per_image, dataset, backbone, method, baseline, seeds) -> dict[str, float]:
    """McNemar over the test images of ``seeds`` pooled (seeds whose vectors are missing or differ in length are
    left out)."""
    empty = {"n_images": 0, "better_images": float("nan"), "worse_images": float("nan"), "p_images": float("nan")}
    if per_image is None or not seeds:
        return empty
    cell = per_image[(per_image["dataset"] == dataset) & (per_image["backbone"] == backbone)]
    a, b = [], []
    for seed in seeds:
        ours = cell[(cell["method"] == method) & (cell["seed"] == seed)]["correct"]
        base = cell[(cell["method"] == baseline) & (cell["seed"] == seed)]["correct"]
        if len(ours) and len(base) and len(ours.iloc[0]) == len(base.iloc[0]):
            a.append(np.frombuffer(ours.iloc[0].encode(), np.uint8) == ord("1"))
            b.append(np.frombuffer(base.iloc[0].encode(), np.uint8) == ord("1"))
    if not a:
        return empty
    a, b = np.concatenate(a), np.concatenate(b)
    return {"n_images": len(a), "better_images": int(np.sum(a & ~b)), "worse_images": int(np.sum(~a & b)),
            "p_images": mcnemar_p(a, b)}


def table2_long(rows: pd.DataFrame, per_image: pd.DataFrame | None = None,
                reference: pd.DataFrame | None = None, correction: str = "none") -> pd.DataFrame:
    """One row per (dataset, backbone, method): mean, std, n, paper reference, delta, the paired tests against the
    baseline (see `paired_tests`)."""
    reference = load_reference() if reference is None else reference
    summary = summarize(rows)
    ref = reference[["dataset", "backbone", "method", "accuracy"]].rename(columns={"accuracy": "paper"})
    long = summary.merge(ref, on=["dataset", "backbone", "method"], how="left")
    long["delta_vs_paper"] = long["mean"] - long["paper"]
    tests = paired_tests(rows, per_image, correction=correction)
    long = long.merge(tests, on=["dataset", "backbone", "method"], how="left")
    return long.merge(budgets(rows), on=["dataset", "backbone", "method"], how="left")


def _fmt(mean: float, std: float, n: int, marks: str = "") -> str:
    text = f"{mean:.2f}" if n <= 1 else f"{mean:.2f} ± {std:.2f}"
    return text + marks


def _defined(value) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _marks(row) -> str:
    """The marks of one non-baseline cell, from the p-values the table uses (``p_*_adj``) and the direction:
    ``*`` / ``*⁻`` t-test over seeds better / worse, ``°`` t-test undefined, ``†`` / ``†⁻`` McNemar better /
    worse; nothing for the baseline or a cell without paired seeds."""
    if not _defined(row.get("n_seeds")) or row["n_seeds"] < 1:
        return ""
    marks = ""
    p = row.get("p_seeds_adj", row.get("p_seeds"))
    if not _defined(p):
        marks += MARK_T_UNDEFINED
    elif p < ALPHA:
        marks += (MARK_BETTER if row["mean_diff"] > 0 else MARK_WORSE)["seeds"]
    p = row.get("p_images_adj", row.get("p_images"))
    if _defined(p) and p < ALPHA:
        marks += (MARK_BETTER if row["better_images"] > row["worse_images"] else MARK_WORSE)["images"]
    return marks


def table2_wide(long: pd.DataFrame) -> pd.DataFrame:
    """The paper's layout: dataset, backbone, one column per method, then the reference columns."""
    methods = [m for m in PAPER_METHODS if m in set(long["method"])]
    methods += [m for m in dict.fromkeys(long["method"]) if m not in methods]
    records = []
    for (dataset, backbone), cell in long.groupby(["dataset", "backbone"], sort=False):
        record = {"dataset": dataset, "backbone": backbone}
        by_method = {r["method"]: r for _, r in cell.iterrows()}
        for m in methods:
            r = by_method.get(m)
            record[m] = "" if r is None else _fmt(r["mean"], r["std"], int(r["n"]), _marks(r))
        for m in methods:
            r = by_method.get(m)
            if r is not None and r["paper"] == r["paper"]:
                record[f"paper: {m}"] = f"{r['paper']:.2f}"
                record[f"Δ paper: {m}"] = f"{r['delta_vs_paper']:+.2f}"
        records.append(record)
    wide = pd.DataFrame(records)
    ref_cols = [c for c in wide.columns if c.startswith("paper: ") or c.startswith("Δ paper: ")]
    ordered = ["dataset", "backbone"] + methods + sorted(ref_cols, key=lambda c: (c.split(": ")[1], c[0] != "p"))
    return wide.reindex(columns=ordered).fillna("")


def rows_of_kind(rows: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Rows whose score (the metric name before ``/``) is declared with this kind (:mod:`core.scores`)."""
    return rows[rows["metric"].str.split("/", n=1).str[0].isin(names_of_kind(kind))]


def explanations_long(rows: pd.DataFrame) -> pd.DataFrame:
    """Explanation-quality metrics (MoRF areas, ground truth): mean ± std over seeds, with their direction."""
    ok = rows_of_kind(rows[rows["error"] == ""], "explanation")
    grouped = ok.groupby(["dataset", "backbone", "method", "metric", "direction"], sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def fidelity_columns() -> tuple[str, ...]:
    """The map-fidelity table's columns: the map_fidelity-kind scores in declaration order (composite ones in the
    order of their declared parts), then the budget."""
    columns = []
    for name in names_of_kind("map_fidelity"):
        parts = SCORES.get(name).parts
        columns += [f"{name}/{p}" for p in parts] if parts else [name]
    return (*columns, "budget/epochs", "budget/images")


FIDELITY_COLUMNS = fidelity_columns()


def fidelity_wide(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, backbone, method): map fidelity, the reference MSEs, the map term's gradient share and the
    training budget, mean ± std over seeds (only methods with a decoder have the map columns)."""
    ok = rows[(rows["error"] == "") & rows["metric"].isin(FIDELITY_COLUMNS)]
    if ok.empty or not ok["metric"].eq("map_fidelity").any():
        return pd.DataFrame()
    g = ok.groupby(["dataset", "backbone", "method", "metric"], sort=False)["value"]
    agg = g.agg(mean="mean", std="std", n="count").reset_index()
    agg["text"] = [(f"{m:.0f}" if c.startswith("budget/") else f"{m:.4f}") + ("" if n <= 1 else
                   (f" ± {s:.0f}" if c.startswith("budget/") else f" ± {s:.4f}"))
                   for m, s, n, c in zip(agg["mean"], agg["std"].fillna(0.0), agg["n"], agg["metric"])]
    wide = agg.pivot_table(index=["dataset", "backbone", "method"], columns="metric", values="text",
                           aggfunc="first", sort=False).reset_index()
    wide.columns.name = None
    cols = [c for c in FIDELITY_COLUMNS if c in wide.columns]
    return wide.reindex(columns=["dataset", "backbone", "method", *cols]).fillna("")


def budgets(rows: pd.DataFrame) -> pd.DataFrame:
    """Training budget per (dataset, backbone, method): epochs and images seen by the classifier over all the
    stages it depends on (``budget/*`` rows; median over seeds)."""
    ok = rows[(rows["error"] == "") & rows["metric"].isin(["budget/epochs", "budget/images"])]
    if ok.empty:
        return pd.DataFrame(columns=["dataset", "backbone", "method", "budget_epochs", "budget_images"])
    med = ok.groupby(["dataset", "backbone", "method", "metric"], sort=False)["value"].median().reset_index()
    wide = med.pivot_table(index=["dataset", "backbone", "method"], columns="metric", values="value",
                           aggfunc="first", sort=False).reset_index()
    wide.columns.name = None
    return wide.rename(columns={"budget/epochs": "budget_epochs", "budget/images": "budget_images"})


def explanation_image_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Test images each cell's explanation scores were computed on (``explanation_images`` rows; the smallest over
    seeds): a method may cap its budget, so the count belongs next to its scores."""
    ok = rows[(rows["error"] == "") & (rows["metric"] == "explanation_images")]
    counts = ok.groupby(["dataset", "backbone", "method"], sort=False)["value"].min().astype(int)
    return counts.rename("images").reset_index()


def explanations_wide(long: pd.DataFrame, arrows: dict[str, str] = ARROW,
                      images: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows: dataset, backbone, method, map source (own, the post-hoc explainer, random); one column per score whose
    header carries its direction, e.g. ``aopc (↑)``, ``deletion_auc (↓)``; then ``images`` (see
    `explanation_image_counts`) when given."""
    if long.empty:
        return pd.DataFrame()
    parts = long["metric"].str.split("/", n=1, expand=True)
    long = long.assign(score=parts[0], source=parts[1].fillna(""),
                       text=[f"{a:.3f}" if n <= 1 else f"{a:.3f} ± {s:.3f}"
                             for a, s, n in zip(long["mean"], long["std"], long["n"])])
    wide = long.pivot_table(index=["dataset", "backbone", "method", "source"], columns="score", values="text",
                            aggfunc="first", sort=False).reset_index()
    wide.columns.name = None  # rows keep the order of the tidy rows: own, post-hoc, random per cell
    directions = dict(zip(long["score"], long["direction"]))
    order = names_of_kind("explanation")
    scores = [s for s in order if s in wide.columns] + [s for s in wide.columns[4:] if s not in order]
    wide = wide.reindex(columns=["dataset", "backbone", "method", "source", *scores]).fillna("")
    wide = wide.rename(columns={s: f"{s} ({arrows[directions[s]]})" for s in scores})
    if images is not None and not images.empty:
        wide = wide.merge(images.astype({"images": str}), on=["dataset", "backbone", "method"], how="left")
        wide["images"] = wide["images"].fillna("")
    return wide


def timings_wide(rows: pd.DataFrame) -> pd.DataFrame:
    """Median wall time over seeds (seconds) per (dataset, backbone, method): the cell's ``fit`` and each training
    stage and the shared teacher maps it used (``seconds/<stage>`` rows)."""
    ok = rows[(rows["error"] == "") & ((rows["metric"] == "fit_seconds") | rows["metric"].str.startswith("seconds/"))]
    if ok.empty:
        return pd.DataFrame()
    med = ok.groupby(["dataset", "backbone", "method", "metric"], sort=False)["value"].median().reset_index()
    wide = med.pivot_table(index=["dataset", "backbone", "method"], columns="metric", values="value",
                           aggfunc="first", sort=False).reset_index()
    wide.columns.name = None
    stages = [c for c in wide.columns[3:] if c != "fit_seconds"]
    # stage 1, the method's own stages (alphabetical), then shared work and evaluation
    rank = {"seconds/stage1": -1, "seconds/teacher_maps": 1, "seconds/test": 2, "seconds/explanations": 3}
    order = ["fit_seconds"] + sorted(stages, key=lambda c: (rank.get(c, 0), c))
    wide = wide.reindex(columns=["dataset", "backbone", "method", *order])
    return wide.rename(columns={c: c.replace("seconds/", "") + " (s)" for c in order})


def to_markdown(frame: pd.DataFrame) -> str:
    """A GitHub table; a ``|`` inside a name is escaped so it cannot split a cell."""
    escaped = frame.rename(columns=lambda c: str(c).replace("|", r"\|"))
    escaped = escaped.astype(str).apply(lambda col: col.str.replace("|", r"\|", regex=False)) if len(frame) \
        else escaped
    return tabulate(escaped, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)


#: the packages a written .tex needs; named in its header comment (tests compile with exactly these)
LATEX_PACKAGES = ("booktabs", "graphicx")
#: a block keeps its natural size unless wider than the line, then it is scaled down to \linewidth (graphicx)
_SHRINK = r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%"
_LATEX_CHARS = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "%": r"\%", "#": r"\#",
    "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": "$<$", ">": "$>$", "|": "$|$",
    "[": "{[}", "]": "{]}", "*": "{*}", "\n": " ", "\t": " ", "\u00a0": "~",
    "−": "$-$", "±": r"$\pm$", "Δ": r"$\Delta$", "†": r"$^{\dagger}$", "‡": r"$^{\ddagger}$", "⁻": "$^{-}$",
    "°": r"$^{\circ}$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "→": r"$\rightarrow$", "…": r"\dots{}",
    "—": "---", "–": "--", "≥": r"$\geq$", "≤": r"$\leq$", "≈": r"$\approx$", "×": r"$\times$", "·": r"$\cdot$",
    "α": r"$\alpha$", "λ": r"$\lambda$", "φ": r"$\varphi$", "‘": "`", "’": "'", "“": "``", "”": "''",
}
_NUMBER_MINUS = re.compile(r"(?<![0-9A-Za-z.])-(?=[0-9])")


def latex_escape(text: object, marks: bool = False) -> str:
    """Plain-ASCII LaTeX for any text: specials escaped, symbols as math, other non-ASCII letters reduced to
    their base letter (``é`` -> ``e``) or ``?``. ``marks``: a value cell, whose ``*`` is a significance mark
    (superscript) and whose ``-`` before a digit is a minus sign."""
    text = str(text)
    if marks:
        text = _NUMBER_MINUS.sub("−", text)
    out = []
    for ch in text:
        if marks and ch == "*":
            out.append("$^{*}$")
        elif ch in _LATEX_CHARS:
            out.append(_LATEX_CHARS[ch])
        elif " " <= ch <= "~":
            out.append(ch)
        elif ch.isprintable():
            base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(latex_escape(base) if base else "?")
    return "".join(out)


_HEADER_WIDTH = 14  # characters per header line; longer headers wrap at spaces and underscores


def _latex_header(text: object, align: str) -> str:
    """A column header, wrapped onto stacked lines (a nested tabular, no package) when long: headers such as
    ``deletion_auc_vs_random (↓)`` are far wider than the numbers under them."""
    lines: list[str] = []
    for token in re.findall(r"[^ _]+[ _]*|[ _]+", str(text)):
        if lines and len(lines[-1]) + len(token.rstrip()) <= _HEADER_WIDTH:
            lines[-1] += token
        else:
            lines.append(token)
    lines = [line.rstrip() for line in lines] or [""]
    if len(lines) == 1:
        return latex_escape(lines[0])
    return (rf"\begin{{tabular}}[b]{{@{{}}{align}@{{}}}}" + r"\\".join(latex_escape(x) for x in lines)
            + r"\end{tabular}")


def _latex_block(frame: pd.DataFrame, text_columns: int) -> list[str]:
    """One booktabs tabular, shrunk to the line width only if wider; leading text columns that repeat the row
    above are left blank, a rule separates groups of the first column, rows without any value are left out."""
    align = "l" * text_columns + "r" * (len(frame.columns) - text_columns)
    lines = [_SHRINK, rf"\begin{{tabular}}{{{align}}}", r"\toprule",
             " & ".join(_latex_header(c, a) for c, a in zip(frame.columns, align)) + r" \\", r"\midrule"]
    previous: list | None = None
    for values in frame.astype(str).itertuples(index=False):
        values = list(values)
        if len(values) > text_columns and not any(values[text_columns:]):
            continue  # nothing to show in this block (e.g. a row without paper numbers in the reference block)
        cells = [latex_escape(v, marks=i >= text_columns) for i, v in enumerate(values)]
        if previous is not None and values[0] != previous[0]:
            lines.append(r"\midrule")
        for j in range(min(text_columns, len(values)) - 1):
            if previous is not None and values[:j + 1] == previous[:j + 1]:
                cells[j] = ""
        previous = values
        lines.append(" & ".join(cells) + r" \\")
    return lines + [r"\bottomrule", r"\end{tabular}}"]


def to_latex(frame: pd.DataFrame, caption: str, label: str, text_columns: int = 2,
             blocks: list[list[str]] | None = None) -> str:
    """A ``table`` float of booktabs tabulars, one per entry of ``blocks`` (column lists, default: all columns),
    stacked vertically; each block wider than ``\\linewidth`` is scaled down to it. Plain ASCII: compiles with
    pdflatex, xelatex and lualatex given only ``LATEX_PACKAGES`` (named in the file's header comment)."""
    lines = ["% Written by impactx-bench (benchmarks/tables.py). Plain ASCII: compiles with pdflatex, xelatex "
             "and lualatex.",
             "% Needs in the preamble: " + " ".join(rf"\usepackage{{{p}}}" for p in LATEX_PACKAGES)
             + "  (graphicx: \\resizebox shrinks a block wider than \\linewidth)",
             r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(caption, marks=True)}}}",
             rf"\label{{{label}}}"]
    for i, columns in enumerate(blocks or [list(frame.columns)]):
        if i:
            lines.append(r"\par\medskip")
        lines += _latex_block(frame[columns], text_columns)
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def table2_legend(correction: str = "none", code=lambda mark: mark) -> str:
    """What the marks of Table 2 mean: which tests, two-sided, the level, the direction, and the correction.
    ``code`` wraps each mark (backticks in Markdown)."""
    corrected = ("p-values Holm-adjusted over the methods of each row, separately per test" if correction == "holm"
                 else "no correction for multiple comparisons")
    return (f"Marks compare each method with the baseline of its row; two-sided tests at α = {ALPHA}, "
            f"{corrected}. {code('*')} significantly better, {code('*⁻')} significantly worse: paired t-test "
            f"over seeds; {code('°')}: that t-test is undefined (fewer than {MIN_SEEDS_T} seeds, or the same "
            f"difference on every seed). {code('†')} significantly better, {code('†⁻')} significantly worse: "
            "exact McNemar test over test images pooled over seeds (binomial test on the discordant pairs). "
            "No mark: not significant.")


def table2_caption(correction: str = "none", split: bool = False) -> str:
    where = ("Top: measured by this suite; bottom: the IMPACTX paper's reported numbers ('paper') and "
             "'Δ paper' = measured − paper (reference, not measured here). " if split else
             "Columns 'paper: …' are the IMPACTX paper's reported numbers (reference, not measured here); "
             "'Δ paper' = measured − paper. ")
    return "Test accuracy (%) — measured by this suite, mean ± std over seeds. " + where + table2_legend(correction)


EXPLANATIONS_CAPTION = ("Explanation quality: MoRF area scores of each method's own map, of the post-hoc explainer "
                        "(SHAP by default) applied to the same model and of a random map (↑ higher is better, "
                        "↓ lower is better), and ground-truth agreement where the dataset has masks. Mean ± std "
                        "over seeds.")
