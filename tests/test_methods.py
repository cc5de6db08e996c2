"""Contract tests generated from the method registry: every registered method, on the ``tiny`` backbone and a small
slice of the ``synthetic`` dataset, can be created, fitted through the shared engine, and then predicts [B, K] logits
and explains with [B, 1|C, H, W] maps, all finite; unknown options are rejected."""
from __future__ import annotations

import pytest
import torch

from core.artifacts import ArtifactStore
from methods.context import BackboneConfig, FitContext, TeacherConfig
from methods.engine import Engine, TrainConfig
from methods import create_method, list_methods
from methods.base import check_map_shape
from methods.registry import get_method_class

NUM_CLASSES = 10
# Options that keep a method fast on CPU (defaults otherwise): wae-shap's default explainer is SHAP Partition.
FAST_OPTIONS = {"wae-shap": {"explainer": "saliency", "explainer_options": {}}}
STORE = ArtifactStore(None)  # shared: the stage-1 model and teacher maps are computed once for the whole module


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tiny_synthetic):
    return tiny_synthetic


def make_ctx(data, store=STORE, **train):
    cfg = TrainConfig(**{"epochs": 1, "batch_size": 16, "max_steps_per_epoch": 2, **train})
    return FitContext(data, Engine(cfg, seed=0, progress=False), BackboneConfig("tiny"),
                      teacher=TeacherConfig(explainer="saliency", options={}), artifacts=store)


@pytest.fixture(scope="module")
def fitted(data):
    """Each method fitted once (lazily), with the facts its ``fit`` returned."""
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            method = create_method(name, "tiny", NUM_CLASSES, **FAST_OPTIONS.get(name, {}))
            ctx = make_ctx(data)
            facts = method.fit(ctx)
            cache[name] = (method, facts, ctx)
        return cache[name]

    return get


def test_registry_lists_the_compared_methods():
    assert {"baseline", "impactx", "impactx-single", "impactx-nolambda", "impactx-shuffled", "abn", "wae",
            "wae-shap"} <= set(list_methods())


@pytest.mark.parametrize("name", list_methods())
def test_fit_returns_facts(name, fitted):
    _, facts, _ = fitted(name)
    assert isinstance(facts, dict) and facts


@pytest.mark.parametrize("name", list_methods())
def test_predict_shape_and_finite(name, fitted, data):
    method, _, _ = fitted(name)
    x = data.normalize(data.test.images[:5])
    logits = method.predict(x)
    assert logits.shape == (5, NUM_CLASSES)
    assert torch.isfinite(logits).all()
    assert method.classifier()(x).shape == (5, NUM_CLASSES)


@pytest.mark.parametrize("name", list_methods())
def test_explain_shape_and_finite(name, fitted, data):
    method, _, _ = fitted(name)
    x = data.normalize(data.test.images[:5])
    maps = method.explain(x, data.test.labels[:5])
    check_map_shape(maps, x)
    assert torch.isfinite(maps).all()


@pytest.mark.parametrize("name", list_methods())
def test_unknown_option_raises(name):
    with pytest.raises(TypeError, match="unknown options"):
        create_method(name, "tiny", NUM_CLASSES, no_such_option=1)


@pytest.mark.parametrize("name", [n for n in list_methods() if get_method_class(n).uses_stage1])
def test_stage1_is_shared_not_retrained(name, fitted):
    """Methods that start from stage 1 reuse the baseline's cached model (same artifact key)."""
    _, base_facts, _ = fitted("baseline")
    _, facts, _ = fitted(name)
    assert facts["stage1_key"] == base_facts["stage1_key"]
    assert sum(k.startswith("stage1/") for k in STORE.created) == 1


def test_nolambda_rejects_lam():
    assert "lam" not in get_method_class("impactx-nolambda").option_names()
    with pytest.raises(TypeError):
        create_method("impactx-nolambda", "tiny", NUM_CLASSES, lam=0.5)


@pytest.mark.parametrize("name, option, value", [("impactx", "map_scale", "bogus"), ("impactx", "lep_init", "x"),
                                                 ("impactx-single", "lep_init", "stage1"),
                                                 ("wae", "stage1_input", "x"), ("impactx-single", "refresh_every", 0)])
def test_bad_option_values_raise(name, option, value):
    with pytest.raises(ValueError):
        create_method(name, "tiny", NUM_CLASSES, **{option: value})
