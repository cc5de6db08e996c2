"""The study driver: which runs are finished, and the combined factor table, on hand-made run folders."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from benchmarks import study


def fake_run(out, run: study.Run, accuracy: dict[str, float], correct: dict[str, str], error_method: str = ""):
    folder = out / "groups" / run.name
    folder.mkdir(parents=True)
    rows = []
    for method in run.methods:
        rows.append({"method": method, "backbone": "lenet5", "dataset": "imagefolder:cifar10", "seed": run.seed,
                     "metric": "accuracy", "value": accuracy.get(method, 50.0), "direction": "higher",
                     "error": "boom" if method == error_method else ""})
    pd.DataFrame(rows).to_csv(folder / "rows.csv", index=False)
    pd.DataFrame([{"method": m, "backbone": "lenet5", "dataset": "imagefolder:cifar10", "seed": run.seed,
                   "correct": c} for m, c in correct.items()]).to_csv(folder / "per_image.csv", index=False)
    (folder / "study_run.json").write_text(json.dumps({"settings": run.settings()}))


def test_plan_is_ordered_and_finished_runs_are_recognised(tmp_path):
    runs = study.plan()
    assert [r.name for r in runs[:4]] == ["row-seed0", "factor-occlusion-augoff-seed0",
                                          "factor-partition500-augoff-seed0", "factor-occlusion-augon-seed0"]
    row = runs[0]
    assert row.settings()["method.impactx.decoder"] == "small" and row.settings()["method.impactx.epochs"] == 15
    assert not study.is_finished(row, tmp_path)
    fake_run(tmp_path, row, {}, {}, error_method="abn")
    assert not study.is_finished(row, tmp_path)  # a failed method: not finished
    other = runs[1]
    fake_run(tmp_path, other, {}, {})
    assert study.is_finished(other, tmp_path)
    stamp = tmp_path / "groups" / other.name / "study_run.json"
    stamp.write_text(json.dumps({"settings": {**other.settings(), "train.epochs": 3}}))
    assert not study.is_finished(other, tmp_path)  # settings changed since: run again


def test_factor_table_pairs_impactx_with_each_control_and_its_mcnemar_matches_scipy(tmp_path):
    rng = np.random.default_rng(0)
    runs = [r for r in study.plan() if r.name in ("factor-occlusion-augoff-seed0", "factor-occlusion-augoff-seed1")]
    expected = {"a": [], "b": []}
    for run, (acc_i, acc_s) in zip(runs, ((66.0, 65.0), (67.0, 67.5))):
        a, b = rng.random(200) < 0.66, rng.random(200) < 0.65
        expected["a"].append(a)
        expected["b"].append(b)
        bits = {"impactx": a, "impactx-shuffled": b}
        fake_run(tmp_path, run, {"impactx": acc_i, "impactx-shuffled": acc_s},
                 {m: "".join("1" if v else "0" for v in x) for m, x in bits.items()})
    study.combine_factors(runs, tmp_path)
    text = (tmp_path / "factors.md").read_text()
    a, b = np.concatenate(expected["a"]), np.concatenate(expected["b"])
    plus, minus = int((a & ~b).sum()), int((~a & b).sum())
    p = binomtest(plus, plus + minus).pvalue
    line = next(x for x in text.splitlines() if "| impactx-shuffled" in x and "+1.00, -0.50" in x)
    assert f"+{plus} / −{minus}" in line and f"{p:.3f}" in line and "+0.25" in line
    assert (tmp_path / "factors.png").stat().st_size > 10_000


def test_finished_runs_name_no_place_outside_the_repository(tmp_path):
    folder = tmp_path / "groups" / "row-seed0"
    (folder / "logs").mkdir(parents=True)
    (folder / "config.json").write_text('{"data": "/srv/data/cifar10.tar.gz", "cache": "/home/u/.cache/study/x"}')
    (folder / "logs" / "cell.log").write_text("reading /srv/data/cifar10.tar.gz from /repo/results/findings\n")
    study.portable_paths(folder, {"/srv/data/cifar10.tar.gz": "<data>", "/home/u/.cache/study": "<cache>",
                                  "/repo/": ""})
    assert (folder / "config.json").read_text() == '{"data": "<data>", "cache": "<cache>/x"}'
    assert (folder / "logs" / "cell.log").read_text() == "reading <data> from results/findings\n"
