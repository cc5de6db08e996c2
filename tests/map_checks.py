"""Tolerances for comparing attribution maps, derived from what is being claimed, never from one machine's noise.

Two computations of "the same map" (batched vs alone, compiled vs eager, channels-last vs NCHW, ours vs shap) differ
by float32 rounding in a different summation order. That noise scales with the map's magnitude, not with each pixel
(a near-zero pixel can have a large *relative* error), so every bound here is relative to the image's own
max |map|: the parity criterion of the partition explainer, |diff| <= 1e-4 * max|map| and Pearson >= 0.999 on
every image.
"""
from __future__ import annotations

import numpy as np
import torch

PARITY_REL = 1e-4  # max |diff| / max |reference map| on every image
PARITY_PEARSON = 0.999
# absolute floor: a map is a sum of differences of model outputs (softmax probabilities, at most 1) in float32, so a
# different summation order can move it by a few float32 steps of values near 1 (~1e-6 each) whatever the map's size;
# that floor dominates when a model barely reacts to its input (max|map| ~ 1e-6, seen with a tiny 12 px model)
PARITY_ATOL = 1e-5
FLOAT16_REL = 2.0 ** -10  # one float16 step (11 significant bits) at the map's scale: what a float16 cache may add


def assert_same_maps(ref: torch.Tensor | np.ndarray, new: torch.Tensor | np.ndarray, rel: float = PARITY_REL,
                     min_pearson: float = PARITY_PEARSON, atol: float = PARITY_ATOL) -> None:
    """Per image: max |ref - new| <= rel * max |ref| + atol and, where the map stands well above the float floor and
    is not constant, Pearson >= min_pearson."""
    ref, new = torch.as_tensor(ref).detach().cpu(), torch.as_tensor(new).detach().cpu()
    assert ref.shape == new.shape, f"shapes differ: {tuple(ref.shape)} vs {tuple(new.shape)}"
    for i in range(ref.shape[0]):
        r, n = ref[i].flatten().double(), new[i].flatten().double()
        scale = float(r.abs().max())
        assert scale > 0, f"image {i}: degenerate (all-zero) reference map"
        max_diff = float((r - n).abs().max())
        assert max_diff <= rel * scale + atol, (f"image {i}: max|diff| {max_diff:.3g} > {rel:g} * max|map| "
                                                f"{scale:.3g} + {atol:g}")
        if scale > 100 * atol and float(r.std()) > rel * scale:
            pearson = float(np.corrcoef(r.numpy(), n.numpy())[0, 1])
            assert pearson >= min_pearson, f"image {i}: Pearson {pearson:.6f} < {min_pearson}"
