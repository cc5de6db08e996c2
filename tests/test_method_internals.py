"""What each compared method does inside: ABN's (1 + M) * g, IMPACTX's frozen M and λ-weighted map loss, the
shuffled ablation's permutation, WAE's test-time weighted average explanation, and that every method learns."""
from __future__ import annotations

import pytest
import torch

from core.artifacts import ArtifactStore
from methods.context import BackboneConfig, FitContext, TeacherConfig
from methods.engine import Batch, Engine, TrainConfig, validation_split
from datasets import load_dataset
from methods import create_method, list_methods
from methods.backbones import abn_split, create_backbone
from methods.blocks import MapDecoder, decoder_blocks, latent_head, scale_maps
from methods.explainers import create_explainer

NUM_CLASSES = 10


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tiny_synthetic):
    return tiny_synthetic


@pytest.fixture(scope="module")
def store():
    return ArtifactStore(None)


def make_ctx(data, store, backbone="tiny", pretrained=None, **train):
    cfg = TrainConfig(**{"epochs": 1, "batch_size": 16, "max_steps_per_epoch": 2, **train})
    return FitContext(data, Engine(cfg, seed=0, progress=False), BackboneConfig(backbone, pretrained=pretrained),
                      teacher=TeacherConfig(explainer="saliency", options={}), artifacts=store)


# ------------------------------------------------------------------------------------------------------------ ABN
@pytest.mark.parametrize("backbone", ["tiny", "lenet5"])
def test_abn_perception_sees_one_plus_mask_times_g(backbone):
    torch.manual_seed(0)
    abn = create_method("abn", backbone, NUM_CLASSES).build(create_backbone(backbone, NUM_CLASSES, 32)).eval()
    seen = {}
    hook = abn.perception.register_forward_pre_hook(lambda mod, args: seen.__setitem__("g_prime", args[0].clone()))
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        logits = abn.predict(x)
        hook.remove()
        g = abn.features(x)
        _, mask = abn.attention(g)
    assert mask.shape == (4, 1, *g.shape[-2:])
    assert ((mask > 0) & (mask < 1)).all()
    torch.testing.assert_close(seen["g_prime"], (1 + mask) * g)
    assert not torch.allclose(seen["g_prime"], g)  # the mask does change the features
    torch.testing.assert_close(logits, abn.head(abn.perception((1 + mask) * g)))


def test_abn_loss_is_attention_ce_plus_perception_ce():
    torch.manual_seed(0)
    abn = create_method("abn", "tiny", NUM_CLASSES).build(create_backbone("tiny", NUM_CLASSES, 32)).eval()
    x, y = torch.randn(6, 3, 32, 32), torch.randint(0, NUM_CLASSES, (6,))
    loss, logits = abn.loss(Batch(x, y, torch.arange(6)))
    att, per, _ = abn.forward_all(x)
    ce = torch.nn.functional.cross_entropy
    torch.testing.assert_close(loss, ce(att, y) + ce(per, y))
    torch.testing.assert_close(logits, per)


@pytest.mark.parametrize("backbone", ["tiny", "lenet5", "mobilenet", "efficientnet_b2", "timm:test_resnet"])
def test_abn_split_reproduces_backbone_and_keeps_resolution(backbone):
    torch.manual_seed(0)
    bb = create_backbone(backbone, NUM_CLASSES, 32, pretrained=False).eval()
    split = abn_split(bb)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        g = split.extractor(bb.resize(x))
        torch.testing.assert_close(split.perception(g), bb.features(x))  # the cut loses nothing
        att = split.attention_trunk(g)
    assert att.shape[-2:] == g.shape[-2:]  # attention trunk: stride 1 / "same" padding


