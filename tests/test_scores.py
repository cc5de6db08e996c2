"""The score registry: one declaration per score, tables select by kind, cached cells follow the declarations."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

import benchmarks.scores  # noqa: F401  (declares every score)
from benchmarks import grid
from benchmarks.explanation_quality import ExplanationRun, rows_from_run
from benchmarks.table_frames import explanations_long, explanations_wide
from core.registry import UnknownNameError
from core.scores import (SCORES, ScoreInputs, code_fingerprint, direction, kind, names_of_kind, register_score,
                         registry_fingerprint, row)


@pytest.fixture
def toy_score():
    """A new explanation score, added the way a user adds one (one decorated function), removed afterwards."""

    @register_score("final_drop", "higher", "explanation", "f_0 - f_L: the score's total fall")
    def final_drop(inputs: ScoreInputs) -> torch.Tensor:
        return inputs.curves[:, 0] - inputs.curves[:, -1]

    yield final_drop
    SCORES.entries.pop("final_drop", None)


def toy_run() -> ExplanationRun:
    curves = {"own": torch.tensor([[1.0, 0.5, 0.2], [0.8, 0.8, 0.1]]),
              "random": torch.tensor([[1.0, 0.9, 0.7], [0.8, 0.7, 0.6]])}
    maps = {s: torch.zeros(2, 1, 4, 4) for s in curves}
    return ExplanationRun(index=torch.arange(2), images=torch.zeros(2, 3, 4, 4), labels=torch.zeros(2),
                          target=torch.zeros(2), maps=maps, curves=curves, random_order_curves=curves["random"],
                          masks=None, config=None, explainer=None, target_mode="label")


def test_a_registered_score_is_computed_for_every_source_and_tabulated_with_its_arrow(toy_score):
    rows = rows_from_run(toy_run())
    drop = {r["metric"]: r for r in rows if r["score"] == "final_drop"}
    assert set(drop) == {"final_drop/own", "final_drop/random"}
    assert drop["final_drop/own"]["value"] == pytest.approx((0.8 + 0.7) / 2)  # closed form: mean of f_0 - f_L
    assert drop["final_drop/own"]["per_image"] == pytest.approx([0.8, 0.7])
    assert drop["final_drop/own"]["direction"] == "higher"
    frame = pd.DataFrame([{"method": "m", "backbone": "b", "dataset": "d", "seed": 0, "error": "",
                           **{k: r[k] for k in ("metric", "value", "direction")}} for r in rows])
    wide = explanations_wide(explanations_long(frame))
    assert "final_drop (↑)" in wide.columns and "aopc (↑)" in wide.columns and "deletion_auc (↓)" in wide.columns
    columns = list(wide.columns)
    assert columns.index("final_drop (↑)") > columns.index("deletion_auc_vs_random (↓)")  # declaration order


def test_a_score_applies_only_where_its_inputs_exist():
    rows = rows_from_run(toy_run())  # no masks, no constant control
    scores = {r["score"] for r in rows}
    assert {"aopc", "deletion_auc", "aopc_vs_random", "deletion_auc_vs_random"} <= scores
    assert not scores & {"mask_share", "pointing_game", "aopc_vs_constant"}


def test_cached_cells_follow_the_declared_scores():
    before = (registry_fingerprint(), grid.result_version())

    @register_score("final_drop", "higher", "explanation", "f_0 - f_L")
    def final_drop(inputs: ScoreInputs) -> torch.Tensor:
        return inputs.curves[:, 0] - inputs.curves[:, -1]

    try:
        after = (registry_fingerprint(), grid.result_version())
    finally:
        SCORES.entries.pop("final_drop")
    assert before[0] != after[0] and before[1] != after[1]  # a new score: cached cells are recomputed
    assert (registry_fingerprint(), grid.result_version()) == before  # deterministic


def test_code_fingerprint_ignores_prose_but_not_code():
    def a(x):
        """Doc."""
        return x + 1  # a comment

    def b(x):
        """Another docstring, longer."""
        return x + 1

    def c(x):
        return x + 2

    assert code_fingerprint(a) == code_fingerprint(b) != code_fingerprint(c)


def test_directions_and_kinds_come_from_the_declarations():
    assert direction("aopc/own") == "higher" and direction("deletion_auc_vs_random/shap") == "lower"
    assert kind("map_mse/decoder") == "map_fidelity" and kind("seconds/test") == "cost"
    assert names_of_kind("accuracy") == ["accuracy"]
    with pytest.raises(UnknownNameError, match="valid scores: .*aopc"):
        direction("nonsense/own")
    assert row("plugin_fact", 1.0) == {"metric": "plugin_fact", "value": 1.0, "direction": "info"}
    with pytest.raises(ValueError, match="kind must be one of"):
        from core.scores import declare_score

        declare_score("bad_kind", "higher", "nonsense", "")


def test_every_row_of_a_run_is_a_declared_score(tmp_path):
    from benchmarks.run import main

    assert main(["--out", str(tmp_path), "--methods", "baseline,impactx", "--backbones", "tiny", "--datasets",
                 "synthetic", "--no-progress", "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2",
                 "--set", "teacher.explainer=saliency", "--set", "limit_train=120", "--set", "limit_test=24",
                 "--set", "explanation_images=6", "--set", "morf.steps=4"]) == 0
    rows = pd.read_csv(tmp_path / "rows.csv", keep_default_na=False)
    undeclared = sorted({m for m in rows["metric"] if m.split("/", 1)[0] not in SCORES.entries})
    assert not undeclared, f"rows with no declared score: {undeclared}"
    for metric, value in zip(rows["metric"], rows["direction"]):
        assert value == direction(metric), metric
