"""Small torch helpers every layer uses: a model in eval mode for a block, wall time that waits for the device."""
from __future__ import annotations

import contextlib
import time
from typing import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put ``models`` in eval mode for the block and give each its own previous mode back afterwards."""
    before = [m.training for m in models]
    for m in models:
        m.eval()
    try:
        yield
    finally:
        for m, was_training in zip(models, before):
            m.train(was_training)


def synchronize(device: torch.device | str | None) -> None:
    """Wait until queued kernels on ``device`` finish (CUDA runs asynchronously; CPU needs nothing)."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(device)


class Stopwatch:
    """``with Stopwatch(device) as t: ...``; ``t.seconds`` is the wall time of the block, device work included."""

    def __init__(self, device: torch.device | str | None = None) -> None:
        self.device, self.seconds = device, 0.0

    def __enter__(self) -> "Stopwatch":
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start
