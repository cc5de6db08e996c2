"""--dry-run: the plan, the cache state by content key, the work left and an estimate checked against a real run."""
from __future__ import annotations

import re
import time

import pytest

from benchmarks.run import main
from test_runner import FAST

ARGS = [*FAST, "--methods", "baseline,impactx", "--datasets", "digits"]


def estimated_seconds(text: str) -> float:
    value, unit = re.search(r"estimated wall time: ~([\d.]+) (s|min|h)", text).groups()
    return float(value) * {"s": 1, "min": 60, "h": 3600}[unit]


def test_dry_run_plans_estimates_and_trains_nothing_then_sees_the_cache(tmp_path, capsys, monkeypatch):
    import core.artifacts as artifacts

    out = tmp_path / "run"
    with monkeypatch.context() as patch:  # calibration trains throw-away models in memory; nothing reaches a disk
        patch.setattr(artifacts, "atomic_write_bytes", lambda *a, **k: pytest.fail("a dry run wrote an artifact"))
        assert main(["--out", str(out), *ARGS, "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()  # nothing written
    assert re.search(r"cell baseline +to run \(cell/[0-9a-f]{20}\)", text), text
    assert "stage-1 model      0 of 1 training(s) cached; 1 to train: 3 steps" in text
    assert "teacher maps       saliency on 300 images: model not trained yet; 300 model evaluations" in text
    assert re.search(r"tiny on digits \(32 px\): training [\d.]+ ms at batch 64, forward [\d.]+ ms", text), text
    assert "method training    3 training steps" in text
    estimate = estimated_seconds(text)

    start = time.perf_counter()
    assert main(["--out", str(out), *ARGS]) == 0
    measured = time.perf_counter() - start
    capsys.readouterr()
    assert measured / 10 <= estimate <= measured * 10, (estimate, measured)

    assert main(["--out", str(out), *ARGS, "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "2 cell(s) (2 cached)" in text and re.search(r"cell impactx +cached", text)
    assert estimated_seconds(text) == 0.0

    # another lambda: the stage-1 model and the teacher-map shards are found in the cache, only impactx runs
    assert main(["--out", str(out), *ARGS, "--set", "method.impactx.lam=0.3", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert re.search(r"cell baseline +cached", text) and re.search(r"cell impactx +to run", text)
    assert "stage-1 model      1 of 1 training(s) cached" in text
    assert "teacher maps       saliency on 300 images: 1 of 1 shard(s) cached" in text
    assert "stage-1 training" not in text.split("work left:")[1]


def test_dry_run_of_bad_input_still_exits_2(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "r"), *ARGS, "--set", "train.epochs=0", "--dry-run"]) == 2
    assert "must be positive" in capsys.readouterr().err
