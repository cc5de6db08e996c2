import math

import numpy as np
import pandas as pd
import pytest

from benchmarks.tables import (explanation_image_counts, explanations_long, explanations_wide, mcnemar_p,
                               paired_tests, summarize, table2_long, table2_wide, timings_wide, to_latex,
                               write_all_tables)
from benchmarks.results import write_rows


def _rows():
    rows = []
    values = {("baseline", 0): 60.0, ("baseline", 1): 62.0, ("baseline", 2): 64.0,
              ("impactx", 0): 61.0, ("impactx", 1): 65.0, ("impactx", 2): 66.0}
    for (method, seed), v in values.items():
        rows.append({"method": method, "backbone": "lenet5", "dataset": "cifar10", "seed": seed,
                     "metric": "accuracy", "value": v, "direction": "higher", "error": ""})
    rows.append({"method": "abn", "backbone": "lenet5", "dataset": "cifar10", "seed": 0, "metric": "accuracy",
                 "value": float("nan"), "direction": "higher", "error": "RuntimeError: boom"})
    rows.append({"method": "baseline", "backbone": "tiny", "dataset": "digits", "seed": 0, "metric": "accuracy",
                 "value": 90.0, "direction": "higher", "error": ""})
    return pd.DataFrame(rows)


def test_pivot_matches_hand_computed_means():
    summary = summarize(_rows()).set_index(["dataset", "backbone", "method"])
    base = summary.loc[("cifar10", "lenet5", "baseline")]
    assert base["mean"] == pytest.approx(62.0) and base["std"] == pytest.approx(2.0) and base["n"] == 3
    ours = summary.loc[("cifar10", "lenet5", "impactx")]
    assert ours["mean"] == pytest.approx(64.0)
    assert ours["std"] == pytest.approx(np.std([61, 65, 66], ddof=1))
    assert ("cifar10", "lenet5", "abn") not in summary.index  # error rows never enter the means


def test_reference_columns_only_where_a_paper_cell_matches():
    long = table2_long(_rows())
    row = long.set_index(["dataset", "backbone", "method"]).loc[("cifar10", "lenet5", "impactx")]
    assert row["paper"] == pytest.approx(70.65)
    assert row["delta_vs_paper"] == pytest.approx(64.0 - 70.65)
    digits = long.set_index(["dataset", "backbone", "method"]).loc[("digits", "tiny", "baseline")]
    assert math.isnan(digits["paper"])
    wide = table2_wide(long)
    assert wide.loc[wide["dataset"] == "cifar10", "impactx"].item().startswith("64.00 ± ")
    assert wide.loc[wide["dataset"] == "cifar10", "paper: impactx"].item() == "70.65"
    assert wide.loc[wide["dataset"] == "digits", "paper: baseline"].item() == ""


def test_paired_t_test_over_seeds_matches_scipy():
    from scipy.stats import ttest_rel

    tests = paired_tests(_rows(), None)
    row = tests[(tests["method"] == "impactx")].iloc[0]
    assert row["p_seeds"] == pytest.approx(ttest_rel([61, 65, 66], [60, 62, 64]).pvalue)
    assert row["mean_diff"] == pytest.approx(2.0)


def test_mcnemar_exact():
    a = np.array([1, 1, 1, 1, 1, 1, 1, 1, 0, 1], bool)
    b = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 1], bool)
    # 8 discordant pairs all favouring a: two-sided binomial p = 2 * 0.5**8
    assert mcnemar_p(a, b) == pytest.approx(2 * 0.5 ** 8)
    assert mcnemar_p(a, a) == 1.0


def test_latex_is_booktabs_and_escaped():
    frame = pd.DataFrame({"dataset": ["cifar10"], "backbone": ["lenet5"], "baseline": ["62.00 ± 2.00"]})
    tex = to_latex(frame, "Accuracy (%)", "tab:x")
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"62.00 $\pm$ 2.00" in tex
    assert r"Accuracy (\%)" in tex


def test_write_all_tables_from_rows_without_training(tmp_path):
    write_rows(_rows().to_dict("records"), tmp_path)
    written = {p.name for p in write_all_tables(tmp_path)}
    assert {"table2.csv", "table2.md", "table2.tex", "stats.csv"} <= written
    md = (tmp_path / "table2.md").read_text()
    assert "paper: impactx" in md and "64.00 ± 2.65" in md


def test_explanation_table_puts_the_score_direction_in_the_header():
    rows = []
    for seed, (own, shap) in enumerate([(0.30, 0.20), (0.34, 0.22)]):
        for source, value in (("own", own), ("shap", shap)):
            rows.append({"method": "impactx", "backbone": "lenet5", "dataset": "cifar10", "seed": seed,
                         "metric": f"aopc/{source}", "value": value, "direction": "higher", "error": ""})
            rows.append({"method": "impactx", "backbone": "lenet5", "dataset": "cifar10", "seed": seed,
                         "metric": f"deletion_auc/{source}", "value": 1 - value, "direction": "lower", "error": ""})
    wide = explanations_wide(explanations_long(pd.DataFrame(rows)))
    assert list(wide.columns) == ["dataset", "backbone", "method", "source", "aopc (↑)", "deletion_auc (↓)"]
    assert wide["source"].tolist() == ["own", "shap"]
    assert wide.loc[wide.source == "own", "aopc (↑)"].item() == f"0.320 ± {np.std([0.30, 0.34], ddof=1):.3f}"
    assert wide.loc[wide.source == "shap", "deletion_auc (↓)"].item().startswith("0.790 ± ")


def test_explanation_table_says_how_many_images_each_method_was_scored_on():
    rows = []
    for method, images in (("impactx", 200), ("wae-shap", 16)):
        for seed in (0, 1):
            rows.append({"method": method, "backbone": "lenet5", "dataset": "synthetic", "seed": seed,
                         "metric": "aopc/own", "value": 0.5, "direction": "higher", "error": ""})
            rows.append({"method": method, "backbone": "lenet5", "dataset": "synthetic", "seed": seed,
                         "metric": "explanation_images", "value": float(images), "direction": "info", "error": ""})
    rows = pd.DataFrame(rows)
    wide = explanations_wide(explanations_long(rows), images=explanation_image_counts(rows))
    assert list(wide.columns)[-1] == "images"
    assert dict(zip(wide["method"], wide["images"])) == {"impactx": "200", "wae-shap": "16"}


def test_timings_are_medians_over_seeds_per_stage():
    rows = []
    for seed, (fit, stage1, stage2) in enumerate([(10.0, 4.0, 5.0), (30.0, 6.0, 7.0), (20.0, 5.0, 100.0)]):
        for metric, value in (("seconds/explanations", 9.0), ("seconds/test", 1.0), ("seconds/teacher_maps", 3.0),
                              ("fit_seconds", fit), ("seconds/stage1", stage1), ("seconds/stage2", stage2)):
            rows.append({"method": "impactx", "backbone": "lenet5", "dataset": "cifar10", "seed": seed,
                         "metric": metric, "value": value, "direction": "info", "error": ""})
    wide = timings_wide(pd.DataFrame(rows))
    assert list(wide.columns) == ["dataset", "backbone", "method", "fit_seconds (s)", "stage1 (s)", "stage2 (s)",
                                  "teacher_maps (s)", "test (s)", "explanations (s)"]
    assert wide.iloc[0]["fit_seconds (s)"] == 20.0 and wide.iloc[0]["stage1 (s)"] == 5.0
    assert wide.iloc[0]["stage2 (s)"] == 7.0
