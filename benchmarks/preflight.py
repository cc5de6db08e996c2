"""Every user error stops the run before any training starts: exit 2, one short paragraph naming the fix.

Checked here, in this order, so that nothing is written before a mistake is found: the output and cache folders
are (or can become) writable directories; every backbone builds with its weights settings; every method accepts its
options (names, types from the constructor's annotations, and the constructor's own range checks), including every
candidate of a grid; the teacher explainer and MoRF options; grids have validation images to choose on; and every
non-embedded dataset loads (archives readable, image folders well-formed).
"""
from __future__ import annotations

import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Union

from benchmarks.config import ConfigError, RunConfig
from benchmarks.evaluate import MorfConfig, make_config
from benchmarks.grid import backbone_config
from datasets.registry import dataset_spec, load_dataset
from methods.base import Method
from methods.explainers import create_explainer
from methods.registry import create_method, get_method_class


def check_seeds(seeds: tuple[int, ...]) -> None:
    if not seeds:
        raise ConfigError("--seeds is empty; give at least one integer seed, e.g. --seeds 0,1,2")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
    if bad:
        raise ConfigError(f"--seeds must be integers >= 0, got {', '.join(map(str, bad))}")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"--seeds repeats {', '.join(map(str, repeated))}: a repeated seed would be counted as "
                          "another independent run in the statistics; give each seed once")


def check_writable_dir(path: str | Path, flag: str) -> None:
    """``path`` is a directory we can write (or can be created), else a :class:`ConfigError` naming the fix.

    Tried for real (a temporary folder made and removed in ``path`` or its nearest existing parent): file modes
    say nothing for root, and a read-only mount refuses everyone."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        what = "is a file" if existing == path else f"is inside {existing}, which is a file"
        raise ConfigError(f"{flag} {path} {what}, not a folder; choose a folder")
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".write-test-"))
    except OSError as err:
        raise ConfigError(f"{flag} {path} is not writable ({existing}: {err.strerror}); choose a folder you can "
                          "write") from err


def matches(value: Any, hint: Any) -> bool:
    """Does ``value`` fit the annotation ``hint``? (the simple types options use; anything else passes)"""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(matches(value, arg) for arg in typing.get_args(hint))
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    base = origin or hint
    return isinstance(value, base) if isinstance(base, type) else True


def option_hints(cls: type) -> dict[str, Any]:
    """The annotations of a method's constructor options, subclasses overriding their bases."""

    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in klass.__dict__ and issubclass(klass, Method) and klass is not Method:
            try:
                hints.update(typing.get_type_hints(klass.__dict__["__init__"]))
            except Exception:  # noqa: BLE001 - an annotation we cannot resolve is simply not type-checked
                pass
    hints.pop("return", None)
    return hints


def check_method_options(name: str, backbone: str, options: dict[str, Any]) -> None:
    """Build the method with these options (no training): unknown names, wrong types and out-of-range values are
    reported as ``--set method.<name>.<option>`` errors."""

    cls = get_method_class(name)
    hints = option_hints(cls)
    for option, value in options.items():
        if option in hints and not matches(value, hints[option]):
            hint = getattr(hints[option], "__name__", None) or str(hints[option]).replace("typing.", "")
            raise ConfigError(f"--set method.{name}.{option}={value!r}: expected {hint}")
    try:
        create_method(name, backbone, 10, **options)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"method {name!r} rejects its options {options}: {err}") from err


def preflight(cfg: RunConfig, groups, device) -> None:
    """Fail fast (exit 2) on anything that would stop the run later (see the module docstring)."""
    import itertools


    check_seeds(tuple(cfg.seeds))
    check_writable_dir(cfg.out, "--out")
    check_writable_dir(cfg.artifacts_root(), "--cache-dir")
    for name in dict.fromkeys(g.backbone for g in groups):
        try:
            backbone_config(cfg, name).build(num_classes=10, image_size=32)
        except ValueError as err:
            hint = " (weights_path applies to timm backbones only)" if cfg.weights_path else ""
            raise ConfigError(f"backbone {name!r}: {err}{hint}") from err
    for group in groups[:1] or []:
        for method in group.methods:
            grid = cfg.method_grid.get(method, {})
            names = sorted(grid)
            for values in itertools.product(*(grid[n] for n in names)):
                options = {**cfg.method_options.get(method, {}), **dict(zip(names, values))}
                check_method_options(method, group.backbone, options)
    if (cfg.stage1_grid or any(cfg.method_grid.get(m) for g in groups[:1] for m in g.methods)) \
            and cfg.train.val_fraction <= 0:
        raise ConfigError("a grid search chooses on validation accuracy, but train.val_fraction=0 leaves no "
                          "validation images; set train.val_fraction>0 or use --no-tune")
    try:
        create_explainer(cfg.teacher.explainer, **cfg.teacher.options)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"teacher explainer {cfg.teacher.explainer!r}: {err}") from err
    try:
        make_config(MorfConfig(), **cfg.morf)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"--set morf.*: {err}") from err
    for name in dict.fromkeys(g.dataset for g in groups):
        if not dataset_spec(name).embedded:
            load_dataset(name, root=cfg.data_root, download=cfg.download, device="cpu")
