"""benchmarks.figures writes readable, non-trivial PNGs."""
from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from benchmarks.figures import plot_examples, plot_morf_curves


def _curves(n: int, steps: int, speed: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(0, 1, steps + 1)
    return (torch.exp(-speed * x)[None] * (0.8 + 0.2 * torch.rand(n, 1, generator=g))).clamp(0, 1)


def _check_png(path, min_size=(200, 200)):
    assert path.is_file() and path.stat().st_size > 5_000
    img = mpimg.imread(path)
    assert img.shape[0] >= min_size[0] and img.shape[1] >= min_size[1]
    rgb = img[..., :3]
    assert float(rgb.std()) > 0.02  # not blank
    colourful = np.abs(rgb[..., 0] - rgb[..., 2]) > 0.2  # coloured pixels (curves, red/blue maps) exist
    assert colourful.mean() > 0.001
    return img


@pytest.mark.parametrize("band", ["iqr", "std", "none"])
def test_plot_morf_curves_writes_a_png(tmp_path, band):
    path = plot_morf_curves({"own": _curves(20, 64, 5.0, 0), "shap": _curves(20, 64, 2.0, 1),
                             "random": _curves(20, 64, 0.5, 2)}, tmp_path / "sub" / "curves.png", band=band)
    _check_png(path)


def test_plot_morf_curves_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError):
        plot_morf_curves({}, tmp_path / "x.png")
    with pytest.raises(ValueError):
        plot_morf_curves({"a": torch.rand(64)}, tmp_path / "x.png")
    with pytest.raises(ValueError):
        plot_morf_curves({"a": torch.rand(3, 65)}, tmp_path / "x.png", band="minmax")


def test_plot_examples_writes_one_row_per_image(tmp_path):
    n = 3
    images = (torch.rand(n, 3, 32, 32) * 255).byte()
    maps = {"shap": torch.randn(n, 3, 32, 32), "own": torch.randn(n, 1, 32, 32)}
    curves = {"shap": _curves(n, 64, 3.0, 0), "own": _curves(n, 64, 6.0, 1)}
    small = _check_png(plot_examples(images[:1], {k: v[:1] for k, v in maps.items()},
                                     {k: v[:1] for k, v in curves.items()}, tmp_path / "one.png"))
    big = _check_png(plot_examples(images, maps, curves, tmp_path / "three.png", titles=["a", "b", "c"],
                                   suptitle="impactx: synthetic / lenet5, seed 0"))
    assert big.shape[0] > 2 * small.shape[0]  # rows stack vertically
    with pytest.raises(ValueError):
        plot_examples(images, maps, curves, tmp_path / "bad.png", titles=["a"])


def test_example_rows_show_different_classes_when_the_test_set_is_sorted_by_class():
    from benchmarks.grid import example_rows

    sorted_targets = torch.tensor([0] * 5 + [1] * 5 + [2] * 5)
    assert example_rows(sorted_targets, 4).tolist() == [0, 1, 5, 10]
    assert example_rows(torch.tensor([3, 3]), 4).tolist() == [0, 1]
