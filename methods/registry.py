"""Method registry, timm style: ``@register_method("name")`` on a class, strict about duplicates."""
from __future__ import annotations

import fnmatch
import importlib
from typing import Any, Callable, TypeVar

_METHODS: dict[str, type] = {}
T = TypeVar("T", bound=type)


class UnknownNameError(KeyError):
    """An unknown registry name; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def unknown_name(kind: str, name: str, valid: list[str]) -> UnknownNameError:
    return UnknownNameError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(valid)) or '(none)'}")


def register_method(name: str) -> Callable[[T], T]:
    """Class decorator that registers a :class:`methods.base.Method` subclass under ``name``."""

    def decorator(cls: T) -> T:
        if name in _METHODS:
            raise ValueError(f"method {name!r} is already registered (by {_METHODS[name].__module__})")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return decorator


def list_methods(pattern: str = "*") -> list[str]:
    """Registered method names matching an fnmatch pattern, sorted."""
    _import_builtin_methods()
    return sorted(n for n in _METHODS if fnmatch.fnmatchcase(n, pattern))


def get_method_class(name: str) -> type:
    _import_builtin_methods()
    if name not in _METHODS:
        raise unknown_name("method", name, list(_METHODS))
    return _METHODS[name]


def create_method(name: str, backbone: str, num_classes: int, **cfg: Any):
    """Instantiate a registered method on a backbone (see :mod:`methods.backbones`)."""
    return get_method_class(name)(backbone=backbone, num_classes=num_classes, **cfg)


def load_plugin(module: str) -> None:
    """Import an outside module whose import registers more methods (``--plugin my_pkg.my_method``)."""
    try:
        importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"could not import plugin module {module!r}: {err}. "
                          "Is it installed or on PYTHONPATH?") from err


_BUILTIN_MODULES = ("methods.baseline", "methods.impactx", "methods.abn", "methods.wae")


def _import_builtin_methods() -> None:
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:
            if err.name != mod:  # a real import error inside the module, not a method not written yet
                raise
