"""``imagefolder:<path>``: any ``train/<class>/*`` + ``test/<class>/*`` tree (or a .tar.gz holding one)."""
from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import torch

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


def _archive_digest(archive: Path) -> str:
    """SHA-1 of the archive's bytes: a replaced archive at the same path is extracted again."""
    h = hashlib.sha1()
    with open(archive, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]


def _extract(archive: Path, root: str) -> Path:
    """Extract once per archive *content* under ``<root>/extracted/``; atomically (a temporary folder renamed into
    place), so an interrupted or failed extraction leaves nothing that looks finished."""
    import os
    import shutil

    try:
        digest = _archive_digest(archive)
    except OSError as err:
        raise DatasetUnavailable(f"cannot read {archive}: {err}") from err
    target = Path(root) / "extracted" / f"{archive.name.split('.')[0]}-{digest}"
    if (target / ".complete").exists():
        return target
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    created = [d for d in (target.parent, target.parent.parent) if not d.exists()]  # removed again on failure
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        (tmp / ".complete").touch()
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: use its copy
            if not (target / ".complete").exists():
                raise
    except (tarfile.TarError, EOFError, OSError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                pass
        reason = str(err).splitlines()[0].rstrip(":")
        raise DatasetUnavailable(
            f"{archive} is not a readable .tar.gz image-folder archive ({type(err).__name__}: {reason}); check the "
            "file, or extract it yourself and pass the folder: imagefolder:/path/to/folder") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _read_split(folder: Path, classes: list[str] | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    found = sorted(p.name for p in folder.iterdir() if p.is_dir())
    classes = classes or found
    if len(classes) < 2:
        raise DatasetUnavailable(f"{folder} has {len(classes)} class folder(s) ({', '.join(classes) or 'none'}); "
                                 "a classifier needs at least 2: <split>/<class>/*.jpg")
    if set(found) - set(classes):
        raise DatasetUnavailable(f"{folder} has classes {sorted(set(found) - set(classes))} not in train/")
    images, labels, sizes = [], [], {}
    for index, cls in enumerate(classes):
        files = [f for f in sorted((folder / cls).iterdir()) if f.suffix.lower() in _EXTENSIONS] \
            if (folder / cls).is_dir() else []
        if not files and (folder / cls).is_dir():
            raise DatasetUnavailable(f"class folder {folder / cls} holds no images ({', '.join(_EXTENSIONS)}); "
                                     "remove it or add its images")
        for file in files:
            try:
                with Image.open(file) as image:
                    array = np.asarray(image.convert("RGB"))
            except (OSError, UnidentifiedImageError, ValueError) as err:
                raise DatasetUnavailable(f"cannot read image {file} ({type(err).__name__}: {err}); remove or "
                                         "replace it") from err
            sizes.setdefault(array.shape[:2], file)
            images.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
            labels.append(index)
    if not images:
        raise DatasetUnavailable(f"no images ({', '.join(_EXTENSIONS)}) under {folder}/<class>/")
    if len(sizes) > 1:
        seen = ", ".join(f"{h}x{w} (e.g. {f})" for (h, w), f in list(sizes.items())[:3])
        raise DatasetUnavailable(f"images under {folder} have different sizes: {seen}; resize them to one size")
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
    if train_x.shape[-2:] != test_x.shape[-2:]:
        raise DatasetUnavailable(f"train images in {tree / 'train'} are {tuple(train_x.shape[-2:])} px but test "
                                 f"images in {tree / 'test'} are {tuple(test_x.shape[-2:])} px; resize one split so "
                                 "both have the same size")
    mean, std = stats_of(train_x)
    name = f"imagefolder:{Path(path).name.split('.')[0]}"  # short label; the content fingerprint keys caches
    return DataBundle(name, classes, Split(train_x, train_y), Split(test_x, test_y), mean, std,
                      description=f"image folder {tree}")
