"""The run configuration: one frozen dataclass built once at the CLI boundary, plus ``--set key=value`` overrides.

Valid ``--set`` keys (unknown keys are rejected with the list of valid ones):
``train.<field>`` (engine: epochs, batch_size, lr, optimizer, val_fraction, augment, ...),
``teacher.explainer``, ``teacher.batch_images``, ``teacher.options.<explainer option>``,
``method.<method name>.<option>``, ``input_size.<backbone>``, ``morf.<option>``, and the top-level fields
``limit_train``, ``limit_test``, ``explanation_images``, ``weights_path``, ``explain_eval``; grids searched on
validation accuracy: ``tune.stage1.<train field>=[...]`` and ``tune.method.<method>.<option>=[...]``.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any

from benchmarks.context import TeacherConfig
from benchmarks.engine import TrainConfig


class ConfigError(ValueError):
    """A bad setting; the message says which keys or values are valid."""


@dataclass(frozen=True)
class RunConfig:
    profile: str = "smoke"
    methods: tuple[str, ...] = ()
    backbones: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    device: str = "cpu"
    out: str = "results/runs/smoke"
    cache_dir: str | None = None  # artifacts (models, maps); default <out>/artifacts
    data_root: str = "data"
    download: bool = False
    pretrained: bool | None = None  # None: each backbone's default (LeNet-5 from scratch, timm nets pretrained)
    weights_path: str | None = None
    executor: str = "local"
    address: str | None = None
    plugins: tuple[str, ...] = ()
    train: TrainConfig = field(default_factory=TrainConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    input_size: dict[str, int] = field(default_factory=dict)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    limit_train: int | None = None
    limit_test: int | None = None
    explain_eval: bool = True
    explanation_images: int = 64
    morf: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    stage1_grid: dict[str, tuple] = field(default_factory=dict)  # paper Table 1 search for the stage-1 model
    method_grid: dict[str, dict[str, tuple]] = field(default_factory=dict)  # e.g. {"impactx": {"lam": (...)}}

    def artifacts_root(self) -> str:
        return self.cache_dir or f"{self.out}/artifacts"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


TOP_LEVEL_SETTABLE = ("limit_train", "limit_test", "explanation_images", "weights_path", "explain_eval")


def parse_value(text: str) -> Any:
    """``3`` -> 3, ``0.1`` -> 0.1, ``true`` -> True, ``none`` -> None, ``[1,2]`` -> [1, 2], else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _coerce(key: str, value: Any, annotation: Any, default: Any) -> Any:
    kind = type(default) if default is not None else None
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"--set {key}: expected true/false, got {value!r}")
    if kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise ConfigError(f"--set {key}: expected an integer, got {value!r}")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"--set {key}: expected a number, got {value!r}")
        return float(value)
    if kind is str and not isinstance(value, str):
        return str(value)
    return value


def apply_settings(cfg: RunConfig, settings: list[str | tuple[str, Any]]) -> RunConfig:
    """Apply ``key=value`` strings (or ``(key, value)`` pairs with typed values, as a ``--config`` file gives) to
    ``cfg``; unknown keys or ill-typed values raise :class:`ConfigError`."""
    from methods.explainers.base import create_explainer  # noqa: F401  (registers explainers)
    from methods.registry import get_method_class, list_methods

    train = dataclasses.asdict(cfg.train)
    teacher = dataclasses.asdict(cfg.teacher)
    top: dict[str, Any] = {}
    input_size = dict(cfg.input_size)
    method_options = {k: dict(v) for k, v in cfg.method_options.items()}
    morf = dict(cfg.morf)
    stage1_grid = dict(cfg.stage1_grid)
    method_grid = {k: dict(v) for k, v in cfg.method_grid.items()}
    train_defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for item in settings:
        if isinstance(item, tuple):
            key, value = item
        elif "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        else:
            key, raw = item.split("=", 1)
            key, value = key.strip(), parse_value(raw)
        head, _, rest = key.partition(".")
        if head == "train" and rest in train_defaults:
            train[rest] = _coerce(key, value, None, train_defaults[rest])
        elif key in ("teacher.explainer", "teacher.batch_images"):
            teacher[rest] = _coerce(key, value, None, getattr(TeacherConfig(), rest))
            if rest == "explainer" and value != cfg.teacher.explainer:
                teacher["options"] = {}  # the profile's options belong to the profile's explainer
        elif head == "teacher" and rest.startswith("options."):
            teacher["options"] = {**teacher["options"], rest[len("options."):]: value}
        elif head == "method" and rest.count(".") == 1:
            name, option = rest.split(".")
            if name not in list_methods():
                raise ConfigError(f"--set {key}: unknown method {name!r}; valid: {', '.join(list_methods())}")
            valid = get_method_class(name).option_names()
            if option not in valid:
                raise ConfigError(f"--set {key}: method {name!r} has no option {option!r}; "
                                  f"valid: {', '.join(sorted(valid)) or '(none)'}")
            method_options.setdefault(name, {})[option] = value
        elif head == "input_size" and rest:
            input_size[rest] = _coerce(key, value, None, 0)
        elif head == "morf" and rest:
            morf[rest] = value
        elif head == "tune" and rest.startswith("stage1.") and rest[7:] in train_defaults:
            stage1_grid[rest[7:]] = _grid(key, value)
        elif head == "tune" and rest.startswith("method.") and rest.count(".") == 2:
            _, name, option = rest.split(".")
            if name not in list_methods() or option not in get_method_class(name).option_names():
                raise ConfigError(f"--set {key}: no method {name!r} with option {option!r}")
            method_grid.setdefault(name, {})[option] = _grid(key, value)
        elif key in TOP_LEVEL_SETTABLE:
            top[key] = value
        else:
            valid = ([f"train.{k}" for k in train_defaults] + ["teacher.explainer", "teacher.batch_images",
                     "teacher.options.<option>", "method.<method>.<option>", "input_size.<backbone>",
                     "morf.<option>", "tune.stage1.<train field>=[values]",
                     "tune.method.<method>.<option>=[values]"] + list(TOP_LEVEL_SETTABLE))
            raise ConfigError(f"--set: unknown key {key!r}. Valid keys: {', '.join(valid)}")
    try:
        new_train = TrainConfig(**train)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    _check_teacher(teacher)
    return dataclasses.replace(cfg, train=new_train, teacher=TeacherConfig(**teacher), input_size=input_size,
                               method_options=method_options, morf=morf, stage1_grid=stage1_grid,
                               method_grid=method_grid, **top)


def _grid(key: str, value: Any) -> tuple:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"--set {key}: expected a non-empty list like [0.2,0.4], got {value!r}")
    return tuple(value)


def _check_teacher(teacher: dict[str, Any]) -> None:
    from methods.explainers.base import EXPLAINERS, list_explainers

    names = list_explainers()
    if teacher["explainer"] not in names:
        raise ConfigError(f"teacher.explainer: unknown explainer {teacher['explainer']!r}; valid: {', '.join(names)}")
    params = inspect.signature(EXPLAINERS.get(teacher["explainer"]).__init__).parameters
    bad = sorted(set(teacher["options"]) - set(params) - {"self"})
    if bad:
        raise ConfigError(f"teacher.options: explainer {teacher['explainer']!r} has no option(s) {bad}; valid: "
                          f"{', '.join(p for p in params if p != 'self')}")
