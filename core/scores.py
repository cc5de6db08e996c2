"""The score registry: every number a result row can carry is declared once, here or by the layer computing it.

A :class:`Score` has a name (the part of a row's metric before ``/``: ``aopc/own`` is score ``aopc``, source
``own``), a direction (``higher`` / ``lower`` is better, or ``info``), a kind that says which table it belongs to
(:data:`KINDS`) and, for explanation scores, the function that computes it per image. Tables, their headers with
arrows, the paired tests and the explanation table select scores by kind; adding one is one decorated function::

    @register_score("insertion_gap", HIGHER, "explanation", "...")
    def insertion_gap(inputs: ScoreInputs) -> torch.Tensor | None:
        return ...  # one value per image, or None where the score does not apply

:func:`registry_fingerprint` hashes the registered scores and the code of the functions that compute them; the
runner folds it into the cache key of finished cells, so a new or changed score never reuses stale rows.
"""
from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from core.registry import Registry

HIGHER, LOWER, INFO = "higher", "lower", "info"
#: which table a score goes to: Table 2 and its paired tests (accuracy), model selection (validation), the
#: explanation table, the map-fidelity
#: table, training budgets, costs (wall time; never compared for equality) and plain facts
KINDS = ("accuracy", "validation", "explanation", "map_fidelity", "budget", "cost", "info")


@dataclass(frozen=True)
class ScoreInputs:
    """What an explanation score sees for one map source on a batch of test images (one value per image out)."""

    curves: torch.Tensor  # MoRF curves of this source's maps [B, L+1]
    random_curves: torch.Tensor | None = None  # the random region order's curves, same noise [B, L+1]
    maps: torch.Tensor | None = None  # the maps [B, C, H, W]
    masks: torch.Tensor | None = None  # ground-truth relevance masks [B, H, W] (synthetic data only)
    source: str = "own"  # whose map: own, a post-hoc explainer, random, constant
    control_curves: torch.Tensor | None = None  # curves of the constant control map (the mean teacher map)


@dataclass(frozen=True)
class Score:
    name: str
    direction: str
    kind: str
    description: str
    compute: Callable[[ScoreInputs], torch.Tensor | None] | None = None
    parts: tuple[str, ...] = field(default=())  # display order of composite names (``map_mse/<part>``)

    def __post_init__(self) -> None:
        if self.direction not in (HIGHER, LOWER, INFO):
            raise ValueError(f"score {self.name!r}: direction must be higher, lower or info, got {self.direction!r}")
        if self.kind not in KINDS:
            raise ValueError(f"score {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")


SCORES: Registry[Score] = Registry("score")


def declare_score(name: str, direction: str, kind: str, description: str,
                  compute: Callable[[ScoreInputs], torch.Tensor | None] | None = None,
                  parts: tuple[str, ...] = ()) -> Score:
    """Register a score whose values some stage writes directly (accuracy, timings, map fidelity)."""
    return SCORES.add(name, Score(name, direction, kind, description, compute, parts))


def register_score(name: str, direction: str, kind: str, description: str) -> Callable:
    """Decorator: register the decorated function as the per-image computation of score ``name``."""

    def decorator(fn: Callable[[ScoreInputs], torch.Tensor | None]) -> Callable:
        declare_score(name, direction, kind, description, compute=fn)
        return fn

    return decorator


def lookup(metric: str) -> Score | None:
    """The score of a row's metric name (``aopc/own`` -> ``aopc``), or None when nothing declared it."""
    return SCORES.entries.get(metric.split("/", 1)[0])


def direction(metric: str) -> str:
    """Direction of a row's metric (``aopc/own`` -> that of ``aopc``); an undeclared score raises, naming the
    declared ones."""
    return SCORES.get(metric.split("/", 1)[0]).direction


def kind(metric: str) -> str:
    score = lookup(metric)
    return score.kind if score is not None else INFO


def names_of_kind(kind_: str) -> list[str]:
    """Declared score names of one kind, in declaration order (the order tables show them in)."""
    return [name for name, score in SCORES.entries.items() if score.kind == kind_]


def row(metric: str, value: float, **extra: Any) -> dict[str, Any]:
    """A result row for ``metric`` with the direction its score declares (``info`` for a fact nobody declared, such
    as a plugin method's own ``metrics``)."""
    score = lookup(metric)
    return {"metric": metric, "value": value, "direction": score.direction if score else INFO, **extra}


def _code_of(fn: Callable) -> str:
    """The function's code without docstrings and comments (editing prose does not invalidate caches)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError):  # pragma: no cover - no source (built-in, interactive)
        return getattr(fn, "__qualname__", repr(fn))
    for node in tree.body:  # the function's own name is not its code
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.name = "_"
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree)


def code_fingerprint(*functions: Callable) -> str:
    """A hash of the code (not the prose) of ``functions``."""
    return hashlib.sha256("\n".join(_code_of(f) for f in functions).encode()).hexdigest()[:16]


def registry_fingerprint() -> str:
    """A hash of every declared score (name, direction, kind, parts) and the code computing it."""
    h = hashlib.sha256()
    for name in sorted(SCORES.entries):
        s = SCORES.entries[name]
        h.update(f"{name}|{s.direction}|{s.kind}|{','.join(s.parts)}|".encode())
        if s.compute is not None:
            h.update(_code_of(s.compute).encode())
    return h.hexdigest()[:16]