@pytest.mark.parametrize("backbone", ["mobilenet", "efficientnet_b2"])
def test_abn_attention_trunk_starts_from_backbone_weights(backbone):
    bb = create_backbone(backbone, NUM_CLASSES, 32, pretrained=False)
    split = abn_split(bb)
    trunk = list(split.attention_trunk.parameters())
    original = list(split.perception.parameters())[:len(trunk)]
    assert all(torch.equal(a, b) for a, b in zip(trunk, original))
    assert trunk[0].data_ptr() != original[0].data_ptr()  # a copy, not shared


def test_abn_unknown_split_names_the_fix():
    bb = create_backbone("timm:test_vit", NUM_CLASSES, 32, pretrained=False)
    with pytest.raises(ValueError, match="register_abn_split"):
        abn_split(bb)


# -------------------------------------------------------------------------------------------------------- IMPACTX
def test_decoder_blocks_follow_image_size():
    assert decoder_blocks(32) == 3 and decoder_blocks(96) == 4  # 96 px: one more block (paper §4.3)
    z = torch.rand(2, 512)
    for size, channels in ((32, 3), (96, 1), (28, 3)):
        assert MapDecoder(512, channels, size, width=16)(z).shape == (2, channels, size, size)
    assert MapDecoder(512, 3, 32)(z).shape == (2, 3, 32, 32)  # the default width


def test_scale_maps_max_abs():
    maps = torch.randn(4, 3, 8, 8) * torch.tensor([1e-4, 1.0, 50.0, 0.0]).view(4, 1, 1, 1)
    scaled = scale_maps(maps)
    assert torch.allclose(scaled[:3].flatten(1).abs().amax(1), torch.ones(3))
    assert torch.equal(scaled[3], torch.zeros(3, 8, 8))
    assert torch.equal(scale_maps(maps, "raw"), maps)


def _built_impactx(lam: float):
    torch.manual_seed(0)
    m = create_backbone("tiny", NUM_CLASSES, 32)
    method = create_method("impactx", "tiny", NUM_CLASSES, lam=lam, decoder_width=16)
    method.build(m, m.with_new_head(latent_head(m.num_features)), 3, 32)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, NUM_CLASSES, (8,))
    return method, Batch(x, y, torch.arange(8), {"maps": scale_maps(torch.randn(8, 3, 32, 32))})


def test_lambda_scales_the_map_loss():
    method, batch = _built_impactx(1.0)
    ce, mse, _, _ = method.loss_terms(batch)
    for lam in (0.0, 0.4, 1.4):
        method.lam = lam
        torch.testing.assert_close(method.loss(batch)[0], ce + lam * mse)
    assert mse > 0


@pytest.mark.parametrize("lam", [0.0, 0.6])
def test_lambda_zero_gives_decoder_no_gradient(lam):
    method, batch = _built_impactx(lam)
    method.loss(batch)[0].backward()
    grads = [p.grad for p in method.decoder.parameters()]
    total = sum(float(g.abs().sum()) for g in grads if g is not None)
    if lam == 0:
        assert total == 0.0
    else:
        assert total > 0.0
    assert all(p.grad is None for p in method.m.parameters())  # M is frozen
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.head.parameters())


def test_impactx_stage2_leaves_m_bit_identical(data, store):
    """With a BatchNorm backbone: stage 2 changes neither M's weights nor its running statistics."""
    ctx = make_ctx(data, store, backbone="timm:test_efficientnet", pretrained=False)
    stage1, _ = ctx.stage1()
    before = {k: v.clone() for k, v in stage1.state_dict().items()}
    method = create_method("impactx", "timm:test_efficientnet", NUM_CLASSES, decoder_width=16)
    method.fit(make_ctx(data, store, backbone="timm:test_efficientnet", pretrained=False))
    after = method.m.state_dict()
    assert before.keys() == after.keys()
    assert any("running_mean" in k for k in after)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in method.m.parameters())
    lep_changed = any(not torch.equal(p, before[k]) for k, p in method.lep.state_dict().items()
                      if k in before and not k.startswith("head"))
    assert lep_changed  # LEP (initialised from stage 1) did train


