"""The ``gpu`` marker is the one source of truth for "needs CUDA" (see conftest.py)."""
from __future__ import annotations

import pytest

GPU_SKIP = "needs CUDA (a gpu-marked test; run `pytest -m gpu` on a machine with CUDA)"


def apply_gpu_marker(items: list, cuda_available: bool) -> None:
    """Skip ``gpu``-marked tests without CUDA; refuse a test that skips for want of CUDA but is not marked ``gpu``
    (``-m gpu`` / ``-m "not gpu"`` would then select the wrong tests)."""
    unmarked = []
    for item in items:
        marked = item.get_closest_marker("gpu") is not None
        if any("cuda" in str(m.kwargs.get("reason", "")).lower() for m in item.iter_markers("skipif")) and not marked:
            unmarked.append(item.nodeid)
        if marked and not cuda_available:
            item.add_marker(pytest.mark.skip(reason=GPU_SKIP))
    if unmarked:
        raise pytest.UsageError("tests that need CUDA must be marked @pytest.mark.gpu: " + ", ".join(unmarked))
