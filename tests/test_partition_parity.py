"""The batched ``partition`` explainer against shap's own Partition explainer (``shap-partition``).

Parity criterion: on EVERY image tested, Pearson >= 0.999 and max|diff| <= 1e-4 * max|reference|
(``tests/map_checks.py``); the same criterion for every "same maps" claim (batching, layout, compile).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from map_checks import assert_same_maps as assert_parity
from methods.backbones import create_backbone
from methods.explainers import create_explainer
from methods.explainers.partition import blur_images, build_clustering, owen_partition, parse_blur, partition_tree

pytest.importorskip("shap")
pytest.importorskip("cv2")


def images(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # smooth-ish random images (a low-resolution pattern upsampled plus noise), normalised scale
    low = torch.randn(n, 3, 4, 4, generator=g)
    x = nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return x + 0.3 * torch.randn(n, 3, size, size, generator=g)


def model_for(name: str, size: int) -> nn.Module:
    torch.manual_seed(0)
    return create_backbone(name, 10, size, pretrained=False).eval()


@pytest.mark.parametrize("shape", [(32, 32, 3), (96, 96, 3), (5, 7, 3), (4, 4, 3), (8, 3, 2)])
def test_tree_is_shaps_tree(shape):
    import shap

    ours = build_clustering(*shape)
    theirs = shap.maskers.Image("blur(128,128)", shape).clustering
    np.testing.assert_array_equal(ours, theirs)


def test_lower_credit_matches_shap():
    from shap.explainers._partition import lower_credit

    tree = partition_tree(6, 5, 3)
    rng = np.random.RandomState(1)
    dvalues = rng.randn(2, 2 * tree.m - 1)
    ours = tree.lower_credit(dvalues)
    for b in range(2):
        values = dvalues[b].copy()
        lower_credit(len(values) - 1, 0, tree.m, values, tree.clustering)
        np.testing.assert_allclose(ours[b], values[:tree.m], rtol=1e-12, atol=1e-15)


def test_blur_is_shaps_blur():
    import cv2

    x = images(2, 32, 0)
    ours = blur_images(x, parse_blur("blur(128,128)"))
    ref = cv2.blur(x[1].permute(1, 2, 0).contiguous().numpy(), (128, 128))
    np.testing.assert_array_equal(ours[1].permute(1, 2, 0).numpy(), ref)


# (backbone, image size, max_evals, output): random-init models, few images each
CASES = [
    ("lenet5", 32, 500, "probability"),
    ("lenet5", 32, 2000, "probability"),
    ("tiny", 32, 500, "logit"),
    ("tiny", 32, 2000, "probability"),
    ("lenet5", 96, 500, "probability"),
    ("lenet5", 96, 2000, "probability"),
    ("tiny", 96, 500, "probability"),
    ("mobilenet", 32, 500, "probability"),
    pytest.param("tiny", 96, 2000, "logit", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("backbone,size,max_evals,output", CASES)
def test_parity_with_shap(backbone, size, max_evals, output):
    model = model_for(backbone, size)
    n = 3 if size <= 32 else 2  # 96 x 96 costs ~9x more per evaluation
    x = images(n, size, seed=size + max_evals)
    target = torch.tensor([1, 4, 7])[:n]
    opts = {"max_evals": max_evals, "output": output}
    ref = create_explainer("shap-partition", **opts).explain(model, x, target)
    new = create_explainer("partition", **opts).explain(model, x, target)
    assert_parity(ref, new)


class TopLeft(nn.Module):
    """Looks only at the top-left 8x8 corner: masking anything else gives bit-identical outputs, so most queue
    priorities tie exactly (-0.0) and shap's seeded ``randn`` tie-breaks decide what the last round expands."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.fc = nn.Linear(3 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(x[:, :, :8, :8].flatten(1))


@pytest.mark.parametrize("seed", [0, 7])
def test_parity_under_exact_ties(seed):
    model = TopLeft().eval()
    x = images(3, 32, seed=5)
    target = torch.tensor([0, 2, 4])
    opts = {"max_evals": 300, "seed": seed}
    ref = create_explainer("shap-partition", **opts).explain(model, x, target)
    new = create_explainer("partition", **opts).explain(model, x, target)
    assert_parity(ref, new)


@pytest.mark.parametrize("size,max_evals", [(4, 2000), (4, 37), (6, 64), (12, 3)])
def test_parity_small_images_and_odd_budgets(size, max_evals):
    """Budgets that exhaust the tree (leaves popped), odd budgets, and a budget that only expands the root."""
    model = model_for("tiny", size)
    x = images(2, size, seed=1)
    target = torch.tensor([3, 8])
    ref = create_explainer("shap-partition", max_evals=max_evals).explain(model, x, target)
    new = create_explainer("partition", max_evals=max_evals).explain(model, x, target)
    assert_parity(ref, new)