def test_impactx_explain_is_decoder_of_lep_and_class_agnostic(data, store):
    method, _ = _built_impactx(1.0)
    method.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        a = method.explain(x, torch.tensor([0, 1, 2]))
        b = method.explain(x, torch.tensor([5, 5, 5]))
        torch.testing.assert_close(a, method.decoder(method.lep(x)))
    torch.testing.assert_close(a, b)


def test_impactx_input_gradient_flows_through_frozen_m():
    """Post-hoc gradient explainers applied to IMPACTX must see both branches (M is frozen, not detached)."""
    method, _ = _built_impactx(1.0)
    method.eval()
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    (full,) = torch.autograd.grad(method.predict(x)[:, 0].sum(), x)
    lep_only = method.head(torch.cat([method.m(x).detach(), method.lep(x)], dim=1))
    (partial,) = torch.autograd.grad(lep_only[:, 0].sum(), x)
    assert not torch.allclose(full, partial)


def test_shuffled_maps_are_a_seeded_permutation(data, store):
    ctx = make_ctx(data, store)
    stage1, key = ctx.stage1()
    teacher = scale_maps(ctx.teacher_maps(stage1, key))
    plain = create_method("impactx", "tiny", NUM_CLASSES).target_maps(ctx, teacher)
    assert torch.equal(plain, teacher)
    shuffled = create_method("impactx-shuffled", "tiny", NUM_CLASSES)
    a, b = shuffled.target_maps(ctx, teacher), shuffled.target_maps(ctx, teacher)
    assert torch.equal(a, b)  # seeded
    perm = shuffled.permutation(len(plain), ctx.seed)
    assert not torch.equal(perm, torch.arange(len(plain)))
    assert torch.equal(a, plain[perm])
    other = create_method("impactx-shuffled", "tiny", NUM_CLASSES, shuffle_seed=123).target_maps(ctx, teacher)
    assert not torch.equal(a, other)


def test_single_stage_refreshes_maps_per_chunk(data, store):
    method = create_method("impactx-single", "tiny", NUM_CLASSES, refresh_every=1, decoder_width=16)
    facts = method.fit(make_ctx(data, store, epochs=2, max_steps_per_epoch=1))
    assert len(facts["refresh_s"]) == 2
    assert [h["chunk"] for h in facts["fit"]["history"]] == [0, 1]
    assert any(p.requires_grad for p in method.m.parameters())  # M trains too
    assert facts["explainer"]["name"] == "saliency"  # default: the run's teacher explainer (make_ctx: saliency)


def test_single_stage_explainer_can_be_named():
    method = create_method("impactx-single", "tiny", NUM_CLASSES, explainer="occlusion",
                           explainer_options={"window": 8, "stride": 8})
    assert method.explainer.config()["window"] == 8
    with pytest.raises(KeyError, match="valid explainers"):
        create_method("impactx-single", "tiny", NUM_CLASSES, explainer="nosuch")


# ------------------------------------------------------------------------------------------------------------ WAE
def _hand_class_means(ctx, stage1, key):
    maps = ctx.teacher_maps(stage1, key)
    maps = maps / maps.flatten(1).abs().amax(1).view(-1, 1, 1, 1)
    train_idx, _ = validation_split(len(ctx.data.train), ctx.engine.cfg.val_fraction, ctx.engine.seed)
    labels = ctx.data.train.labels[train_idx]
    return torch.stack([maps[train_idx][labels == c].mean(0) if (labels == c).any() else torch.zeros_like(maps[0])
                         for c in range(NUM_CLASSES)])


