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

from methods.context import TeacherConfig
from methods.engine import TrainConfig
from methods.explainers.base import EXPLAINERS, list_explainers
from methods.registry import get_method_class, list_methods


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


def parse_setting(item: str | tuple[str, Any]) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, typed value)`` (see :func:`parse_value`); a ``(key, value)`` pair passes through.
    The one parser of settings: ``--set`` of every entry point and the keys of a ``--config`` file."""
    if isinstance(item, tuple):
        return item
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {item!r}")
    key, raw = item.split("=", 1)
    return key.strip(), parse_value(raw)


@dataclass
class _Draft:
    """The parts of a :class:`RunConfig` that settings change, mutable while they apply."""

    cfg: RunConfig
    train: dict[str, Any]
    teacher: dict[str, Any]
    top: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.input_size = dict(self.cfg.input_size)
        self.method_options = {k: dict(v) for k, v in self.cfg.method_options.items()}
        self.morf = dict(self.cfg.morf)
        self.stage1_grid = dict(self.cfg.stage1_grid)
        self.method_grid = {k: dict(v) for k, v in self.cfg.method_grid.items()}


TRAIN_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def _set_train(draft: _Draft, key: str, rest: str, value: Any) -> bool:
    if rest not in TRAIN_DEFAULTS:
        return False
    draft.train[rest] = _coerce(key, value, None, TRAIN_DEFAULTS[rest])
    return True


def _set_teacher(draft: _Draft, key: str, rest: str, value: Any) -> bool:
    if rest in ("explainer", "batch_images"):
        draft.teacher[rest] = _coerce(key, value, None, getattr(TeacherConfig(), rest))
        if rest == "explainer" and value != draft.cfg.teacher.explainer:
            draft.teacher["options"] = {}  # the profile's options belong to the profile's explainer
        return True
    if rest.startswith("options.") and len(rest) > len("options."):
        draft.teacher["options"] = {**draft.teacher["options"], rest[len("options."):]: value}
        return True
    return False


def _set_method(draft: _Draft, key: str, rest: str, value: Any) -> bool:
    if rest.count(".") != 1:
        return False
    name, option = rest.split(".")
    _check_method_option(key, name, option)
    draft.method_options.setdefault(name, {})[option] = value
    return True


def _set_input_size(draft: _Draft, key: str, rest: str, value: Any) -> bool:
    if not rest:
        return False
    draft.input_size[rest] = _coerce(key, value, None, 0)
    return True


def _set_morf(draft: _Draft, key: str, rest: str, value: Any) -> bool:
    if not rest:
        return False
    draft.morf[rest] = value
    return True


def _set_tune(draft: _Draft, key: str, rest: str, value: Any) -> bool:
    if rest.startswith("stage1.") and rest[len("stage1."):] in TRAIN_DEFAULTS:
        draft.stage1_grid[rest[len("stage1."):]] = _grid(key, value)
        return True
    if rest.startswith("method.") and rest.count(".") == 2:
        _, name, option = rest.split(".")
        _check_method_option(key, name, option)
        draft.method_grid.setdefault(name, {})[option] = _grid(key, value)
        return True
    return False


#: one handler per key prefix; each returns False for a key it does not know
HANDLERS = {"train": _set_train, "teacher": _set_teacher, "method": _set_method, "input_size": _set_input_size,
            "morf": _set_morf, "tune": _set_tune}
VALID_KEYS = ([f"train.{k}" for k in TRAIN_DEFAULTS] + ["teacher.explainer", "teacher.batch_images",
              "teacher.options.<option>", "method.<method>.<option>", "input_size.<backbone>", "morf.<option>",
              "tune.stage1.<train field>=[values]", "tune.method.<method>.<option>=[values]"]
              + list(TOP_LEVEL_SETTABLE))


def _check_method_option(key: str, name: str, option: str) -> None:
    if name not in list_methods():
        raise ConfigError(f"--set {key}: unknown method {name!r}; valid: {', '.join(list_methods())}")
    valid = get_method_class(name).option_names()
    if option not in valid:
        raise ConfigError(f"--set {key}: method {name!r} has no option {option!r}; "
                          f"valid: {', '.join(sorted(valid)) or '(none)'}")


def apply_settings(cfg: RunConfig, settings: list[str | tuple[str, Any]]) -> RunConfig:
    """Apply ``key=value`` strings (or ``(key, value)`` pairs with typed values, as a ``--config`` file gives) to
    ``cfg``; unknown keys or ill-typed values raise :class:`ConfigError`."""
    draft = _Draft(cfg, dataclasses.asdict(cfg.train), dataclasses.asdict(cfg.teacher))
    for item in settings:
        key, value = parse_setting(item)
        head, _, rest = key.partition(".")
        if key in TOP_LEVEL_SETTABLE:
            draft.top[key] = value
        elif not (head in HANDLERS and HANDLERS[head](draft, key, rest, value)):
            raise ConfigError(f"--set: unknown key {key!r}. Valid keys: {', '.join(VALID_KEYS)}")
    try:
        new_train = TrainConfig(**draft.train)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    _check_teacher(draft.teacher)
    return dataclasses.replace(cfg, train=new_train, teacher=TeacherConfig(**draft.teacher),
                               input_size=draft.input_size, method_options=draft.method_options, morf=draft.morf,
                               stage1_grid=draft.stage1_grid, method_grid=draft.method_grid, **draft.top)


def _grid(key: str, value: Any) -> tuple:
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"--set {key}: expected a non-empty list like [0.2,0.4], got {value!r}")
    return tuple(value)


def _check_teacher(teacher: dict[str, Any]) -> None:
    names = list_explainers()
    if teacher["explainer"] not in names:
        raise ConfigError(f"teacher.explainer: unknown explainer {teacher['explainer']!r}; valid: {', '.join(names)}")
    params = inspect.signature(EXPLAINERS.get(teacher["explainer"]).__init__).parameters
    bad = sorted(set(teacher["options"]) - set(params) - {"self"})
    if bad:
        raise ConfigError(f"teacher.options: explainer {teacher['explainer']!r} has no option(s) {bad}; valid: "
                          f"{', '.join(p for p in params if p != 'self')}")
