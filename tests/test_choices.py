"""Defaults chosen on validation (issue 10 item 4): the rule picks on validation accuracy, then map fidelity, then
cost; test accuracy never changes the choice; only seeds every option ran with count."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmarks import study
from benchmarks.choices import choose, decoder_multiply_adds


def frame(spec: dict[str, list[tuple[float, float]]], cost: dict[str, float] | None = None,
          test: float = 50.0) -> pd.DataFrame:
    """option -> per-seed (val_accuracy, map_fidelity)."""
    rows = []
    for option, values in spec.items():
        for seed, (val, fid) in enumerate(values):
            rows.append({"option": option, "seed": seed, "val_accuracy": val, "map_fidelity": fid,
                         "accuracy": test, **({"cost": cost[option]} if cost else {})})
    return pd.DataFrame(rows)


def test_a_clear_validation_winner_is_chosen_even_if_it_is_worse_on_fidelity_and_cost():
    f = frame({"paper": [(70.0, -0.5), (70.2, -0.5)], "tiny": [(68.0, 0.1), (68.2, 0.1)]},
              cost={"paper": 20e6, "tiny": 1e6})
    assert choose("decoder", f, ["paper", "tiny"]).chosen == "paper"


def test_a_tie_on_accuracy_is_decided_by_map_fidelity():
    f = frame({"paper": [(68.0, -0.30), (68.6, -0.32)], "small": [(68.2, -0.10), (68.4, -0.12)]},
              cost={"paper": 20e6, "small": 2e6})
    choice = choose("decoder", f, ["paper", "small"])
    assert choice.chosen == "small" and "map fidelity" in choice.reason


def test_a_tie_on_both_goes_to_the_cheapest_and_a_full_tie_to_the_first_in_grid_order():
    spec = {"paper": [(68.0, -0.10), (68.4, -0.12)], "tiny": [(68.2, -0.11), (68.3, -0.10)]}
    assert choose("decoder", frame(spec, cost={"paper": 20e6, "tiny": 1e6}), ["paper", "tiny"]).chosen == "tiny"
    assert choose("augment", frame(spec), ["paper", "tiny"]).chosen == "paper"
    assert choose("augment", frame(spec), ["tiny", "paper"]).chosen == "tiny"


def test_test_accuracy_never_changes_the_choice():
    spec = {"a": [(70.0, 0.0), (70.1, 0.0)], "b": [(65.0, 0.0), (65.1, 0.0)]}
    low, high = frame(spec, test=10.0), frame(spec, test=10.0)
    high.loc[high["option"] == "b", "accuracy"] = 99.0
    assert choose("x", low, ["a", "b"]).chosen == choose("x", high, ["a", "b"]).chosen == "a"


def test_only_seeds_common_to_every_option_count():
    f = frame({"a": [(60.0, 0.0), (60.0, 0.0), (90.0, 0.0)], "b": [(70.0, 0.0), (70.0, 0.0)]})
    choice = choose("x", f, ["a", "b"])
    assert choice.chosen == "b"  # a's seed 2 (90 %) has no partner in b
    assert set(choice.table["seeds"]) == {"0, 1"}
    with pytest.raises(ValueError, match="no seed was run with every option"):
        choose("x", pd.concat([f[f["option"] == "a"].assign(seed=5), f[f["option"] == "b"]]), ["a", "b"])


def test_decoder_multiply_adds_match_the_closed_form():
    # tiny at 32 px: FC 512 -> 8x8x8, [conv 8->8 x2] at 8x8, [conv 8->8 x2] at 16x16, conv 8->3 at 32x32
    tiny = 512 * 512 + 2 * 8 * 8 * 9 * 8 * 8 + 2 * 8 * 8 * 9 * 16 * 16 + 8 * 3 * 9 * 32 * 32
    assert decoder_multiply_adds("tiny") == tiny
    assert decoder_multiply_adds("tiny") < decoder_multiply_adds("small") < decoder_multiply_adds("paper")


def fake_impactx_run(out, run: study.Run, val: float, fidelity: float, test: float) -> None:
    folder = out / "groups" / run.name
    folder.mkdir(parents=True)
    rows = [{"method": m, "backbone": "lenet5", "dataset": "imagefolder:cifar10", "seed": run.seed, "metric": k,
             "value": v, "direction": "higher", "error": ""}
            for m in run.methods for k, v in (("val_accuracy", val), ("map_fidelity", fidelity), ("accuracy", test))]
    pd.DataFrame(rows).to_csv(folder / "rows.csv", index=False)
    (folder / "study_run.json").write_text(json.dumps({"settings": run.settings()}))


def test_the_study_writes_its_decoder_choice_with_the_grid(tmp_path):
    runs = {r.name: r for r in study.plan()}
    for seed in (1, 2):
        fake_impactx_run(tmp_path, runs[f"row-seed{seed}"], 68.0, -0.15, 67.0)  # small, same stage-1 models
    fake_impactx_run(tmp_path, runs["decoder-small-seed0"], 68.1, -0.14, 99.0)
    for seed in (0, 1):
        fake_impactx_run(tmp_path, runs[f"decoder-tiny-seed{seed}"], 68.05, -0.10, 10.0)
        fake_impactx_run(tmp_path, runs[f"decoder-paper-seed{seed}"], 66.0, -0.30, 99.0)
    written = study.combine_choices(study.plan(), tmp_path)
    table = pd.read_csv(tmp_path / "choices.csv")
    decoder = table[table["setting"] == "method.impactx.decoder"].set_index("option")
    assert list(decoder.index) == ["paper", "small", "tiny"]
    assert decoder["chosen"].tolist() == [False, False, True]  # tie with small on accuracy, better fidelity
    assert set(decoder["seeds"]) == {"0, 1"}  # small's seed 2 (row-seed2) has no partner
    assert decoder.loc["small", "val_accuracy_mean"] == pytest.approx(68.05)  # seed 0 from its own run, 1 from the row
    assert "**tiny**" in (tmp_path / "choices.md").read_text() and tmp_path / "choices.md" in written


def test_stage2_length_options_are_read_off_the_validation_curves(tmp_path):
    """With a constant learning rate the first E epochs of a run are an E-epoch run: option E scores the best
    validation accuracy of those epochs and the map fidelity of that epoch."""
    runs = {r.name: r for r in study.plan()}
    for seed, peak in ((1, 3), (2, 12)):
        run = runs[f"row-seed{seed}"]
        fake_impactx_run(tmp_path, run, 68.0, -0.1, 67.0)
        curve = pd.DataFrame({"method": "impactx", "stage": "stage2", "epoch": range(15),
                              "val_accuracy": [0.60 + 0.001 * e + (0.05 if e == peak else 0.0) for e in range(15)],
                              "map_fidelity": [-0.01 * e for e in range(15)]})
        (tmp_path / "groups" / run.name / "histories").mkdir()
        curve.to_csv(tmp_path / "groups" / run.name / "histories" / "cifar10_lenet5.csv", index=False)
    frame = study.length_frame(study.plan(), tmp_path).set_index(["seed", "option"])
    assert frame.loc[(1, "5"), "val_accuracy"] == pytest.approx(65.3)  # epoch 3's peak is inside the first 5
    assert frame.loc[(1, "5"), "map_fidelity"] == pytest.approx(-0.03)
    assert frame.loc[(2, "5"), "val_accuracy"] == pytest.approx(60.4)  # seed 2 peaks at epoch 12: only 15 sees it
    assert frame.loc[(2, "15"), "val_accuracy"] == pytest.approx(66.2) and frame.loc[(2, "15"), "cost"] == 15
    study.combine_choices(study.plan(), tmp_path)
    table = pd.read_csv(tmp_path / "choices.csv")
    assert set(table.loc[table["setting"] == "method.<stage 2>.epochs", "option"]) == {15, 10, 5}
