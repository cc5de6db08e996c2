"""The method registry, timm style: ``@register_method("name")`` on a :class:`methods.base.Method` subclass."""
from __future__ import annotations

import importlib
from typing import Any, Callable, TypeVar

from core.registry import Registry, UnknownNameError, unknown_name

T = TypeVar("T", bound=type)

__all__ = ["METHODS", "Registry", "UnknownNameError", "create_method", "get_method_class", "list_methods",
           "load_plugin", "register_method", "unknown_name"]

METHODS: Registry[type] = Registry("method", ("methods.baseline", "methods.impactx", "methods.abn", "methods.wae"))
_METHODS = METHODS.entries  # the raw table (tests remove the plugins they register)


def register_method(name: str) -> Callable[[T], T]:
    """Class decorator that registers a :class:`methods.base.Method` subclass under ``name``."""
    return METHODS.register(name)


def list_methods(pattern: str = "*") -> list[str]:
    """Registered method names matching an fnmatch pattern, sorted."""
    return METHODS.names(pattern)


def get_method_class(name: str) -> type:
    return METHODS.get(name)


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
