"""Issue 6: content-keyed artifacts, resume after a kill, executors, determinism, failure isolation, bad input."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import benchmarks.grid as grid
from benchmarks.run import main
from methods.registry import _METHODS

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--backbones", "tiny", "--no-progress", "--no-explain-eval", "--set", "train.epochs=2",
        "--set", "train.max_steps_per_epoch=4", "--set", "teacher.explainer=saliency",
        "--set", "limit_train=300", "--set", "limit_test=60"]


def measured(out: Path) -> pd.DataFrame:
    """Rows without wall-clock timings (the only thing allowed to differ between two runs)."""
    rows = pd.read_csv(out / "rows.csv")
    rows = rows[rows.direction != "info"]
    return rows.drop(columns=["git_sha", "device"]).sort_values(["dataset", "seed", "method", "metric"]) \
        .reset_index(drop=True)


def count_cells(monkeypatch) -> list:
    calls = []
    real = grid.run_cell

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(grid, "run_cell", counting)
    return calls


def test_same_seed_same_rows(tmp_path):
    args = [*FAST, "--methods", "baseline", "--datasets", "digits", "--seeds", "3"]
    assert main(["--out", str(tmp_path / "a"), *args]) == 0
    assert main(["--out", str(tmp_path / "b"), *args]) == 0
    pd.testing.assert_frame_equal(measured(tmp_path / "a"), measured(tmp_path / "b"))


@pytest.mark.slow
def test_killed_run_resumes_without_recomputing_and_matches(tmp_path, monkeypatch):
    args = [*FAST, "--methods", "baseline", "--datasets", "digits,synthetic", "--seeds", "0,1",
            "--set", "train.max_steps_per_epoch=15"]
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.run", "--out", str(killed), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    cells = killed / "artifacts" / "cell"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not (cells.exists() and any(cells.glob("*.pt"))):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = len(list(cells.glob("*.pt")))
    assert 1 <= finished < 4, "the kill should land mid-grid"
    calls = count_cells(monkeypatch)
    assert main(["--out", str(killed), *args]) == 0
    assert len(calls) == 4 - finished  # finished cells were not recomputed
    assert main(["--out", str(tmp_path / "straight"), *args]) == 0
    pd.testing.assert_frame_equal(measured(killed), measured(tmp_path / "straight"))


def test_changing_one_setting_recomputes_only_what_depends_on_it(tmp_path, monkeypatch):
    base = [*FAST, "--methods", "baseline", "--datasets", "digits", "--seeds", "0", "--out", str(tmp_path / "r")]
    assert main(base) == 0
    stage1 = tmp_path / "r" / "artifacts" / "stage1"
    before = {p.name: p.stat().st_mtime_ns for p in stage1.iterdir()}
    calls = count_cells(monkeypatch)
    # The post-hoc explainer of the baseline does not change the stage-1 model: only the cell is recomputed.
    assert main(base + ["--set", "method.baseline.explainer=occlusion"]) == 0
    assert calls == ["baseline"]
    assert {p.name: p.stat().st_mtime_ns for p in stage1.iterdir()} == before
    # A training setting changes the stage-1 model: a new one is trained next to the old one.
    assert main(base + ["--set", "train.lr=0.003"]) == 0
    assert len(list(stage1.iterdir())) == 2


def test_corrupt_artifact_is_rebuilt(tmp_path, monkeypatch):
    args = [*FAST, "--methods", "baseline", "--datasets", "digits", "--seeds", "0", "--out", str(tmp_path / "r")]
    assert main(args) == 0
    first = measured(tmp_path / "r")
    for kind in ("cell", "stage1"):
        for path in (tmp_path / "r" / "artifacts" / kind).glob("*.pt"):
            path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # truncated
    calls = count_cells(monkeypatch)
    assert main(args) == 0
    assert calls == ["baseline"]
    pd.testing.assert_frame_equal(first, measured(tmp_path / "r"))


def run_with_grid(out: Path, method: str, grid: str) -> pd.DataFrame:
    """Run one method on `digits` with a `--set tune...` grid; return its rows."""
    args = [*FAST, "--methods", method, "--datasets", "digits", "--seeds", "0", "--out", str(out), "--set", grid]
    assert main(args) == 0
    return pd.read_csv(out / "rows.csv")


def test_method_grid_selects_on_validation_and_records_the_choice(tmp_path):
    rows = run_with_grid(tmp_path / "r", "baseline", "tune.stage1.lr=[0.0005,0.005]")
    chosen = rows[rows.metric == "chosen/stage1.lr"].value.item()
    assert chosen in (0.0005, 0.005)
    assert len(list((tmp_path / "r" / "artifacts" / "stage1").iterdir())) == 2


def test_lambda_grid_picks_the_best_validation_candidate(tmp_path):
    rows = run_with_grid(tmp_path / "r", "impactx", "tune.method.impactx.lam=[0.0,2.0]")
    chosen = rows[rows.metric == "chosen/lam"].value.item()
    assert chosen in (0.0, 2.0)
    cells = list((tmp_path / "r" / "artifacts" / "cell").glob("*.pt"))
    assert len(cells) == 2  # one stored training per candidate
    from core.artifacts import ArtifactStore

    store = ArtifactStore(tmp_path / "r" / "artifacts")
    val = {}
    for path in cells:
        result = store.load("cell", path.stem)
        val[result["facts"]["lam"]] = next(r["value"] for r in result["rows"] if r["metric"] == "val_accuracy")
    assert val[chosen] == max(val.values())  # the reported cell is the candidate best on validation


def test_paper_profile_searches_the_papers_grids():
    from benchmarks.profiles import PROFILES

    paper = PROFILES["paper"]()
    assert paper["stage1_grid"]["batch_size"] == (16, 32, 64)
    assert paper["stage1_grid"]["val_fraction"] == (0.05, 0.1, 0.2)
    lrs = paper["stage1_grid"]["lr"]
    assert len(lrs) == 20 and lrs[0] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(0.0096)
    assert paper["method_grid"]["impactx"]["lam"] == pytest.approx((0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4))
    assert paper["seeds"] == (0, 1, 2) and paper["teacher"].options["max_evals"] == 2000


def test_nan_loss_is_an_error_row_and_exit_1(tmp_path, monkeypatch, capsys):
    (tmp_path / "nan_plugin.py").write_text(
        "import torch\n"
        "from methods import register_method\n"
        "from methods.baseline import Baseline\n"
        "@register_method('nan-loss')\n"
        "class NanLoss(Baseline):\n"
        "    '''Its loss is NaN.'''\n"
        "    def fit(self, ctx):\n"
        "        self.model = ctx.build_backbone()\n"
        "        ctx.engine.fit(self.model, lambda b: (self.model(b.x).sum() * float('nan'), self.model(b.x)),\n"
        "                       ctx.data)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        code = main([*FAST, "--plugin", "nan_plugin", "--methods", "nan-loss,baseline", "--datasets", "digits",
                     "--out", str(tmp_path / "r")])
    finally:
        _METHODS.pop("nan-loss", None)
        sys.modules.pop("nan_plugin", None)
    assert code == 1
    rows = pd.read_csv(tmp_path / "r" / "rows.csv")
    assert rows[rows.method == "nan-loss"].error.str.contains("non-finite training loss").all()
    assert rows[(rows.method == "baseline") & (rows.metric == "accuracy")].value.notna().all()
    assert "1 cell(s) failed" in capsys.readouterr().err


def test_pretrained_weights_offline_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    code = main(["--out", str(tmp_path / "r"), *FAST, "--methods", "baseline", "--datasets", "digits",
                 "--backbones", "mobilenet"])
    err = capsys.readouterr().err
    assert code == 2 and "--no-pretrained" in err and "Traceback" not in err


@pytest.mark.slow
def test_ray_executor_gives_the_same_rows_as_local(tmp_path):
    args = [*FAST, "--methods", "baseline", "--datasets", "digits,synthetic", "--seeds", "0"]
    assert main(["--out", str(tmp_path / "local"), *args]) == 0
    try:
        assert main(["--out", str(tmp_path / "ray"), "--executor", "ray", *args]) == 0
    finally:
        import ray

        ray.shutdown()
    pd.testing.assert_frame_equal(measured(tmp_path / "local"), measured(tmp_path / "ray"))


def test_a_cells_key_holds_the_method_defaults_so_changing_a_default_retrains_it(digits, monkeypatch):
    """An unset option is keyed by its constructor default: the cached cell of a run that relied on the old
    default (IMPACTX's decoder was `paper`) is not served after the default changes."""
    from benchmarks.config import RunConfig
    from core.artifacts import spec_key
    from methods.registry import get_method_class

    ImpactX = get_method_class("impactx")
    cfg, group = RunConfig(), grid.Group("digits", "tiny", 0, ("impactx",))

    def key(options):
        return spec_key("cell", grid.cell_spec(cfg, digits, group, "impactx", options))

    implicit = key({})
    assert implicit == key({"decoder": "tiny"}) != key({"decoder": "paper"})
    defaults = ImpactX.__init__.__kwdefaults__
    monkeypatch.setattr(ImpactX.__init__, "__kwdefaults__", {**defaults, "decoder": "paper"})
    assert key({}) == key({"decoder": "paper"}) != implicit
