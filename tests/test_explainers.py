"""The explainer interface contract, for every registered explainer, and the captum explainers' correctness."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from map_checks import assert_same_maps
from methods.backbones import create_backbone
from methods.explainers import create_explainer, list_explainers
from methods.registry import UnknownNameError

BUILTIN = ["gradient-shap", "integrated-gradients", "occlusion", "partition", "saliency", "shap-partition"]
# small settings so the contract runs in seconds (the options are each explainer's own)
FAST = {"partition": {"max_evals": 120}, "shap-partition": {"max_evals": 120},
        "integrated-gradients": {"n_steps": 16}, "gradient-shap": {"n_samples": 8}}
DETERMINISTIC_PER_IMAGE = ["integrated-gradients", "occlusion", "partition", "saliency", "shap-partition"]


def small_model(size: int = 16) -> nn.Module:
    torch.manual_seed(0)
    return create_backbone("tiny", 10, size).eval()


def batch(n: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_builtin_explainers_are_registered():
    assert set(BUILTIN) <= set(list_explainers())
    with pytest.raises(UnknownNameError, match="valid explainers"):
        create_explainer("no-such-explainer")


@pytest.mark.parametrize("name", BUILTIN)
def test_contract_shape_dtype_device_finite(name):
    model = small_model()
    model.train()  # explainers must evaluate in eval mode and restore the training flag
    x = batch()
    target = torch.tensor([0, 5, 9])
    maps = create_explainer(name, **FAST.get(name, {})).explain(model, x, target)
    assert maps.shape == x.shape
    assert maps.dtype == torch.float32
    assert maps.device == x.device
    assert torch.isfinite(maps).all()
    assert maps.abs().sum() > 0
    assert model.training


@pytest.mark.parametrize("name", BUILTIN)
def test_each_image_is_explained_for_its_own_target(name):
    model = small_model()
    x = batch(2)
    explainer = create_explainer(name, **FAST.get(name, {}))
    a = explainer.explain(model, x, torch.tensor([1, 1]))
    b = explainer.explain(model, x, torch.tensor([1, 6]))
    assert not torch.allclose(a[1], b[1], atol=1e-7), "the second image's target was ignored"
    if name in DETERMINISTIC_PER_IMAGE:
        assert_same_maps(a[:1], b[:1])  # image 0 did not change its target
        # batched == one image at a time with that image's target
        alone = explainer.explain(model, x[1:], torch.tensor([6]))
        assert_same_maps(b[1:], alone)


@pytest.mark.parametrize("name", BUILTIN)
def test_output_option_changes_maps_and_config(name):
    model = small_model()
    x = batch(1)
    t = torch.tensor([2])
    prob = create_explainer(name, **FAST.get(name, {}))
    logit = create_explainer(name, output="logit", **FAST.get(name, {}))
    assert prob.config() != logit.config() and prob.config()["name"] == name
    assert not torch.allclose(prob.explain(model, x, t), logit.explain(model, x, t))
    with pytest.raises(ValueError, match="output"):
        create_explainer(name, output="softmax")


def test_saliency_is_abs_gradient_of_the_probability():
    model = small_model()
    x = batch(2)
    t = torch.tensor([3, 7])
    maps = create_explainer("saliency").explain(model, x, t)
    xg = x.clone().requires_grad_(True)
    p = torch.softmax(model(xg), 1)[torch.arange(2), t].sum()
    (grad,) = torch.autograd.grad(p, xg)
    torch.testing.assert_close(maps, grad.abs())


def test_integrated_gradients_completeness():
    model = small_model()
    x = batch(2)
    t = torch.tensor([3, 7])
    maps = create_explainer("integrated-gradients", output="logit", n_steps=200).explain(model, x, t)
    with torch.no_grad():
        delta = model(x)[torch.arange(2), t] - model(torch.zeros_like(x))[torch.arange(2), t]
    torch.testing.assert_close(maps.sum((1, 2, 3)), delta, rtol=0.05, atol=0.02)


def test_occlusion_window_value_is_the_output_drop():
    model = small_model()
    x = batch(1)
    t = torch.tensor([4])
    maps = create_explainer("occlusion", output="logit", window=4, stride=4).explain(model, x, t)
    occluded = x.clone()
    occluded[:, :, 4:8, 8:12] = 0
    with torch.no_grad():
        drop = model(x)[0, 4] - model(occluded)[0, 4]
    torch.testing.assert_close(maps[0, :, 4:8, 8:12], drop.expand(3, 4, 4), rtol=1e-4, atol=1e-5)


def test_gradient_shap_is_seeded():
    model = small_model()
    x = batch(2)
    t = torch.tensor([1, 2])
    a = create_explainer("gradient-shap", n_samples=8, seed=3).explain(model, x, t)
    b = create_explainer("gradient-shap", n_samples=8, seed=3).explain(model, x, t)
    c = create_explainer("gradient-shap", n_samples=8, seed=4).explain(model, x, t)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_partition_maps_are_block_constant_and_channel_equal_at_low_budget():
    """At a budget far below one evaluation per pixel, the tree only splits H and W: R = G = B."""
    model = small_model(32)
    maps = create_explainer("partition", max_evals=500).explain(model, batch(2, 32), torch.tensor([0, 1]))
    torch.testing.assert_close(maps[:, 0], maps[:, 1])
    torch.testing.assert_close(maps[:, 0], maps[:, 2])
    assert maps[0, 0].unique().numel() <= 256
