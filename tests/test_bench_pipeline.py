"""``python -m benchmarks.bench_pipeline``: the report's contract, and its settings parsed as the run parses them."""
from __future__ import annotations

import json
import re

import pytest

from benchmarks.bench_pipeline import main

pytestmark = pytest.mark.usefixtures("one_thread")
QUICK = ["--dataset", "synthetic", "--backbone", "tiny", "--limit-train", "200", "--epochs", "1", "--batch-size",
         "32", "--teacher", "saliency", "--bare-steps", "2"]


def test_every_stage_has_a_rate_a_floor_and_the_settings_are_the_runs(tmp_path):
    out = tmp_path / "pipeline.json"
    assert main([*QUICK, "--methods", "impactx,baseline-long", "--json", str(out),
                 "--set", "method.impactx.lam=0.5", "--set", "train.lr=0.002"]) == 0
    report = json.loads(out.read_text())
    names = [s["name"] for s in report["stages"]]
    assert names == ["stage1", "teacher_maps", "impactx/stage2", "impactx/test", "baseline-long/stage2",
                     "baseline-long/test"]
    for stage in report["stages"]:
        assert stage["images_per_s"] > 0 and stage["floor_images_per_s"] > 0
        assert stage["ratio_to_floor"] == pytest.approx(stage["images_per_s"] / stage["floor_images_per_s"])
        if stage["name"].endswith("/stage2"):
            assert stage["first_epoch_included_images_per_s"] > 0
    assert report["settings"] == ["method.impactx.lam=0.5", "train.lr=0.002"]
    assert report["teacher"] == {"explainer": "saliency"} and report["batch_size"] == 32


def test_an_unknown_setting_is_refused_before_any_work(capsys, monkeypatch):
    monkeypatch.setattr("benchmarks.bench_pipeline.load_dataset", lambda *a, **k: pytest.fail("data was loaded"))
    assert main([*QUICK, "--methods", "impactx", "--set", "train.nosuch=1"]) == 2
    assert re.search(r"unknown key 'train.nosuch'.*Valid keys: train.epochs", capsys.readouterr().err)
