"""The runner end to end on embedded data, its error handling and its resume."""
import shutil
import sys

import pandas as pd
import pytest

from benchmarks.run import main
from latex_checks import compile_tables, problems
from methods.registry import _METHODS

FAST = ["--backbones", "tiny", "--seeds", "0", "--no-progress", "--set", "train.epochs=1",
        "--set", "train.max_steps_per_epoch=3", "--set", "teacher.explainer=saliency",
        "--set", "explanation_images=8", "--set", "limit_train=300", "--set", "limit_test=60"]


def run(tmp_path, *args, name="run"):
    out = tmp_path / name
    code = main(["--out", str(out), *FAST, *args])
    return code, out


@pytest.mark.slow
def test_smoke_end_to_end_writes_rows_and_tables(tmp_path):
    code, out = run(tmp_path, "--methods", "baseline", "--datasets", "digits,synthetic", "--seeds", "0,1")
    assert code == 0
    rows = pd.read_csv(out / "rows.csv")
    acc = rows[rows.metric == "accuracy"]
    assert set(zip(acc.dataset, acc.seed)) == {("digits", 0), ("digits", 1), ("synthetic", 0), ("synthetic", 1)}
    assert acc.value.between(0, 100).all() and (rows.error.isna()).all()
    assert {"git_sha", "device", "profile"} <= set(rows.columns)
    config = (out / "config.json").read_text()
    assert '"packages"' in config and '"git_sha"' in config and '"epochs": 1' in config
    md = (out / "table2.md").read_text()
    digits_mean = acc[acc.dataset == "digits"].value.mean()
    assert f"{digits_mean:.2f} ± " in md and "| digits" in md
    tex = (out / "table2.tex").read_text()
    assert r"\toprule" in tex and "digits" in tex and r"$\pm$" in tex
    table = pd.read_csv(out / "table2_long.csv")
    assert table.loc[table.dataset == "digits", "mean"].item() == pytest.approx(digits_mean)
    assert table["paper"].isna().all()  # embedded data never matches a paper cell
    wide = pd.read_csv(out / "table2.csv", dtype=str)  # the paper's layout: one column per method
    assert list(wide.columns[:3]) == ["dataset", "backbone", "baseline"]
    assert wide.loc[wide.dataset == "digits", "baseline"].item().startswith(f"{digits_mean:.2f} ± ")
    if shutil.which("pdflatex"):  # the run's own .tex files compile and fit the page (tests/test_latex.py: all engines)
        code, log = compile_tables("pdflatex", [out / "table2.tex", out / "explanations.tex"], tmp_path / "tex")
        assert code == 0 and not problems(log), problems(log)


def test_rows_separate_a_methods_own_time_from_the_shared_work(tmp_path):
    code, out = run(tmp_path, "--methods", "baseline,impactx", "--datasets", "digits", "--no-explain-eval")
    assert code == 0
    rows = pd.read_csv(out / "rows.csv").set_index(["method", "metric"])["value"]
    for metric in ("seconds/stage1", "seconds/stage2", "seconds/teacher_maps", "fit_seconds", "seconds/test"):
        assert rows[("impactx", metric)] > 0, metric
    assert ("baseline", "seconds/teacher_maps") not in rows.index  # the baseline uses no teacher maps
    # maps are computed once for every image of the (limited) training split: 300, validation portion included
    assert rows[("impactx", "ms_per_image/teacher_maps")] == pytest.approx(
        1000 * rows[("impactx", "seconds/teacher_maps")] / 300)
    assert ("impactx", "seconds/explanations") not in rows.index  # --no-explain-eval: nothing was explained
    # the stage-1 model is shared: the same training time is reported by both methods that use it
    assert rows[("baseline", "seconds/stage1")] == rows[("impactx", "seconds/stage1")]


@pytest.mark.slow
def test_a_method_that_runs_an_explainer_per_prediction_gets_a_capped_explanation_budget(tmp_path):
    """wae-shap predicts by explaining every class: no post-hoc map on top of it, MoRF on at most 16 images."""
    code, out = run(tmp_path, "--methods", "baseline,wae-shap", "--datasets", "digits", "--set",
                    "explanation_images=24", "--set", "method.wae-shap.explainer=saliency",
                    "--set", "method.wae-shap.explainer_options={}")
    assert code == 0
    rows = pd.read_csv(out / "rows.csv")
    ours, base = rows[rows.method == "wae-shap"], rows[rows.method == "baseline"]
    assert ours[ours.metric == "explanation_images"].value.item() == 16
    assert base[base.metric == "explanation_images"].value.item() == 24
    assert {"aopc/own", "aopc/random"} <= set(ours.metric) and not ours.metric.str.endswith("/saliency").any()
    assert base.metric.str.endswith("/saliency").any()


def test_rerun_recomputes_nothing(tmp_path, monkeypatch):
    code, out = run(tmp_path, "--methods", "baseline", "--datasets", "digits")
    assert code == 0
    first = pd.read_csv(out / "rows.csv")
    import benchmarks.grid as grid

    monkeypatch.setattr(grid, "run_cell", lambda *a, **k: pytest.fail("a finished cell was recomputed"))
    code, out = run(tmp_path, "--methods", "baseline", "--datasets", "digits")
    assert code == 0
    pd.testing.assert_frame_equal(first, pd.read_csv(out / "rows.csv"))