def test_wae_test_map_is_probability_weighted_class_means(data, store):
    ctx = make_ctx(data, store)
    method = create_method("wae", "tiny", NUM_CLASSES)
    method.fit(ctx)
    stage1, key = ctx.stage1()
    means = _hand_class_means(ctx, stage1, key)
    x = data.normalize(data.test.images[:6])
    with torch.no_grad():
        p = torch.softmax(stage1(x), dim=1)
        hand = sum(p[:, c].view(-1, 1, 1, 1) * means[c] for c in range(NUM_CLASSES))
        torch.testing.assert_close(method.explain(x, data.test.labels[:6]), hand)
        torch.testing.assert_close(method.predict(x), method.classify(stage1.features(x), hand))


def test_wae_shap_test_map_is_probability_weighted_per_class_maps(data, store):
    ctx = make_ctx(data, store)
    method = create_method("wae-shap", "tiny", NUM_CLASSES, explainer="saliency", explainer_options={})
    method.fit(ctx)
    stage1, _ = ctx.stage1()
    x = data.normalize(data.test.images[:4])
    saliency = create_explainer("saliency")
    p = torch.softmax(stage1(x), dim=1).detach()
    hand = 0
    for c in range(NUM_CLASSES):
        phi = saliency.explain(stage1, x, torch.full((4,), c))
        hand = hand + p[:, c].view(-1, 1, 1, 1) * phi / phi.flatten(1).abs().amax(1).view(-1, 1, 1, 1)
    calls = []
    explain = method.explainer.explain
    method.explainer.explain = lambda *args: calls.append(1) or explain(*args)
    torch.testing.assert_close(method.explain(x, data.test.labels[:4]), hand)
    assert len(calls) == NUM_CLASSES  # one explainer call per class
    method.predict(x)
    assert len(calls) == NUM_CLASSES  # same images: the per-class maps are reused
    method.predict(x.flip(-1))
    assert len(calls) == 2 * NUM_CLASSES


def test_wae_shap_default_explainer_is_partition(data, store):
    method = create_method("wae-shap", "tiny", NUM_CLASSES, explainer_options={"max_evals": 40})
    assert method.explainer.name == "partition"
    method.fit(make_ctx(data, store))
    x = data.normalize(data.test.images[:2])
    maps = method.explain(x, data.test.labels[:2])
    assert maps.shape == (2, 3, 32, 32) and torch.isfinite(maps).all()
    assert torch.isfinite(method.predict(x)).all()


def test_wae_shap_gradient_explainer_works_under_inference_mode():
    """Accuracy and MoRF call predict() under no_grad / inference_mode; a gradient explainer must still work."""
    torch.manual_seed(0)
    method = create_method("wae-shap", "tiny", NUM_CLASSES, explainer="saliency")
    stage1 = create_backbone("tiny", NUM_CLASSES, 32)
    method.build(stage1, stage1.with_new_head(latent_head(stage1.num_features)), torch.rand(NUM_CLASSES, 3, 32, 32))
    method.eval()
    x = torch.randn(3, 3, 32, 32)
    expected = method.predict(x)
    method._last_maps = None
    with torch.inference_mode():
        got = method.predict(x)
    torch.testing.assert_close(got, expected)


# ------------------------------------------------------------------------------------------------- every method
LEARN_OPTIONS = {"wae-shap": {"explainer": "saliency", "explainer_options": {}},
                 "impactx-single": {"refresh_every": 3}}  # one chunk: fixed targets, comparable losses


@pytest.fixture(scope="module")
def learn_data():
    return load_dataset("synthetic").limit(train=200, test=20)


@pytest.mark.parametrize("name", list_methods())
def test_training_loss_decreases(name, learn_data, store):
    ctx = make_ctx(learn_data, store, epochs=3, batch_size=32, max_steps_per_epoch=5, augment=False, lr=3e-3)
    facts = create_method(name, "tiny", NUM_CLASSES, **LEARN_OPTIONS.get(name, {})).fit(ctx)
    fit = facts.get("stage2_fit") or facts.get("fit") or ctx.facts["stage1_fit"]  # baseline: its stage 1
    history = fit["history"]
    assert len(history) == 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]
