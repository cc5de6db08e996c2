"""Tables from tidy rows, without retraining: Table 2 (accuracy) and the explanation-quality table.

  python -m benchmarks.tables results/runs/smoke            # rewrites table2.* and explanations.* there

Table 2 keeps the paper's layout (rows: dataset x backbone; columns: methods), mean ± std over seeds. The paper's
numbers (``results/paper_table2.csv``) appear only in separate columns labelled "paper" and "Δ paper", and only for
cells that match a paper cell (same dataset, backbone and method). Paired tests against the baseline: a t-test
over seeds (when ≥ 2 seeds) and an exact McNemar test over test images (pooled over seeds); ``*`` marks p < 0.05
over seeds, ``†`` p < 0.05 over images.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

from benchmarks.artifacts import atomic_write_bytes
from benchmarks.results import read_per_image, read_rows

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "paper_table2.csv"
PAPER_METHODS = ("baseline", "impactx", "abn", "wae")
ALPHA = 0.05
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
    """Exact two-sided McNemar test on paired boolean correctness vectors."""
    from scipy.stats import binomtest

    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_tests(rows: pd.DataFrame, per_image: pd.DataFrame | None, baseline: str = "baseline") -> pd.DataFrame:
    """Every method against the baseline of the same (dataset, backbone): paired over seeds and over images."""
    from scipy.stats import ttest_rel

    acc = rows[(rows["metric"] == "accuracy") & (rows["error"] == "")]
    out = []
    for (dataset, backbone), cell in acc.groupby(["dataset", "backbone"], sort=False):
        base = cell[cell["method"] == baseline].set_index("seed")["value"]
        for method, sub in cell[cell["method"] != baseline].groupby("method", sort=False):
            values = sub.set_index("seed")["value"]
            seeds = sorted(set(base.index) & set(values.index))
            diff = values[seeds] - base[seeds] if seeds else pd.Series(dtype=float)
            p_seed = float("nan")
            if len(seeds) >= 2 and np.any(diff.to_numpy() != diff.to_numpy()[0]):
                p_seed = float(ttest_rel(values[seeds], base[seeds]).pvalue)
            elif len(seeds) >= 2:
                p_seed = 0.0 if diff.iloc[0] != 0 else 1.0
            p_image = _image_test(per_image, dataset, backbone, method, baseline, seeds)
            out.append({"dataset": dataset, "backbone": backbone, "method": method, "n_seeds": len(seeds),
                        "mean_diff": float(diff.mean()) if len(seeds) else float("nan"),
                        "p_seeds": p_seed, "p_images": p_image})
    return pd.DataFrame(out, columns=["dataset", "backbone", "method", "n_seeds", "mean_diff", "p_seeds",
                                      "p_images"])


def _image_test(per_image, dataset, backbone, method, baseline, seeds) -> float:
    if per_image is None or not seeds:
        return float("nan")
    cell = per_image[(per_image["dataset"] == dataset) & (per_image["backbone"] == backbone)]
    a, b = [], []
    for seed in seeds:
        ours = cell[(cell["method"] == method) & (cell["seed"] == seed)]["correct"]
        base = cell[(cell["method"] == baseline) & (cell["seed"] == seed)]["correct"]
        if len(ours) and len(base) and len(ours.iloc[0]) == len(base.iloc[0]):
            a.append(np.frombuffer(ours.iloc[0].encode(), np.uint8) == ord("1"))
            b.append(np.frombuffer(base.iloc[0].encode(), np.uint8) == ord("1"))
    return mcnemar_p(np.concatenate(a), np.concatenate(b)) if a else float("nan")


def table2_long(rows: pd.DataFrame, per_image: pd.DataFrame | None = None,
                reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (dataset, backbone, method): mean, std, n, paper reference, delta, p-values."""
    reference = load_reference() if reference is None else reference
    summary = summarize(rows)
    ref = reference[["dataset", "backbone", "method", "accuracy"]].rename(columns={"accuracy": "paper"})
    long = summary.merge(ref, on=["dataset", "backbone", "method"], how="left")
    long["delta_vs_paper"] = long["mean"] - long["paper"]
    tests = paired_tests(rows, per_image)
    long = long.merge(tests[["dataset", "backbone", "method", "p_seeds", "p_images"]],
                      on=["dataset", "backbone", "method"], how="left")
    return long.merge(budgets(rows), on=["dataset", "backbone", "method"], how="left")