def test_failing_cell_becomes_an_error_row_and_the_grid_goes_on(tmp_path, monkeypatch, capsys):
    (tmp_path / "failing_plugin.py").write_text(
        "from methods import register_method\n"
        "from methods.baseline import Baseline\n"
        "@register_method('always-fails')\n"
        "class AlwaysFails(Baseline):\n"
        "    '''Raises during training.'''\n"
        "    def fit(self, ctx):\n"
        "        raise FloatingPointError('loss is NaN')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        code, out = run(tmp_path, "--plugin", "failing_plugin", "--methods", "always-fails,baseline",
                        "--datasets", "digits")
    finally:
        _METHODS.pop("always-fails", None)
        sys.modules.pop("failing_plugin", None)
    assert code == 1
    rows = pd.read_csv(out / "rows.csv")
    failed = rows[rows.method == "always-fails"]
    assert failed.error.str.contains("FloatingPointError: loss is NaN").all()
    assert (rows[rows.method == "baseline"].error.fillna("") == "").all()
    assert "always-fails / tiny / digits / seed 0" in capsys.readouterr().err


def test_every_cell_gets_a_real_morf_and_example_figure(tmp_path):
    from test_figures import _check_png

    code, out = run(tmp_path, "--methods", "baseline,impactx", "--datasets", "digits,synthetic")
    assert code == 0
    expected = {f"morf_{d}_tiny_seed0.png" for d in ("digits", "synthetic")}
    expected |= {f"examples_{d}_tiny_seed0_{m}.png" for d in ("digits", "synthetic") for m in ("baseline", "impactx")}
    fidelity = {f"map_fidelity_{d}_tiny_seed0.png" for d in ("digits", "synthetic")}  # IMPACTX has a decoder
    assert {p.name for p in (out / "figures").glob("*.png")} == expected | fidelity
    for name in sorted(expected):  # a few KB at least, several colours, not blank
        _check_png(out / "figures" / name)
    for name in sorted(fidelity):  # one epoch: one point per curve, but axes, titles and a legend
        assert (out / "figures" / name).stat().st_size > 10_000
    assert not (pd.read_csv(out / "rows.csv").metric == "figure_error").any()


def test_every_group_writes_its_training_curves(tmp_path):
    """``histories/<group>.csv``: one row per (method, stage, epoch) of the stages a method trains itself (the
    baseline is the shared stage-1 model: no stage of its own), with the validation accuracy the engine selected on
    (its maximum is the cell's ``val_accuracy`` row) and IMPACTX's per-epoch map fidelity."""
    code, out = run(tmp_path, "--methods", "baseline,impactx,abn", "--datasets", "digits", "--set", "train.epochs=2")
    assert code == 0
    curves = pd.read_csv(out / "histories" / "digits_tiny_seed0.csv")
    assert set(zip(curves["method"], curves["stage"])) == {("impactx", "stage2"), ("abn", "fit")}
    assert all(list(sub["epoch"]) == [0, 1] for _, sub in curves.groupby(["method", "stage"]))
    rows = pd.read_csv(out / "rows.csv")
    for method in ("impactx", "abn"):
        val = rows[(rows.method == method) & (rows.metric == "val_accuracy")]["value"].iloc[0]
        assert curves[curves.method == method]["val_accuracy"].max() * 100 == pytest.approx(val)
    assert curves[curves.method == "impactx"]["map_fidelity"].notna().all()


def test_a_figure_that_cannot_be_drawn_is_a_warning_and_a_row(tmp_path, monkeypatch, caplog, capsys):
    import benchmarks.figures

    def broken(*args, **kwargs):
        raise RuntimeError("no backend for this figure")

    monkeypatch.setattr(benchmarks.figures, "plot_examples", broken)
    with caplog.at_level("WARNING"):
        code, out = run(tmp_path, "--methods", "baseline", "--datasets", "digits")
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("could not draw figure" in m and "no backend for this figure" in m for m in warned), warned
    rows = pd.read_csv(out / "rows.csv")
    rows["error"] = rows["error"].fillna("")
    failed = rows[rows.metric == "figure_error"]
    assert failed.method.tolist() == ["baseline"]
    assert failed.error.item() == ("figure examples_digits_tiny_seed0_baseline.png: RuntimeError: no backend for "
                                   "this figure")
    assert (out / "figures" / "morf_digits_tiny_seed0.png").is_file()  # the other figures are still drawn
    # the numbers are untouched: Table 2 shows the accuracy; the run warns what is missing and, since every cell
    # ran, exits 0 (exit 1 means a cell failed)
    accuracy = rows[rows.metric == "accuracy"]
    assert accuracy.error.item() == ""
    assert f"{accuracy.value.item():.2f}" in (out / "table2.md").read_text()
    err = capsys.readouterr().err
    assert code == 0 and "warning: 1 figure(s) could not be drawn" in err
    assert "figure examples_digits_tiny_seed0_baseline.png" in err


def test_tables_command_regenerates_without_training(tmp_path):
    from benchmarks.tables import main as tables_main

    code, out = run(tmp_path, "--methods", "baseline", "--datasets", "digits")
    (out / "table2.md").unlink()
    assert tables_main([str(out)]) == 0
    assert (out / "table2.md").exists()


def test_help_explains_the_flags(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--all", "--profile", "--set", "--plugin", "--executor", "--seeds", "--device"):
        assert flag in text


def test_list_names_every_registered_method_with_a_description(capsys):
    from methods import list_methods

    assert main(["--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in list_methods():
        line = next(x for x in lines if x.split()[:1] == [name])
        assert len(line.split()) > 1, f"{name} is listed without a description"
    assert any("synthetic" in x for x in lines) and any("partition" in x for x in lines)
