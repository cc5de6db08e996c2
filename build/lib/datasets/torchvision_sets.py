"""CIFAR-10, CIFAR-100 and STL-10 through torchvision, standard train/test splits."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from datasets.base import DataBundle, DatasetUnavailable, Split
from datasets.registry import register_dataset

# Channel statistics of the training sets, [0, 1] units (the usual published values).
_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "stl10": ((0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713)),
}


def _open(cls, name: str, root: str, download: bool, **kwargs):
    try:
        return cls(root=str(Path(root)), download=download, **kwargs)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted. You can use download=True ..."
        raise DatasetUnavailable(
            f"{name} was not found under --data-root {root!r} ({err}). Either pass --download on a machine with "
            f"internet, or point --data-root at a folder that already holds torchvision's {name} files.") from err
    except OSError as err:  # download attempted without a network
        raise DatasetUnavailable(
            f"{name} could not be downloaded into {root!r} ({type(err).__name__}: {err}). On a machine without "
            f"internet, copy torchvision's {name} files there and pass --data-root, without --download.") from err


def _cifar(name: str, cls_name: str, root: str, download: bool) -> DataBundle:
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    train, test = (_open(cls, name, root, download, train=flag) for flag in (True, False))

    def split(ds) -> Split:
        images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
        return Split(images, torch.as_tensor(ds.targets, dtype=torch.long))

    mean, std = _STATS[name]
    return DataBundle(name, list(train.classes), split(train), split(test), mean, std,
                      description=f"torchvision {cls_name}, standard split")


@register_dataset("cifar10", embedded=False, description="CIFAR-10, 50k/10k, 32x32, 10 classes (torchvision)")
def cifar10(root: str, download: bool, seed: int = 0) -> DataBundle:
    return _cifar("cifar10", "CIFAR10", root, download)


@register_dataset("cifar100", embedded=False, description="CIFAR-100, 50k/10k, 32x32, 100 classes (torchvision)")
def cifar100(root: str, download: bool, seed: int = 0) -> DataBundle:
    return _cifar("cifar100", "CIFAR100", root, download)


@register_dataset("stl10", embedded=False, description="STL-10, 5k labelled train / 8k test, 96x96 (torchvision)")
def stl10(root: str, download: bool, seed: int = 0) -> DataBundle:
    import torchvision

    train, test = (_open(torchvision.datasets.STL10, "stl10", root, download, split=s) for s in ("train", "test"))

    def split(ds) -> Split:
        return Split(torch.from_numpy(np.ascontiguousarray(ds.data)), torch.as_tensor(ds.labels, dtype=torch.long))

    mean, std = _STATS["stl10"]
    return DataBundle("stl10", list(train.classes), split(train), split(test), mean, std,
                      description="torchvision STL10, labelled train / test")
