import math

import numpy as np
import pandas as pd
import pytest

from benchmarks.tables import write_all_tables
from benchmarks.table_frames import (explanation_image_counts, explanations_long, explanations_wide, mcnemar_p,
                                     paired_tests, summarize, table2_long, table2_wide, timings_wide, to_latex)
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


# ------------------------------------------------------------------------------------------ statistics (issue 16)
def _acc_rows(values: dict[tuple[str, int], float], dataset="cifar10", backbone="lenet5",
              per_image: dict[tuple[str, int], str] | None = None) -> list[dict]:
    rows = []
    for (method, seed), v in values.items():
        row = {"method": method, "backbone": backbone, "dataset": dataset, "seed": seed, "metric": "accuracy",
               "value": v, "direction": "higher", "error": ""}
        if per_image is not None:
            row["per_image"] = per_image[(method, seed)]
        rows.append(row)
    return rows


def _cell(wide: pd.DataFrame, method: str) -> str:
    return wide[method].iloc[0]


def test_t_test_is_undefined_with_two_seeds_and_the_table_says_so():
    rows = pd.DataFrame(_acc_rows({("baseline", 0): 60.0, ("baseline", 1): 61.0,
                                   ("impactx", 0): 70.0, ("impactx", 1): 72.0}))
    tests = paired_tests(rows, None)
    assert math.isnan(tests["p_seeds"].item())  # not 0, not a p from 1 degree of freedom
    cell = _cell(table2_wide(table2_long(rows)), "impactx")
    assert cell.endswith("°") and "*" not in cell


def test_t_test_is_undefined_when_every_seed_gives_the_same_difference():
    # 46 more right of 2000 test images on every seed (+2.3 points): the old code printed p = 0 and a '*'
    right = [1203, 1237, 1271]
    base = {("baseline", s): 100 * k / 2000 for s, k in enumerate(right)}
    ours = {("impactx", s): 100 * (k + 46) / 2000 for s, k in enumerate(right)}
    rows = pd.DataFrame(_acc_rows({**base, **ours}))
    diff = np.array(list(ours.values())) - np.array(list(base.values()))
    assert np.ptp(diff) > 0  # equal only up to float noise, which must not pass for variance
    assert math.isnan(paired_tests(rows, None)["p_seeds"].item())
    cell = _cell(table2_wide(table2_long(rows)), "impactx")
    assert cell.endswith("°") and "*" not in cell


def _correct(n: int, wrong: set[int]) -> str:
    return "".join("0" if i in wrong else "1" for i in range(n))


def _directional_rows() -> list[dict]:
    """Three seeds; `better` beats the baseline by ~5 points per seed and on 30 more images, `worse` loses by ~5
    points and 30 images, `same` differs by noise only."""
    values, images = {}, {}
    n = 200
    for seed in range(3):
        base_wrong = set(range(seed, 80 + seed))  # 80 wrong
        values[("baseline", seed)] = 60.0 + seed
        images[("baseline", seed)] = _correct(n, base_wrong)
        values[("better", seed)] = 65.0 + seed + 0.1 * seed ** 2
        images[("better", seed)] = _correct(n, set(list(base_wrong)[10:]))  # 10 fewer errors per seed
        values[("worse", seed)] = 55.0 + seed - 0.2 * seed ** 2
        images[("worse", seed)] = _correct(n, base_wrong | set(range(100, 110)))  # 10 more errors per seed
        values[("same", seed)] = 60.0 + seed + (0.5, -0.4, 0.2)[seed]
        images[("same", seed)] = _correct(n, (base_wrong - {seed}) | {150 + seed})  # one pair each way
    return _acc_rows(values, per_image=images)


def test_marks_follow_the_p_values_and_show_the_direction(tmp_path):
    from scipy.stats import ttest_rel

    write_rows(_directional_rows(), tmp_path)
    write_all_tables(tmp_path)
    stats = pd.read_csv(tmp_path / "stats.csv").set_index("method")
    rows = pd.DataFrame(_directional_rows())
    acc = rows.pivot_table(index="seed", columns="method", values="value")
    for method in ("better", "worse", "same"):  # the t-test is scipy's two-sided paired test
        assert stats.loc[method, "p_seeds"] == pytest.approx(ttest_rel(acc[method], acc["baseline"]).pvalue)
    assert stats.loc["better", "p_seeds"] < 0.05 and stats.loc["worse", "p_seeds"] < 0.05
    assert stats.loc["same", "p_seeds"] > 0.05 and stats.loc["same", "p_images"] > 0.05
    wide = pd.read_csv(tmp_path / "table2.csv", dtype=str, keep_default_na=False)
    assert _cell(wide, "better").endswith("*†")  # better on both tests
    assert _cell(wide, "worse").endswith("*⁻†⁻")  # worse on both: a different mark
    assert _cell(wide, "same")[-1].isdigit()  # nothing significant: no mark at all
    assert not any(m in _cell(wide, "baseline") for m in "*†°")