def _fmt(mean: float, std: float, n: int, marks: str = "") -> str:
    text = f"{mean:.2f}" if n <= 1 else f"{mean:.2f} ± {std:.2f}"
    return text + marks


def _marks(row) -> str:
    marks = ""
    if row.get("p_seeds") == row.get("p_seeds") and row["p_seeds"] < ALPHA:
        marks += "*"
    if row.get("p_images") == row.get("p_images") and row["p_images"] < ALPHA:
        marks += "†"
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
    """Rows whose score (the metric name before ``/``) is registered with this kind in ``evaluate.METRICS``."""
    from benchmarks.evaluate import METRICS

    names = {name for name, info in METRICS.items() if info.kind == kind}
    return rows[rows["metric"].str.split("/", n=1).str[0].isin(names)]


def explanations_long(rows: pd.DataFrame) -> pd.DataFrame:
    """Explanation-quality metrics (MoRF areas, ground truth): mean ± std over seeds, with their direction."""
    ok = rows_of_kind(rows[rows["error"] == ""], "explanation")
    grouped = ok.groupby(["dataset", "backbone", "method", "metric", "direction"], sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


SCORE_ORDER = ("aopc", "deletion_auc", "aopc_vs_random", "deletion_auc_vs_random", "aopc_vs_constant", "mask_share",
               "pointing_game")
FIDELITY_COLUMNS = ("map_fidelity", "map_mse/decoder", "map_mse/class_mean", "map_mse/mean", "map_mse/zero",
                    "map_grad_share", "budget/epochs", "budget/images")


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
    scores = [s for s in SCORE_ORDER if s in wide.columns] + \
        [s for s in wide.columns[4:] if s not in SCORE_ORDER]
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
    return tabulate(frame, headers="keys", tablefmt="github", showindex=False, disable_numparse=True)


_LATEX_ESCAPES = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "±": r"$\pm$", "Δ": r"$\Delta$",
                  "†": r"$^\dagger$", "↑": r"$\uparrow$", "↓": r"$\downarrow$"}


def _latex_cell(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_latex(frame: pd.DataFrame, caption: str, label: str, text_columns: int = 2) -> str:
    """A booktabs table (needs \\usepackage{booktabs})."""
    columns = list(frame.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{_latex_cell(caption)}}}", rf"\label{{{label}}}",
             r"\begin{tabular}{" + "l" * text_columns + "r" * (len(columns) - text_columns) + "}", r"\toprule",
             " & ".join(_latex_cell(c) for c in columns) + r" \\", r"\midrule"]
    previous = None
    for _, row in frame.iterrows():
        cells = [_latex_cell(v) for v in row.tolist()]
        if previous is not None and row.iloc[0] != previous:
            lines.append(r"\midrule")
        if row.iloc[0] == previous:
            cells[0] = ""
        previous = row.iloc[0]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


TABLE2_CAPTION = ("Test accuracy (%) — measured by this suite, mean ± std over seeds. "
                  "Columns 'paper: …' are the IMPACTX paper's reported numbers (reference, not measured here); "
                  "'Δ paper' = measured − paper. * p<0.05 vs baseline, paired t-test over seeds; "
                  "† p<0.05 vs baseline, exact McNemar over test images.")
EXPLANATIONS_CAPTION = ("Explanation quality: MoRF area scores of each method's own map, of SHAP applied to the same "
                        "model and of a random map (↑ higher is better, ↓ lower is better), and ground-truth "
                        "agreement where the dataset has masks. Mean ± std over seeds.")


#: every file write_all_tables may write; those it does not write this time are removed (never stale)
TABLE_FILES = ("table2.csv", "table2_long.csv", "table2.md", "table2.tex", "stats.csv", "budgets.md",
               "map_fidelity.csv", "map_fidelity.md", "timings.csv", "timings.md", "explanations.csv",
               "explanations_long.csv", "explanations.md", "explanations.tex")


