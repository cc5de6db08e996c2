"""Settings files: ``--config run.toml`` reads them, every run writes its own as ``<out>/resolved.toml``.

A file holds the keys of ``--set`` (``train.epochs``, ``teacher.options.max_evals``, ``method.impactx.lam``, ...)
and the run keys that flags set (``profile``, ``methods``, ``backbones``, ``datasets``, ``seeds``, ``device``,
``data_root``, ``download``, ``pretrained``, ``cache_dir``, ``out``, ``executor``, ``address``, ``plugins``,
``no_tune``). Keys are flat (``"train.epochs" = 1``) or TOML tables that flatten to the same dotted keys::

    profile = "smoke"
    methods = ["baseline", "impactx"]
    seeds = [0, 1, 2]

    [train]
    epochs = 20

    [method.impactx]
    lam = 0.4

Order of precedence: the profile's preset < the file < flags (``--set`` included). TOML has no null: write
``"none"``. ``resolved.toml`` lists every setting of a run explicitly (the planned names, not globs), so
``--config <out>/resolved.toml --out NEW`` reruns it; it leaves out ``out`` and ``cache_dir`` (choose them).
"""
from __future__ import annotations

import json
import re
import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.config import ConfigError, RunConfig
from benchmarks.profiles import PROFILES
from core.artifacts import atomic_write_bytes

RUN_KEYS: dict[str, type | tuple[type, ...]] = {
    "profile": str, "methods": (list, str), "backbones": (list, str), "datasets": (list, str), "seeds": (list, str),
    "device": str, "data_root": str, "download": bool, "pretrained": bool, "cache_dir": str, "out": str,
    "executor": str, "address": str, "plugins": (list, str), "no_tune": bool,
}
RESOLVED_FILE = "resolved.toml"
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _depth(parts: list[str]) -> int:
    """How many dotted parts a full key starting with ``parts`` has (``method.<name>.<option>``: 3)."""
    head = parts[0]
    if head == "method":
        return 3
    if head == "teacher":
        return 3 if len(parts) > 1 and parts[1] == "options" else 2
    if head == "tune":
        if len(parts) < 2:
            return 3
        return {"stage1": 3, "method": 4}.get(parts[1], 2)
    if head in ("train", "input_size", "morf"):
        return 2
    return 1


def flatten(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """Nested TOML tables -> ``(dotted key, value)`` pairs, stopping where a setting's value may itself be a table
    (``method.wae-shap.explainer_options = {max_evals = 100}`` stays one setting)."""
    pairs: list[tuple[str, Any]] = []
    for name, value in table.items():
        parts = [*prefix, *name.split(".")] if not prefix else [*prefix, name]
        if isinstance(value, dict) and len(parts) < _depth(parts):
            pairs += flatten(value, tuple(parts))
        else:
            pairs.append((".".join(parts), _none(value)))
    return pairs


def _none(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("none", "null"):
        return None
    if isinstance(value, dict):
        return {k: _none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_none(v) for v in value]
    return value


def load_config_file(path: str | Path) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """``(run keys, --set pairs)`` of a settings file; :class:`ConfigError` naming the file on any problem."""
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"--config {path}: cannot read it ({err})") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"--config {path}: not valid TOML ({err})") from err
    run: dict[str, Any] = {}
    settings: list[tuple[str, Any]] = []
    for key, value in flatten(table):
        if key in RUN_KEYS:
            expected = RUN_KEYS[key]
            if value is not None and not isinstance(value, expected):
                raise ConfigError(f"--config {path}: {key} = {value!r} has the wrong type (expected "
                                  f"{_type_name(expected)})")
            run[key] = value
        else:
            settings.append((key, value))
    return run, settings


def _type_name(expected: type | tuple[type, ...]) -> str:
    kinds = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join({"list": "a list", "str": "a string", "bool": "true/false"}.get(k.__name__, k.__name__)
                       for k in kinds)