def _binomial_two_sided(k: int, n: int) -> float:
    """Exact two-sided binomial test at p = 1/2, from first principles (not scipy)."""
    tail = sum(math.comb(n, i) for i in range(min(k, n - k) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def test_mcnemar_pooled_over_seeds_matches_an_independent_computation_from_per_image_csv(tmp_path):
    import csv

    rng = np.random.default_rng(7)
    values, images = {}, {}
    for seed in range(3):
        for method, p_right in (("baseline", 0.6), ("impactx", 0.66), ("wae", 0.6)):
            right = rng.random(150) < p_right
            values[(method, seed)] = 100 * right.mean()
            images[(method, seed)] = "".join("1" if r else "0" for r in right)
    write_rows(_acc_rows(values, per_image=images), tmp_path)
    write_all_tables(tmp_path)
    with open(tmp_path / "per_image.csv", newline="") as f:
        vectors = {(r["method"], int(r["seed"])): r["correct"] for r in csv.DictReader(f)}
    with open(tmp_path / "stats.csv", newline="") as f:
        stats = {r["method"]: r for r in csv.DictReader(f)}
    for method in ("impactx", "wae"):
        b = c = 0  # discordant pairs pooled over the seeds: method right / baseline wrong, and the reverse
        for seed in range(3):
            for ours, base in zip(vectors[(method, seed)], vectors[("baseline", seed)]):
                b += ours == "1" and base == "0"
                c += ours == "0" and base == "1"
        assert (int(float(stats[method]["better_images"])), int(float(stats[method]["worse_images"]))) == (b, c)
        assert int(stats[method]["n_images"]) == 450
        assert float(stats[method]["p_images"]) == pytest.approx(_binomial_two_sided(b, b + c), rel=1e-9)


def test_holm_matches_a_hand_computation():
    from benchmarks.table_frames import holm

    # sorted 0.01, 0.03, 0.04 (m = 3): 3 * 0.01 = 0.03; 2 * 0.03 = 0.06; max(0.06, 1 * 0.04) = 0.06
    adjusted = holm([0.04, 0.01, float("nan"), 0.03])
    assert adjusted[[0, 1, 3]] == pytest.approx([0.06, 0.03, 0.06])
    assert math.isnan(adjusted[2])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_holm_correction_is_per_row_and_changes_the_marks(tmp_path):
    from benchmarks.table_frames import holm

    rows = _directional_rows()
    rows += [{**r, "dataset": "stl10"} for r in rows if r["method"] in ("baseline", "better")]
    frame = pd.DataFrame(rows)
    raw = paired_tests(frame, None)
    adj = paired_tests(frame, None, correction="holm")
    for dataset, sub in raw.groupby("dataset"):  # the family is the methods of one row of Table 2
        assert adj[adj.dataset == dataset]["p_seeds_adj"].to_numpy() == pytest.approx(holm(sub["p_seeds"]))
    assert (adj["correction"] == "holm").all() and (raw["p_seeds_adj"] == raw["p_seeds"]).all()
    # a mark that does not survive the correction disappears
    long = table2_long(frame)
    long.loc[long.method == "better", ["p_seeds", "p_seeds_adj"]] = [0.03, 0.09]
    assert not _cell(table2_wide(long[long.dataset == "cifar10"]), "better").endswith("*")
    with pytest.raises(ValueError, match="correction"):
        paired_tests(frame, None, correction="bonferroni")


def test_legends_name_the_tests_the_alternative_and_the_correction(tmp_path):
    from benchmarks.tables import main as tables_main

    write_rows(_directional_rows(), tmp_path)
    for correction, named in (("none", "no correction for multiple comparisons"), ("holm", "Holm-adjusted")):
        assert tables_main([str(tmp_path), "--correction", correction]) == 0
        md, tex = (tmp_path / "table2.md").read_text(), (tmp_path / "table2.tex").read_text()
        caption = tex[tex.index(r"\caption{"):tex.index(r"\label")]
        for text in (md, caption):
            assert "two-sided" in text and "paired t-test over seeds" in text and "McNemar" in text
            assert named in text
        assert "`*⁻`" in md and "`°`" in md and r"$^{*}$$^{-}$" in caption
        assert pd.read_csv(tmp_path / "stats.csv")["correction"].eq(correction).all()


# ------------------------------------------------------------------------------------------------- LaTeX text
NASTY = r"we$ir{d}~^\&%_#<x>|[y]*"


def test_latex_escapes_every_special_character_and_writes_plain_ascii():
    from benchmarks.table_frames import latex_escape

    assert latex_escape(NASTY) == (r"we\$ir\{d\}\textasciitilde{}\textasciicircum{}\textbackslash{}\&\%\_\#"
                                   r"$<$x$>$$|${[}y{]}{*}")
    assert latex_escape("a − b … c — d ± Δ † ↑ ↓ ≥") == (r"a $-$ b \dots{} c --- d $\pm$ $\Delta$ $^{\dagger}$ "
                                                      r"$\uparrow$ $\downarrow$ $\geq$")
    assert latex_escape("-7.11", marks=True) == "$-$7.11"  # a minus sign, not a hyphen
    assert latex_escape("64.00 ± 2.65*⁻†", marks=True) == r"64.00 $\pm$ 2.65$^{*}$$^{-}$$^{\dagger}$"
    assert latex_escape("café") == "cafe" and latex_escape("日") == "?"


def test_every_tex_file_is_ascii_and_carries_its_packages(tmp_path):
    rows = _directional_rows()
    rows += [{**r, "method": NASTY} for r in rows if r["method"] == "better"]
    rows += [{"method": NASTY, "backbone": "lenet5", "dataset": "cifar10", "seed": 0, "metric": "aopc/own",
              "value": -0.25, "direction": "higher", "error": ""}]
    write_rows(rows, tmp_path)
    written = [p for p in write_all_tables(tmp_path) if p.suffix == ".tex"]
    assert {p.name for p in written} == {"table2.tex", "explanations.tex"}
    for path in written:
        tex = path.read_text()
        tex.encode("ascii")  # no Unicode left for pdflatex to choke on
        assert r"\usepackage{booktabs} \usepackage{graphicx}" in tex.splitlines()[1]
        assert r"we\$ir\{d\}" in tex and "$-$" in tex
