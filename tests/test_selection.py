"""Issue 16: every grid keeps the candidate whose *validation* score is highest, the score it reports is that
maximum, and a grid with nothing to choose on is an error, not a silent pick of the first candidate.

The CLI side (``train.val_fraction=0`` with a stage-1 or a method grid: exit 2 before training) is covered by the
cases "grid without validation" and "method grid without validation" of ``tests/test_bad_input.py``."""
from __future__ import annotations

import itertools

import pytest
import torch

import benchmarks.grid as grid
from core.artifacts import ArtifactStore
from benchmarks.config import RunConfig
from methods.context import BackboneConfig, FitContext
from methods.engine import Engine, TrainConfig

LAMS = (0.2, 0.6, 1.0, 1.4)
DECODERS = ("paper", "small")


def _stub_cells(monkeypatch, val: dict, test: dict) -> list[dict]:
    """``run_cell`` replaced by a stub whose validation and test accuracies per candidate are known."""
    calls = []

    def fake_run_cell(cfg, group, method, data, artifacts, options):
        key = (options["lam"], options.get("decoder"))
        calls.append(key)
        rows = [{"metric": "accuracy", "value": test[key], "direction": "higher"}]
        if val[key] is not None:
            rows.insert(0, {"metric": "val_accuracy", "value": val[key], "direction": "higher"})
        return {"rows": rows, "per_image": None, "facts": {"lam": options["lam"]}, "figure": None}

    monkeypatch.setattr(grid, "run_cell", fake_run_cell)
    return calls


def _choose(digits, method_grid: dict) -> dict:
    cfg = RunConfig(methods=("impactx",), backbones=("tiny",), datasets=("digits",),
                    method_grid={"impactx": method_grid})
    group = grid.Group("digits", "tiny", 0, ("impactx",))
    return grid._best_candidate(cfg, group, "impactx", digits, ArtifactStore(None))


@pytest.mark.parametrize("best", range(len(LAMS)))
def test_method_grid_keeps_the_argmax_of_validation_accuracy(digits, monkeypatch, best):
    val = {(lam, None): 50.0 + i for i, lam in enumerate(LAMS)}
    val[(LAMS[best], None)] = 90.0
    test = {key: 100.0 - v for key, v in val.items()}  # the best on test is never the best on validation
    calls = _stub_cells(monkeypatch, val, test)
    result = _choose(digits, {"lam": LAMS})
    rows = {r["metric"]: r["value"] for r in result["rows"]}
    assert sorted(calls) == sorted(val)  # every candidate was trained
    assert rows["chosen/lam"] == LAMS[best]
    assert rows["val_accuracy"] == max(val.values()) == 90.0
    assert rows["accuracy"] == test[(LAMS[best], None)]  # the test score reported is the chosen candidate's


def test_a_two_option_grid_keeps_the_argmax_over_the_whole_product(digits, monkeypatch):
    keys = list(itertools.product(LAMS, DECODERS))
    scores = torch.randperm(len(keys), generator=torch.Generator().manual_seed(3)).tolist()
    val = {k: 40.0 + s for k, s in zip(keys, scores)}
    _stub_cells(monkeypatch, val, {k: 50.0 for k in keys})
    rows = {r["metric"]: r["value"] for r in _choose(digits, {"lam": LAMS, "decoder": DECODERS})["rows"]}
    best = max(val, key=val.get)
    assert (rows["chosen/lam"], rows["chosen/decoder"]) == best
    assert rows["val_accuracy"] == val[best]


def test_ties_keep_the_first_candidate_in_grid_order(digits, monkeypatch):
    _stub_cells(monkeypatch, {(lam, None): 70.0 for lam in LAMS}, {(lam, None): 50.0 for lam in LAMS})
    rows = {r["metric"]: r["value"] for r in _choose(digits, {"lam": LAMS})["rows"]}
    assert rows["chosen/lam"] == LAMS[0]


@pytest.mark.parametrize("missing", [-100.0, None], ids=["no validation images", "no val_accuracy row"])
def test_a_grid_without_validation_scores_is_an_error_not_the_first_candidate(digits, monkeypatch, missing):
    _stub_cells(monkeypatch, {(lam, None): missing for lam in LAMS}, {(lam, None): 50.0 for lam in LAMS})
    with pytest.raises(ValueError, match="no validation accuracy"):
        _choose(digits, {"lam": LAMS})


STAGE1_GRID = {"lr": (0.001, 0.003, 0.01), "batch_size": (16, 32)}


def _stub_stage1(monkeypatch, score) -> list:
    """``FitContext._stage1_artifact`` replaced by stored results with known validation accuracies."""
    state = BackboneConfig("tiny").build(10, 8).state_dict()
    seen = []

    def fake(self, engine):
        seen.append((engine.cfg.lr, engine.cfg.batch_size))
        return {"state": state, "fit": {"best_val_accuracy": score(engine.cfg)}}, f"key-{engine.cfg.lr}-" \
            f"{engine.cfg.batch_size}"

    monkeypatch.setattr(FitContext, "_stage1_artifact", fake)
    return seen


@pytest.mark.parametrize("winner", [(0.001, 16), (0.003, 32), (0.01, 16)])
def test_stage1_grid_keeps_the_argmax_of_validation_accuracy(digits, monkeypatch, winner):
    seen = _stub_stage1(monkeypatch, lambda c: 0.9 if (c.lr, c.batch_size) == winner else 0.5 + c.lr)
    ctx = FitContext(digits.limit(train=40, test=10), Engine(TrainConfig(), progress=False), BackboneConfig("tiny"),
                     stage1_grid=STAGE1_GRID)
    model, key = ctx.stage1()
    assert len(seen) == 6  # every combination
    assert ctx.facts["stage1_chosen"] == {"batch_size": winner[1], "lr": winner[0]}
    assert ctx.facts["stage1_fit"]["best_val_accuracy"] == 0.9
    assert key == f"key-{winner[0]}-{winner[1]}"


def test_stage1_grid_without_validation_is_an_error(digits, monkeypatch):
    _stub_stage1(monkeypatch, lambda c: -1.0)  # what the engine reports without validation images
    ctx = FitContext(digits.limit(train=40, test=10), Engine(TrainConfig(val_fraction=0.0), progress=False),
                     BackboneConfig("tiny"), stage1_grid=STAGE1_GRID)
    with pytest.raises(ValueError, match="no validation accuracy"):
        ctx.stage1()
