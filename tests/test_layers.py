"""The packages are layers and imports run one way: core <- datasets <- methods <- benchmarks.

Walks every module's imports with ``ast`` (nothing is imported), so a violation fails here whether or not some
test happens to execute the offending line.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"core": 0, "datasets": 1, "methods": 2, "benchmarks": 3}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported project module, line, at module level?) for every import of a project module in ``path``;
    imports under ``if TYPE_CHECKING:`` are skipped (annotations only, never executed)."""
    found: list[tuple[str, int, bool]] = []
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + [base]).strip(".")
                names = [base]
            for name in names:
                if name.split(".")[0] in LAYERS:
                    found.append((name, child.lineno, top))
            nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))
            visit(child, top and not nested)

    visit(ast.parse(path.read_text()), True)
    return found


MODULES = {module_name(p): p for layer in LAYERS for p in sorted((ROOT / layer).rglob("*.py"))}


def test_the_walk_sees_every_package():
    assert {m.split(".")[0] for m in MODULES} == set(LAYERS)
    assert "methods.engine" in MODULES and "core.artifacts" in MODULES


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_and_sit_at_module_level(module):
    layer = LAYERS[module.split(".")[0]]
    for target, line, top in project_imports(MODULES[module]):
        assert LAYERS[target.split(".")[0]] <= layer, (
            f"{module}:{line} imports {target}, a layer above it ({' <- '.join(LAYERS)})")
        assert top, (f"{module}:{line} imports {target} inside a function or class; project imports belong at the "
                     "top of the module (an import hidden in a function usually dodges a cycle)")


def test_no_import_cycles():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, _, _ in project_imports(path):
            while target and target not in MODULES:  # "from methods.explainers import x" -> the package module
                target = target.rpartition(".")[0]
            if target and target != module:
                graph[module].add(target)
    state: dict[str, int] = {}

    def walk(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                walk(nxt, trail + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [module])


def test_a_method_plugin_needs_only_the_methods_package():
    """The plugin example of the docs imports from ``methods`` only, and ``methods`` exports what it uses."""
    import methods

    plugin = ROOT / "docs" / "examples" / "my_method.py"
    imported = project_imports(plugin)
    assert imported and {name.split(".")[0] for name, _, _ in imported} == {"methods"}
    tree = ast.parse(plugin.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "methods":
            for alias in node.names:
                assert hasattr(methods, alias.name), f"methods does not export {alias.name}"


def test_the_plugin_example_runs_as_a_plugin(tmp_path, monkeypatch):
    import pandas as pd

    from benchmarks.run import main
    from methods.registry import _METHODS

    monkeypatch.syspath_prepend(str(ROOT / "docs" / "examples"))
    monkeypatch.delitem(sys.modules, "my_method", raising=False)
    try:
        assert main(["--out", str(tmp_path / "run"), "--plugin", "my_method", "--methods", "my-method",
                     "--backbones", "tiny", "--datasets", "digits", "--no-progress", "--no-explain-eval",
                     "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2", "--set", "limit_train=100",
                     "--set", "limit_test=20", "--set", "method.my-method.smoothing=0.2"]) == 0
    finally:
        _METHODS.pop("my-method", None)
    rows = pd.read_csv(tmp_path / "run" / "rows.csv")
    accuracy = rows[(rows.method == "my-method") & (rows.metric == "accuracy")]
    assert len(accuracy) == 1 and accuracy["error"].isna().all() and 0 <= accuracy["value"].iloc[0] <= 100
