"""results.json: one machine-readable summary per run, from which the tables are regenerated (issue 13 item 4)."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmarks.run import main
from benchmarks.results import read_results
from benchmarks.summary import SCHEMA, tables_from_results
from test_runner import FAST


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("summary") / "run"
    assert main(["--out", str(out), *FAST, "--methods", "baseline,impactx", "--datasets", "digits",
                 "--seeds", "0,1"]) == 0
    return out


def test_results_json_holds_config_environment_and_every_table2_cell(run_dir):
    text = (run_dir / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text  # strict JSON: missing numbers are null
    results = json.loads(text)
    assert results["schema"] == SCHEMA
    assert results["config"]["train"]["epochs"] == 1 and results["environment"]["git_sha"]
    long = pd.read_csv(run_dir / "table2_long.csv")
    assert len(results["table2"]) == len(long) == 2
    for record in results["table2"]:
        row = long[long.method == record["method"]].iloc[0]
        assert record["mean"] == pytest.approx(row["mean"]) and record["std"] == pytest.approx(row["std"])
        assert record["n"] == row["n"] == 2
        assert record["paper"] is None  # embedded data never matches a paper cell
        assert set(record) >= {"p_seeds", "p_images", "delta_vs_paper", "dataset", "backbone"}
    impactx = next(r for r in results["table2"] if r["method"] == "impactx")
    assert impactx["p_images"] is not None and 0 <= impactx["p_images"] <= 1
    scores = {(r["method"], r["metric"]): r for r in results["explanations"]}
    assert scores[("baseline", "aopc/own")]["direction"] == "higher"
    assert scores[("baseline", "deletion_auc/own")]["direction"] == "lower"
    assert {r["method"] for r in results["timings"]} == {"baseline", "impactx"}
    assert any(r["metric"] == "map_fidelity" for r in results["map_fidelity"])
    assert {(c["method"], c["seed"], c["error"]) for c in results["cells"]} == \
        {(m, s, "") for m in ("baseline", "impactx") for s in (0, 1)}
    assert results["cells"][0]["log"].startswith("logs/digits_tiny_seed")


def test_tables_are_regenerated_from_results_json(run_dir):
    tables = tables_from_results(read_results(run_dir))
    expected = pd.read_csv(run_dir / "table2.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(tables["table2"].astype(str).reset_index(drop=True), expected)
    expected = pd.read_csv(run_dir / "explanations.csv", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(tables["explanations"].astype(str).reset_index(drop=True), expected)
    timings = pd.read_csv(run_dir / "timings.csv")
    pd.testing.assert_frame_equal(tables["timings"], timings, check_dtype=False)


def test_tables_command_rewrites_results_json(run_dir):
    from benchmarks.tables import main as tables_main

    (run_dir / "results.json").unlink()
    assert tables_main([str(run_dir)]) == 0
    assert read_results(run_dir)["table2"]
