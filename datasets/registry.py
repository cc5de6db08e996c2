"""Dataset registry: ``load_dataset("cifar10" | "imagefolder:<path>" | "digits" | "synthetic" | ...)``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from datasets.base import DataBundle
from core.registry import Registry, unknown_name


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    load: Callable[..., DataBundle]
    embedded: bool  # ships with the suite / its dependencies: works offline, no download
    description: str


DATASETS: Registry[DatasetSpec] = Registry("dataset", ("datasets.embedded", "datasets.folder",
                                                      "datasets.torchvision_sets"))


def register_dataset(name: str, embedded: bool, description: str):
    """Registers a loader ``fn(root=, download=, seed=) -> DataBundle``; a name ending in ``:`` takes an argument
    (``imagefolder:<path>``)."""

    def decorator(fn: Callable[..., DataBundle]) -> Callable[..., DataBundle]:
        DATASETS.add(name, DatasetSpec(name, fn, embedded, description))
        return fn

    return decorator


def list_datasets(pattern: str = "*") -> list[str]:
    return DATASETS.names(pattern)


def dataset_spec(name: str) -> DatasetSpec:
    base = name.split(":", 1)[0] + ":" if ":" in name else name
    if base not in DATASETS:
        raise unknown_name("dataset", name, DATASETS.names())
    return DATASETS.get(base)


def load_dataset(name: str, root: str = "data", download: bool = False, device: str | torch.device = "cpu",
                 seed: int = 0) -> DataBundle:
    """Load a dataset fully into memory as uint8 tensors on ``device``.

    ``name`` is a registered name or ``imagefolder:<path>`` (a ``train/<class>/*`` + ``test/<class>/*`` tree, or
    a .tar.gz of one). Torchvision datasets missing from ``root`` raise :class:`DatasetUnavailable` unless
    ``download`` is set. ``seed`` only matters for generated datasets.
    """
    spec = dataset_spec(name)
    arg = name.split(":", 1)[1] if name.endswith(":") is False and ":" in name else None
    kwargs = {"root": root, "download": download, "seed": seed}
    bundle = spec.load(arg, **kwargs) if ":" in spec.name else spec.load(**kwargs)
    return bundle.to(device)