def names(value: Any) -> tuple[str, ...] | None:
    """A run key's list: a TOML array or a comma string -> names."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    return tuple(str(v).strip() for v in items if str(v).strip())


# ------------------------------------------------------------------------------------------------- writing


def resolved_settings(cfg: RunConfig, preset: dict[str, Any], methods: list[str], backbones: list[str],
                      datasets: list[str], device: str) -> dict[str, Any]:
    """Every setting of a run as flat keys, in an order that reads back to the same config."""
    flat: dict[str, Any] = {"profile": cfg.profile, "methods": list(methods), "backbones": list(backbones),
                            "datasets": list(datasets), "seeds": list(cfg.seeds), "device": device,
                            "data_root": cfg.data_root, "download": cfg.download}
    for key in ("pretrained", "weights_path", "address"):
        if getattr(cfg, key) is not None:
            flat[key] = getattr(cfg, key)
    flat.update(executor=cfg.executor, plugins=list(cfg.plugins))
    preset_grids = (preset.get("stage1_grid", {}), preset.get("method_grid", {}))
    flat["no_tune"] = (cfg.stage1_grid, cfg.method_grid) != preset_grids and any(preset_grids)
    for key in ("limit_train", "limit_test"):
        if getattr(cfg, key) is not None:
            flat[key] = getattr(cfg, key)
    flat.update(explanation_images=cfg.explanation_images, explain_eval=cfg.explain_eval)
    flat.update({f"train.{k}": v for k, v in asdict(cfg.train).items()})
    flat.update({"teacher.explainer": cfg.teacher.explainer, "teacher.batch_images": cfg.teacher.batch_images})
    flat.update({f"teacher.options.{k}": v for k, v in cfg.teacher.options.items()})
    for method, options in cfg.method_options.items():
        flat.update({f"method.{method}.{k}": v for k, v in options.items()})
    flat.update({f"input_size.{k}": v for k, v in cfg.input_size.items()})
    flat.update({f"morf.{k}": v for k, v in cfg.morf.items()})
    flat.update({f"tune.stage1.{k}": list(v) for k, v in cfg.stage1_grid.items()})
    for method, grid in cfg.method_grid.items():
        flat.update({f"tune.method.{method}.{k}": list(v) for k, v in grid.items()})
    return flat


def _key(part: str) -> str:
    return part if _BARE.match(part) else json.dumps(part)


def _value(value: Any) -> str:
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))


def dumps(flat: dict[str, Any], header: str = "") -> str:
    """Flat dotted keys -> TOML: top-level keys first, then one table per key prefix (``[method.impactx]``)."""
    lines = [f"# {line}" for line in header.splitlines()]
    sections: dict[tuple[str, ...], list[str]] = {}
    for key, value in flat.items():
        parts = key.split(".")
        depth = _depth(parts)
        section, leaf = tuple(parts[:depth - 1]), parts[depth - 1:]
        sections.setdefault(section, []).append(f"{'.'.join(_key(p) for p in leaf)} = {_value(value)}")
    for section, entries in sections.items():
        if section:
            lines += ["", "[" + ".".join(_key(p) for p in section) + "]"]
        lines += entries
    return "\n".join(lines) + "\n"


def write_resolved(out: Path, cfg: RunConfig, methods: list[str], backbones: list[str], datasets: list[str],
                   device: str) -> Path:
    """``<out>/resolved.toml``: the run's settings, to be read back with ``--config``."""

    flat = resolved_settings(cfg, PROFILES[cfg.profile](), methods, backbones, datasets, device)
    header = ("Resolved settings of this run (every value explicit). Rerun it with:\n"
              "  impactx-bench --config resolved.toml --out NEW_FOLDER\n"
              "Flags override the file; keys are those of --set plus the run keys (see benchmarks/config_file.py).")
    path = out / RESOLVED_FILE
    atomic_write_bytes(path, dumps(flat, header).encode())
    return path
