"""The in-memory dataset every method trains on: uint8 image tensors resident on the run's device."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

import torch


class DatasetUnavailable(RuntimeError):
    """The data is not on disk and cannot be fetched; the message names the fix."""


@dataclass
class Split:
    """One split: ``images`` uint8 [N, 3, H, W] (raw pixels), ``labels`` int64 [N], optional ``masks`` bool
    [N, 1, H, W] marking the pixels that carry the class (ground truth, only for datasets that know it)."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must be uint8 [N, 3, H, W], got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must be [N] like images")
        if self.masks is not None and self.masks.shape != (self.images.shape[0], 1, *self.images.shape[2:]):
            raise ValueError("masks must be [N, 1, H, W]")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> "Split":
        return Split(self.images[index], self.labels[index], None if self.masks is None else self.masks[index])

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.images.to(device), self.labels.to(device),
                     None if self.masks is None else self.masks.to(device))


@dataclass
class DataBundle:
    """A dataset ready to train on: train and test splits plus the normalisation the models expect.

    Models always receive *normalised* float images (``normalize``); MoRF perturbs in raw pixel space [0, 1] and
    normalises afterwards.
    """

    name: str
    classes: list[str]
    train: Split
    test: Split
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    description: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_size(self) -> int:
        return int(self.train.images.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.train.images.device

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = torch.tensor(self.mean, device=like.device, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=like.device, dtype=torch.float32).view(1, 3, 1, 1)
        return mean, std

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [0, 255] or float [0, 1] raw images -> normalised float32."""
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
        mean, std = self._stats(x)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float -> raw float in [0, 1] (up to clipping)."""
        mean, std = self._stats(x)
        return x * std + mean

    def to(self, device: torch.device | str) -> "DataBundle":
        return replace(self, train=self.train.to(device), test=self.test.to(device))

    def limit(self, train: int | None = None, test: int | None = None, seed: int = 0) -> "DataBundle":
        """A class-stratified-enough random subset (seeded), for smoke runs."""
        g = torch.Generator().manual_seed(seed)

        def pick(split: Split, n: int | None) -> Split:
            if n is None or n >= len(split):
                return split
            index = torch.randperm(len(split), generator=g)[:n].to(split.images.device)
            return split.subset(index)

        return replace(self, train=pick(self.train, train), test=pick(self.test, test))


def stats_of(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images, in [0, 1] units."""
    x = images.float().div_(255.0)
    return tuple(x.mean(dim=(0, 2, 3)).tolist()), tuple(x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())


def fingerprint(data: "DataBundle") -> str:
    """A content hash of the training and test sets (cached on the bundle)."""
    if "fingerprint" not in data.extra:
        h = hashlib.sha1()
        for t in (data.train.images, data.train.labels, data.test.images, data.test.labels):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        data.extra["fingerprint"] = f"{data.name}:{h.hexdigest()[:16]}"
    return data.extra["fingerprint"]
