"""Cross-check: the suite's MoRF curve equals Quantus 0.6.0 ``RegionPerturbation`` in the matching mode.

Conventions matched (Quantus source: quantus/metrics/faithfulness/region_perturbation.py):

- Quantus feeds its ``x_batch`` straight to the model, and its constant ``perturb_baseline`` is written into that
  array. The suite perturbs RAW pixels and normalises afterwards, so Quantus gets raw [0, 1] images and the model
  wrapped as ``normalize -> model`` (:class:`RawInput`); the constant is then the same raw value on both sides.
- Quantus sums the attribution over each ``patch_size`` block and all channels (a [B, 1, H, W] map is broadcast to
  the 3 input channels first: 3x the sum, same order); signed, since ``abs=False``; ``normalise=False`` (its default
  divides by the max, which does not change the order but is switched off to keep it out of the comparison).
- Quantus orders with ``np.argsort(-sums)`` (not stable), the suite with a stable descending sort: the maps here are
  continuous random values, so there are no ties and both orders are the same.
- Quantus returns f_0 − f_k for k = 1..regions_evaluation; the suite's curve is [f_0, ..., f_L]: compare
  ``curve[:, :1] − curve[:, 1:]``.
- ``softmax=True`` <-> ``score="probability"``; ``softmax=False`` <-> ``score="logit"``.
- The patch size divides the image (no padding: Quantus pads partial patches with edge values, the suite keeps
  smaller edge regions instead, so those modes differ by design).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from benchmarks.evaluate import morf_curves
from datasets import load_dataset
from methods.backbones import create_backbone

quantus = pytest.importorskip("quantus")


class RawInput(nn.Module):
    """``model`` taking raw [0, 1] images (what Quantus perturbs)."""

    def __init__(self, model: nn.Module, data) -> None:
        super().__init__()
        self.model, self.data = model, data

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.model(self.data.normalize(raw))


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def _model(seed: int, image_size: int = 32) -> nn.Module:
    torch.manual_seed(seed)
    model = create_backbone("lenet5", 10, image_size)
    with torch.no_grad():  # larger weights than the default init, so the scores move a lot along the curve
        for p in model.parameters():
            p.mul_(3.0)
    return model.eval()


def _quantus_curve(model, data, raw, y, maps, patch, regions, baseline, softmax):
    metric = quantus.RegionPerturbation(patch_size=patch, regions_evaluation=regions, order="morf", abs=False,
                                        normalise=False, perturb_baseline=baseline, disable_warnings=True,
                                        display_progressbar=False)
    out = metric(RawInput(model, data).eval(), raw.numpy(), y.numpy(), a_batch=maps.numpy(), softmax=softmax,
                 device="cpu", batch_size=64)
    return np.asarray(out)


@pytest.mark.parametrize("channels,score,baseline", [(1, "probability", 0.0), (3, "probability", 0.5),
                                                     (1, "logit", 0.3)])
def test_same_curve_as_quantus_region_perturbation(synthetic, channels, score, baseline):
    n = 24
    raw = synthetic.test.images[:n].float() / 255.0
    y = synthetic.test.labels[:n]
    maps = torch.randn(n, channels, 32, 32, generator=torch.Generator().manual_seed(channels))
    model = _model(channels)
    ours = morf_curves(model, raw, y, maps, normalize=synthetic, region_size=4, baseline=baseline, score=score)
    theirs = _quantus_curve(model, synthetic, raw, y, maps, patch=4, regions=64, baseline=baseline,
                            softmax=score == "probability")
    drops = (ours[:, :1] - ours[:, 1:]).numpy()
    assert theirs.shape == drops.shape == (n, 64)
    assert np.abs(drops).max() > 0.05  # the curves are not flat: the comparison means something
    np.testing.assert_allclose(drops, theirs, atol=1e-5, rtol=1e-5)


def test_same_curve_as_quantus_at_96px_with_fewer_steps():
    """STL-10's geometry: 12x12 regions (the default at 96 px), only the first 20 of the 64 regions replaced."""
    torch.manual_seed(0)
    n = 6
    raw = torch.rand(n, 3, 96, 96)
    y = torch.randint(10, (n,))
    maps = torch.randn(n, 1, 96, 96)
    torch.manual_seed(1)
    model = nn.Sequential(create_backbone("tiny", 10, 96)).eval()
    data = load_dataset("digits")  # any bundle: only its normalize is used
    ours = morf_curves(model, raw, y, maps, normalize=data, steps=20, baseline=0.2, score="logit")
    theirs = _quantus_curve(model, data, raw, y, maps, patch=12, regions=20, baseline=0.2, softmax=False)
    drops = (ours[:, :1] - ours[:, 1:]).numpy()
    assert theirs.shape == drops.shape == (n, 20)
    assert np.abs(drops).max() > 1e-3
    np.testing.assert_allclose(drops, theirs, atol=1e-5, rtol=1e-5)
