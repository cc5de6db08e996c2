"""Progress on a terminal and without one, the run log and the per-cell logs (issue 13 items 2-3, issue 11 item 6)."""
from __future__ import annotations

import io
import logging
import re
import sys

import pandas as pd
import pytest

from benchmarks import logs
from core import progress
from benchmarks.run import main
from methods.registry import _METHODS
from test_runner import FAST

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
FAST_WITH_PROGRESS = [a for a in FAST if a != "--no-progress"]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def clean_console():
    yield
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logs.ConsoleHandler):
            root.removeHandler(handler)
    progress.configure()


def drive(monkeypatch, stream, interval: float = 0.0) -> None:
    monkeypatch.setattr(progress, "LINE_INTERVAL", interval)
    progress.configure(stream=stream)
    logs.setup_console("normal", stream=stream)
    grid = progress.progress(2, "grid", unit="cell", level=0, interval=0.0)
    progress.set_activity("digits/tiny/seed0 impactx")
    bar = progress.progress(4, "stage-1 tiny", unit="step")
    for _ in range(4):
        bar.update()
        bar.set_postfix({"train_loss": 0.5})
    bar.close()
    logging.getLogger("benchmarks.grid").warning("something odd")
    grid.update(2)
    grid.close()


def test_without_a_terminal_progress_is_plain_timestamped_lines(monkeypatch):
    stream = io.StringIO()
    drive(monkeypatch, stream)
    text = stream.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert lines and all(STAMP.match(line) for line in lines), text
    assert any("[digits/tiny/seed0 impactx] stage-1 tiny: 2/4 step (50%)" in line and "ETA" in line
               for line in lines), text
    assert any("stage-1 tiny: 4/4 step (100%)" in line and "done" in line for line in lines), text
    assert any("grid: 2/2 cell" in line and "running digits/tiny/seed0 impactx" in line for line in lines), text
    assert any("WARNING benchmarks.grid: something odd" in line for line in lines), text


def test_on_a_terminal_each_level_is_a_bar_and_messages_go_above_them(monkeypatch):
    stream = FakeTerminal()
    drive(monkeypatch, stream)
    text = stream.getvalue()
    assert "\r" in text  # tqdm redraws in place
    assert "stage-1 tiny" in text and "grid" in text and "running digits/tiny/seed0 impactx" in text
    assert "4/4" in text and "<" in text  # counts and tqdm's elapsed<remaining (ETA)
    assert "WARNING benchmarks.grid: something odd" in text
    assert "step (50%)" not in text  # the plain lines are not duplicated on a terminal: the bars show them


def test_progress_lines_are_throttled(monkeypatch):
    stream = io.StringIO()
    drive(monkeypatch, stream, interval=3600.0)
    stage = [line for line in stream.getvalue().splitlines() if "stage-1 tiny" in line]
    assert len(stage) == 1 and "done" in stage[0]  # only the closing line within the interval


@pytest.fixture
def failing_plugin(tmp_path, monkeypatch):
    (tmp_path / "failing_plugin_logs.py").write_text(
        "from methods import register_method\n"
        "from methods.baseline import Baseline\n"
        "@register_method('fails-deep')\n"
        "class FailsDeep(Baseline):\n"
        "    '''Raises during training.'''\n"
        "    def fit(self, ctx):\n"
        "        def innermost():\n"
        "            raise FloatingPointError('loss is NaN')\n"
        "        innermost()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield ["--plugin", "failing_plugin_logs"]
    _METHODS.pop("fails-deep", None)
    sys.modules.pop("failing_plugin_logs", None)


def test_a_failed_cell_has_a_log_with_its_config_and_traceback_and_the_row_names_it(tmp_path, capsys,
                                                                                      failing_plugin):
    out = tmp_path / "run"
    code = main(["--out", str(out), *FAST_WITH_PROGRESS, *failing_plugin, "--methods", "fails-deep,baseline",
                 "--datasets", "digits"])
    captured = capsys.readouterr()
    assert code == 1
    name = "logs/digits_tiny_seed0_fails-deep.log"
    cell_log = (out / name).read_text()
    assert '"method": "fails-deep"' in cell_log and '"epochs": 1' in cell_log  # its resolved config
    assert "Traceback (most recent call last)" in cell_log and "in innermost" in cell_log
    assert "FloatingPointError: loss is NaN" in cell_log
    ok_log = (out / "logs/digits_tiny_seed0_baseline.log").read_text()
    assert "stage-1 tiny: 3/3 step" in ok_log and "epoch 1/1" in ok_log and "Traceback" not in ok_log
    rows = pd.read_csv(out / "rows.csv")
    assert rows.loc[rows.method == "fails-deep", "error"].str.contains(name, regex=False).all()
    assert name in captured.err and "fails-deep / tiny / digits / seed 0" in captured.err
    # no terminal here: plain timestamped lines, no carriage returns or escape codes, and no traceback
    assert "\r" not in captured.err and "\x1b" not in captured.err and "Traceback" not in captured.err
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d .*grid: 2/2 cell", captured.err, re.M), captured.err
    run_log = (out / "run.log").read_text()
    assert "grid: 2/2 cell" in run_log and "cell(s) failed" in run_log and name in run_log
    assert "rows ->" in run_log  # what the console showed


def test_quiet_shows_errors_and_the_summary_only_and_verbose_shows_debug(tmp_path, capsys, failing_plugin):
    code = main(["--out", str(tmp_path / "q"), *FAST_WITH_PROGRESS, *failing_plugin, "--methods", "fails-deep",
                 "--datasets", "digits", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert " cell (" not in captured.err and "stage-1" not in captured.err  # no progress lines
    assert "fails-deep / tiny / digits / seed 0" in captured.err  # the summary
    assert "ERROR" in captured.err  # the failure as it happened
    code = main(["--out", str(tmp_path / "v"), *FAST, "--methods", "baseline", "--datasets", "digits",
                 "--verbose"])
    captured = capsys.readouterr()
    assert code == 0
    assert "DEBUG core.artifacts" in captured.err
    assert "DEBUG" in (tmp_path / "v" / "run.log").read_text()


def test_no_progress_keeps_the_console_free_of_progress_but_the_logs_get_it(tmp_path, capsys):
    out = tmp_path / "np"
    assert main(["--out", str(out), *FAST, "--methods", "baseline", "--datasets", "digits"]) == 0  # --no-progress
    err = capsys.readouterr().err
    assert "stage-1 tiny" not in err and "grid: " not in err
    assert "stage-1 tiny: 3/3 step" in (out / "run.log").read_text()
