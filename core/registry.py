"""The name -> entry table every layer registers into (methods, explainers, datasets, backbones, ABN split points,
scores), timm style: strict about duplicates, and a failed lookup lists the valid names."""
from __future__ import annotations

import fnmatch
import importlib
from typing import Callable, Generic, TypeVar

T = TypeVar("T", bound=type)
V = TypeVar("V")


class UnknownNameError(KeyError):
    """An unknown registry name; the message lists the valid ones."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def unknown_name(kind: str, name: str, valid: list[str]) -> UnknownNameError:
    return UnknownNameError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(sorted(valid)) or '(none)'}")


class Registry(Generic[V]):
    """A strict name -> entry table (methods, explainers, datasets, backbones, ABN split points).

    A duplicate name is an error; a failed lookup lists the valid names; ``builtin_modules`` are imported on first
    use, so the suite's own entries are there without import-order tricks and plugins add theirs by importing.
    """

    def __init__(self, kind: str, builtin_modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.entries: dict[str, V] = {}
        self._builtin_modules = builtin_modules
        self._imported = not builtin_modules

    def add(self, name: str, entry: V) -> V:
        self._import_builtins()  # a plugin that reuses a built-in name fails here, not at some later import
        if name in self.entries:
            origin = getattr(self.entries[name], "__module__", None)
            raise ValueError(f"{self.kind} {name!r} is already registered" + (f" (by {origin})" if origin else ""))
        self.entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: registers the class under ``name`` and sets its ``name`` attribute."""

        def decorator(cls: T) -> T:
            self.add(name, cls)
            cls.name = name
            return cls

        return decorator

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching an fnmatch pattern, sorted."""
        self._import_builtins()
        return sorted(n for n in self.entries if fnmatch.fnmatchcase(n, pattern))

    def get(self, name: str, also_valid: tuple[str, ...] = ()) -> V:
        self._import_builtins()
        if name not in self.entries:
            raise unknown_name(self.kind, name, list(self.entries) + list(also_valid))
        return self.entries[name]

    def __contains__(self, name: object) -> bool:
        self._import_builtins()
        return name in self.entries

    def _import_builtins(self) -> None:
        if not self._imported:
            self._imported = True
            for module in self._builtin_modules:
                importlib.import_module(module)
