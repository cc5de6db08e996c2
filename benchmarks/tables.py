"""Rewrite a run folder's tables and summaries from its rows, without retraining.

  python -m benchmarks.tables results/runs/smoke                     # rewrites table2.* and explanations.* there
  python -m benchmarks.tables results/runs/smoke --correction holm   # marks from Holm-adjusted p-values

What the tables hold (layout, paired tests, marks, LaTeX): :mod:`benchmarks.table_frames`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.results import read_per_image, read_rows
from benchmarks.summary import write_summaries
from benchmarks.table_frames import (CORRECTIONS, EXPLANATIONS_CAPTION, budgets, explanation_image_counts,
                                     explanations_long, explanations_wide, fidelity_wide, paired_tests,
                                     table2_caption, table2_legend, table2_long, table2_wide, timings_wide, to_latex,
                                     to_markdown)
from core.artifacts import atomic_write_bytes


#: every file write_all_tables may write; those it does not write this time are removed (never stale)
TABLE_FILES = ("table2.csv", "table2_long.csv", "table2.md", "table2.tex", "stats.csv", "budgets.md",
               "map_fidelity.csv", "map_fidelity.md", "timings.csv", "timings.md", "explanations.csv",
               "explanations_long.csv", "explanations.md", "explanations.tex")


def write_all_tables(out: str | Path, correction: str = "none") -> list[Path]:
    """(Re)write table2.{csv,md,tex} (+ table2_long.csv), stats.csv and explanations.{csv,md,tex}
    (+ explanations_long.csv) from ``out``/rows.csv. A table with nothing to show this time (say, every cell
    failed) is removed, so a run folder never shows an earlier run's numbers as this run's. ``correction``:
    ``"holm"`` marks Table 2 from Holm-adjusted p-values (see `paired_tests`)."""
    out = Path(out)
    rows = read_rows(out)
    per_image = read_per_image(out)
    written: list[Path] = []

    def put(name: str, text: str) -> None:
        atomic_write_bytes(out / name, text.encode())
        written.append(out / name)

    long = table2_long(rows, per_image, correction=correction)
    if not long.empty:
        wide = table2_wide(long)
        put("table2.csv", wide.to_csv(index=False))  # the paper's layout, as printed in table2.md
        put("table2_long.csv", long.to_csv(index=False))  # numbers: mean, std, n, paper, delta, p-values
        put("table2.md", "Test accuracy (%), measured: mean ± std over seeds; 'paper:' columns are the paper's "
                         "numbers for reference, 'Δ paper' = measured − paper.\n\n" + to_markdown(wide) + "\n\n"
                         + table2_legend(correction, code=lambda mark: f"`{mark}`") + "\n")
        measured = [c for c in wide.columns if not c.startswith(("paper: ", "Δ paper: "))]
        reference = ["dataset", "backbone"] + [c for c in wide.columns if c not in measured]
        blocks = [measured, reference] if len(reference) > 2 else [measured]
        put("table2.tex", to_latex(wide, table2_caption(correction, split=len(blocks) > 1), "tab:table2",
                                   blocks=blocks))
        stats = paired_tests(rows, per_image, correction=correction).merge(
            budgets(rows), on=["dataset", "backbone", "method"], how="left")
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
    parser.add_argument("--correction", choices=CORRECTIONS, default="none",
                        help="multiple-comparison correction of Table 2's marks over the methods of a row "
                             "(default: none)")
    args = parser.parse_args(argv)
    if not (Path(args.run) / "rows.csv").exists():
        print(f"error: {args.run}/rows.csv not found; run python -m benchmarks.run first", file=sys.stderr)
        return 2

    for path in [*write_all_tables(args.run, correction=args.correction), *write_summaries(args.run)]:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
