"""``imagefolder:<path>``: any ``train/<class>/*`` + ``test/<class>/*`` tree (or a .tar.gz holding one)."""
from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import torch
import torch.nn.functional as F

from datasets.base import DataBundle, DatasetUnavailable, Split, stats_of
from datasets.registry import register_dataset

_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")


def _find_tree(path: Path) -> Path:
    """The folder holding ``train/`` and ``test/``: ``path`` itself or its single sub-folder."""
    if (path / "train").is_dir() and (path / "test").is_dir():
        return path
    subs = [p for p in path.iterdir() if p.is_dir()] if path.is_dir() else []
    if len(subs) == 1 and (subs[0] / "train").is_dir() and (subs[0] / "test").is_dir():
        return subs[0]
    raise DatasetUnavailable(f"{path} is not an image-folder tree: expected {path}/train/<class>/*.jpg and "
                             f"{path}/test/<class>/*.jpg (or a .tar.gz holding such a tree)")


def _extract(archive: Path, root: str) -> Path:
    digest = hashlib.sha1(str(archive.resolve()).encode()).hexdigest()[:10]
    target = Path(root) / "extracted" / f"{archive.name.split('.')[0]}-{digest}"
    done = target / ".complete"
    if not done.exists():
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        done.touch()
    return target


def _read_split(folder: Path, classes: list[str] | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    import numpy as np
    from PIL import Image

    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    classes = classes or found
    if set(found) - set(classes):
        raise DatasetUnavailable(f"{folder} has classes {sorted(set(found) - set(classes))} not in train/")
    images, labels = [], []
    for index, cls in enumerate(classes):
        for file in sorted((folder / cls).iterdir()) if (folder / cls).is_dir() else []:
            if file.suffix.lower() in _EXTENSIONS:
                with Image.open(file) as image:
                    array = np.asarray(image.convert("RGB"))
                images.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
                labels.append(index)
    if not images:
        raise DatasetUnavailable(f"no images ({', '.join(_EXTENSIONS)}) under {folder}/<class>/")
    size = images[0].shape[-2:]
    images = [im if im.shape[-2:] == size else
              F.interpolate(im[None].float(), size=tuple(size), mode="bilinear").round().clamp(0, 255).byte()[0]
              for im in images]
    return torch.stack(images), torch.tensor(labels), classes


@register_dataset("imagefolder:", embedded=False,
                  description="imagefolder:<path> - train/<class>/* and test/<class>/* (or a .tar.gz of that)")
def imagefolder(path: str | None, root: str, download: bool, seed: int = 0) -> DataBundle:
    if not path:
        raise DatasetUnavailable("imagefolder needs a path: imagefolder:/path/to/tree")
    location = Path(path).expanduser()
    if not location.exists():
        raise DatasetUnavailable(f"image folder {location} does not exist")
    if location.is_file():
        location = _extract(location, root)
    tree = _find_tree(location)
    train_x, train_y, classes = _read_split(tree / "train", None)
    test_x, test_y, _ = _read_split(tree / "test", classes)
    mean, std = stats_of(train_x)
    name = f"imagefolder:{Path(path).name.split('.')[0]}"  # short label; the content fingerprint keys caches
    return DataBundle(name, classes, Split(train_x, train_y), Split(test_x, test_y), mean, std,
                      description=f"image folder {tree}")