def write_all_tables(out: str | Path) -> list[Path]:
    """(Re)write table2.{csv,md,tex} (+ table2_long.csv), stats.csv and explanations.{csv,md,tex}
    (+ explanations_long.csv) from ``out``/rows.csv. A table with nothing to show this time (say, every cell
    failed) is removed, so a run folder never shows an earlier run's numbers as this run's."""
    out = Path(out)
    rows = read_rows(out)
    per_image = read_per_image(out)
    written: list[Path] = []

    def put(name: str, text: str) -> None:
        atomic_write_bytes(out / name, text.encode())
        written.append(out / name)

    long = table2_long(rows, per_image)
    if not long.empty:
        wide = table2_wide(long)
        put("table2.csv", wide.to_csv(index=False))  # the paper's layout, as printed in table2.md
        put("table2_long.csv", long.to_csv(index=False))  # numbers: mean, std, n, paper, delta, p-values
        put("table2.md", "Test accuracy (%), measured; 'paper:' columns are the paper's numbers for reference."
                         "\n\n" + to_markdown(wide) + "\n\n* p<0.05 vs baseline over seeds (paired t); "
                         "† p<0.05 vs baseline over test images (exact McNemar).\n")
        put("table2.tex", to_latex(wide, TABLE2_CAPTION, "tab:table2"))
        stats = paired_tests(rows, per_image).merge(budgets(rows), on=["dataset", "backbone", "method"], how="left")
        put("stats.csv", stats.to_csv(index=False))
        budget = long[["dataset", "backbone", "method", "budget_epochs", "budget_images"]].dropna()
        if not budget.empty:
            put("budgets.md", "Training budget of each row: epochs and training images seen by the classifier, "
                              "summed over every stage it depends on (the shared stage-1 model included).\n\n"
                              + to_markdown(budget.astype({"budget_epochs": int, "budget_images": int})) + "\n")
    fidelity = fidelity_wide(rows)
    if not fidelity.empty:
        put("map_fidelity.csv", fidelity.to_csv(index=False))
        put("map_fidelity.md", "Did the decoder learn image-specific maps? On validation images' teacher maps: "
                               "map_fidelity = 1 − MSE(D(LEP(x))) / MSE(per-class mean map) (≤ 0: nothing "
                               "image-specific); map_grad_share = share of LEP's gradient norm from the map term; "
                               "budget = epochs / images seen by the classifier. Mean ± std over seeds.\n\n"
                               + to_markdown(fidelity) + "\n")
    timings = timings_wide(rows)
    if not timings.empty:
        put("timings.csv", timings.to_csv(index=False))
        put("timings.md", "Wall time (s), median over seeds: `fit_seconds` = this cell's fit (cached inputs loaded, "
                          "not recomputed); `stage1` = training the shared baseline model; `stage2` / `fit` = the "
                          "method's own training; `teacher_maps` = computing the shared teacher maps; "
                          "`test` = predicting the test set; `explanations` = the method's maps, SHAP on it and their "
                          "MoRF curves.\n\n"
                          + to_markdown(timings.round(1).astype(object).where(timings.notna(), "")) + "\n")
    explanations = explanations_long(rows)
    if not explanations.empty:
        wide = explanations_wide(explanations, images=explanation_image_counts(rows))
        put("explanations.csv", wide.to_csv(index=False))
        put("explanations_long.csv", explanations.to_csv(index=False))
        put("explanations.md", "Explanation quality (↑ higher is better, ↓ lower is better); source = whose map: "
                               "the method's own, a post-hoc explainer applied to the same model, or random; "
                               "images = test images scored per seed.\n\n"
                               + to_markdown(wide) + "\n")
        put("explanations.tex", to_latex(wide, EXPLANATIONS_CAPTION, "tab:explanations", text_columns=4))
    for name in TABLE_FILES:
        if out / name not in written:
            (out / name).unlink(missing_ok=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tables", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run folder holding rows.csv (e.g. results/runs/smoke)")
    args = parser.parse_args(argv)
    if not (Path(args.run) / "rows.csv").exists():
        print(f"error: {args.run}/rows.csv not found; run python -m benchmarks.run first", file=sys.stderr)
        return 2
    from benchmarks.summary import write_summaries

    for path in [*write_all_tables(args.run), *write_summaries(args.run)]:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
