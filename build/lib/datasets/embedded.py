"""Embedded, offline datasets: no download, no files.

- ``digits``: scikit-learn's real handwritten digits (1,797 8x8 images), resized to 32x32 and replicated to RGB;
  a fixed stratified 80/20 train/test split.
- ``synthetic``: generated (seeded) 32x32 RGB images in 10 classes. The class is carried only by one 8x8 class
  template pasted at a random place over textured noise, next to an 8x8 distractor patch that carries no class.
  Each image's ground-truth relevance mask (the template's pixels) travels with the dataset (``Split.masks``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from datasets.base import DataBundle, Split, stats_of
from datasets.registry import register_dataset

DATA_SEED = 20240611  # the embedded sets are fixed artefacts: the run seed does not change them


@register_dataset("digits", embedded=True,
                  description="scikit-learn handwritten digits (real), 8x8 resized to 32x32x3, 10 classes")
def digits(root: str = "", download: bool = False, seed: int = 0) -> DataBundle:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    x = torch.as_tensor(raw.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    images = (x.clamp(0, 1) * 255).round().byte().expand(-1, 3, -1, -1).contiguous()
    labels = torch.as_tensor(raw.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(torch.arange(len(labels)).numpy(), test_size=0.2,
                                           stratify=labels.numpy(), random_state=0)
    train = Split(images[train_idx], labels[train_idx])
    test = Split(images[test_idx], labels[test_idx])
    mean, std = stats_of(train.images)
    return DataBundle("digits", [str(d) for d in range(10)], train, test, mean, std,
                      description="scikit-learn load_digits, resized 32x32, stratified 80/20 split (seed 0)")


def make_synthetic(n: int, generator: torch.Generator, templates: torch.Tensor, size: int = 32,
                   patch: int = 8) -> Split:
    """``n`` images with one class template each (uint8) and the template's mask."""
    num_classes = templates.shape[0]
    labels = torch.randint(num_classes, (n,), generator=generator)
    # Background: smooth colour noise (independent of the class).
    coarse = torch.rand(n, 3, size // 4, size // 4, generator=generator)
    background = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    images = 0.25 + 0.5 * background + 0.08 * torch.randn(n, 3, size, size, generator=generator)
    masks = torch.zeros(n, 1, size, size, dtype=torch.bool)
    for i in range(n):
        while True:  # class patch and distractor must not overlap
            ty, tx, dy, dx = torch.randint(0, size - patch + 1, (4,), generator=generator).tolist()
            if abs(ty - dy) >= patch or abs(tx - dx) >= patch:
                break
        distractor = torch.rand(3, patch, patch, generator=generator)
        images[i, :, dy:dy + patch, dx:dx + patch] = distractor
        jitter = 0.1 * torch.randn(3, patch, patch, generator=generator)
        images[i, :, ty:ty + patch, tx:tx + patch] = templates[labels[i]] + jitter
        masks[i, :, ty:ty + patch, tx:tx + patch] = True
    return Split((images.clamp(0, 1) * 255).round().byte(), labels, masks)


@register_dataset("synthetic", embedded=True,
                  description="generated 32x32x3, 10 classes, a class template at a random place; "
                              "ground-truth relevance masks")
def synthetic(root: str = "", download: bool = False, seed: int = 0, train_size: int = 2000,
              test_size: int = 500) -> DataBundle:
    generator = torch.Generator().manual_seed(DATA_SEED)
    # One binary colour pattern per class, in 2x2-pixel blocks (coarse enough for LeNet-5's 5x5 filters).
    coarse = torch.rand(10, 3, 4, 4, generator=generator).round()
    templates = coarse.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    train = make_synthetic(train_size, generator, templates)
    test = make_synthetic(test_size, generator, templates)
    mean, std = stats_of(train.images)
    return DataBundle("synthetic", [f"class{c}" for c in range(10)], train, test, mean, std,
                      description=f"generated (seed {DATA_SEED}); masks mark the class template",
                      extra={"templates": templates})