def test_efficiency_sums_to_f_x_minus_f_blurred():
    model = model_for("lenet5", 32)
    x = images(4, 32, seed=2)
    target = torch.tensor([0, 1, 2, 3])
    for output in ("probability", "logit"):
        explainer = create_explainer("partition", max_evals=700, output=output)
        maps = explainer.explain(model, x, target).double()
        with torch.no_grad():
            f = explainer.scores(model)
            fx = f(x)[torch.arange(4), target].double()
            fb = f(blur_images(x, (128, 128)))[torch.arange(4), target].double()
        # efficiency holds up to float32 rounding of the summed values: bound relative to their magnitude
        scale = float(maps.abs().sum((1, 2, 3)).max())
        np.testing.assert_allclose(maps.sum((1, 2, 3)).numpy(), (fx - fb).numpy(), rtol=1e-4, atol=1e-4 * scale)
        assert (maps.abs().sum((1, 2, 3)) > 0).all()


def test_batching_does_not_change_maps():
    """Forward chunk size and which images share a call change nothing (images advance independently)."""
    model = model_for("tiny", 32)
    x = images(3, 32, seed=4)
    target = torch.tensor([0, 1, 2])
    together = create_explainer("partition", max_evals=300, batch_size=4096).explain(model, x, target)
    small = create_explainer("partition", max_evals=300, batch_size=97).explain(model, x, target)
    alone = torch.cat([create_explainer("partition", max_evals=300).explain(model, x[i:i + 1], target[i:i + 1])
                       for i in range(3)])
    assert_parity(together, small)
    assert_parity(together, alone)


class ViewsItsActivations(nn.Module):
    """``.view`` on a conv output fails for channels-last input: the explainer must fall back, same maps."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(self.conv(x).view(x.shape[0], -1))


def test_memory_layout_does_not_change_maps_and_view_models_fall_back():
    model = ViewsItsActivations().eval()
    x = images(2, 8, seed=9)
    target = torch.tensor([1, 3])
    ref = create_explainer("shap-partition", max_evals=120).explain(model, x, target)
    background = blur_images(x, (128, 128))
    for channels_last in (True, False):
        values, _ = owen_partition(lambda t: torch.softmax(model(t), 1), x, background, target, 120,
                                   channels_last=channels_last)
        assert_parity(ref, torch.from_numpy(values).float())
    lenet = model_for("lenet5", 32)
    xl, tl = images(2, 32, seed=3), torch.tensor([0, 9])
    fast = owen_partition(lenet, xl, blur_images(xl, (128, 128)), tl, 300, channels_last=True)[0]
    plain = owen_partition(lenet, xl, blur_images(xl, (128, 128)), tl, 300, channels_last=False)[0]
    assert_parity(plain, fast)


def test_compiled_forward_gives_the_same_maps():
    model = model_for("tiny", 16)
    x = images(3, 16, seed=8)
    target = torch.tensor([2, 5, 9])
    eager = create_explainer("partition", max_evals=300, batch_size=64).explain(model, x, target)
    compiled = create_explainer("partition", max_evals=300, batch_size=64, compile=True).explain(model, x, target)
    assert_parity(eager, compiled)
    assert "compile" not in create_explainer("partition", compile=True).config()  # not part of cache keys


def test_failing_compiler_warns_and_falls_back_to_eager(monkeypatch, caplog):
    def broken(*args, **kwargs):
        def run(*a, **k):
            raise RuntimeError("inductor: no C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    model = model_for("tiny", 8)
    x, target = images(2, 8, seed=1), torch.tensor([0, 1])
    eager = create_explainer("partition", max_evals=100).explain(model, x, target)
    with caplog.at_level("WARNING"):
        fallback = create_explainer("partition", max_evals=100, compile=True).explain(model, x, target)
    torch.testing.assert_close(fallback, eager)
    assert "torch.compile failed" in caplog.text and "no C++ compiler" in caplog.text


def test_reference_restores_global_numpy_rng():
    model = model_for("tiny", 8)
    np.random.seed(123)
    expected = np.random.RandomState(123).randn(3)
    create_explainer("shap-partition", max_evals=50).explain(model, images(1, 8, 0), torch.tensor([1]))
    np.testing.assert_array_equal(np.random.randn(3), expected)


def test_partition_rejects_unsupported_masker():
    with pytest.raises(ValueError, match="blur"):
        create_explainer("partition", masker="inpaint_telea")
    with pytest.raises(ValueError):
        create_explainer("partition", max_evals=1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_partition_on_cuda_matches_cpu():
    model = model_for("lenet5", 32)
    x = images(4, 32, seed=6)
    target = torch.tensor([0, 5, 6, 9])
    cpu = create_explainer("partition", max_evals=2000).explain(model, x, target)
    gpu = create_explainer("partition", max_evals=2000).explain(model.cuda(), x.cuda(), target.cuda())
    assert gpu.device.type == "cuda"
    assert_parity(cpu, gpu.cpu())


@pytest.mark.slow
def test_parity_many_images_lenet32():
    model = model_for("lenet5", 32)
    x = images(20, 32, seed=11)
    target = torch.arange(20) % 10
    ref = create_explainer("shap-partition").explain(model, x, target)
    new = create_explainer("partition").explain(model, x, target)
    assert_parity(ref, new)
