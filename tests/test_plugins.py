"""Plugins by entry point (group impactx_bench.plugins), loaded without --plugin (issue 13 item 7)."""
from __future__ import annotations

import importlib.metadata
import logging
import sys

import pytest

from benchmarks import plugins
from benchmarks.run import build_parser, config_from_args, main
from methods.registry import _METHODS

MODULE = '''
from methods import register_method
from methods.baseline import Baseline

@register_method("{name}")
class Demo(Baseline):
    """A method from an installed plugin package."""
'''


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Two fake installed plugins (a module and a register function) and a broken one, as entry points."""
    (tmp_path / "ep_demo_module.py").write_text(MODULE.format(name="ep-demo"))
    (tmp_path / "ep_demo_function.py").write_text(
        "def register():\n" + "\n".join("    " + line for line in MODULE.format(name="ep-demo-fn").splitlines()))
    monkeypatch.syspath_prepend(str(tmp_path))
    entries = [importlib.metadata.EntryPoint("demo", "ep_demo_module", plugins.GROUP),
               importlib.metadata.EntryPoint("demo-fn", "ep_demo_function:register", plugins.GROUP),
               importlib.metadata.EntryPoint("broken", "ep_no_such_module", plugins.GROUP)]
    asked = []

    def entry_points(**selection):
        asked.append(selection)
        return [e for e in entries if e.group == selection.get("group")]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(plugins, "_loaded", {})
    yield asked
    for name in ("ep-demo", "ep-demo-fn"):
        _METHODS.pop(name, None)
    for module in ("ep_demo_module", "ep_demo_function"):
        sys.modules.pop(module, None)


def test_installed_plugins_are_listed_without_the_plugin_flag(installed, capsys, caplog):
    with caplog.at_level(logging.WARNING):
        assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "ep-demo " in out and "A method from an installed plugin package." in out and "ep-demo-fn" in out
    assert installed == [{"group": "impactx_bench.plugins"}]
    assert any("'broken'" in r.getMessage() and "ep_no_such_module" in r.getMessage() for r in caplog.records)


def test_installed_plugins_are_usable_in_a_run_and_loaded_once(installed):
    cfg = config_from_args(build_parser().parse_args(["--methods", "ep-demo,ep-demo-fn,baseline"]))
    from benchmarks.grid import plan

    assert plan(cfg)[0].methods == ("ep-demo", "ep-demo-fn", "baseline")
    assert plugins.load_installed_plugins() == []  # already loaded: register() is not called twice
    assert plugins._loaded["ep_demo_function:register"] == "ok"


def test_without_installed_plugins_their_methods_are_unknown(capsys, monkeypatch):
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **selection: [])
    assert main(["--methods", "ep-demo", "--dry-run"]) == 2
    assert "unknown method 'ep-demo'" in capsys.readouterr().err
