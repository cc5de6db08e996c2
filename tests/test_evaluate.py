"""MoRF curves, area scores, ground-truth scores, evaluate_explanations (benchmarks.evaluate, .explanation_quality)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import evaluate as ev
import benchmarks.scores  # noqa: F401  (declares every score)
from benchmarks.evaluate import (MorfConfig, aopc, area_scores, deletion_auc, ground_truth_scores, morf_curves,
                                 morf_order, random_curves, region_grid, region_occlusion_maps, region_relevance)
from core.scores import SCORES, direction, names_of_kind
from datasets import load_dataset
from datasets.base import Split
from methods.backbones import create_backbone


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


class TemplateModel(nn.Module):
    """Hand-built classifier for ``synthetic`` that looks only at the class template: logit_c = −min over 8x8
    windows of the squared distance to template c (raw pixels), divided by a temperature."""

    def __init__(self, data, temperature: float = 2.0) -> None:
        super().__init__()
        self.data = data
        self.register_buffer("templates", data.extra["templates"].float())  # [K, 3, 8, 8]
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = self.data.denormalize(x)
        t = self.templates
        cross = F.conv2d(raw, t)  # [B, K, h, w]
        sq = F.conv2d(raw * raw, torch.ones_like(t[:1]))  # [B, 1, h, w]
        dist = sq - 2 * cross + (t * t).sum((1, 2, 3)).view(1, -1, 1, 1)
        return -dist.flatten(2).min(2).values / self.temperature


@pytest.fixture(scope="module")
def template_model(synthetic):
    return TemplateModel(synthetic).eval()


def _lenet(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_backbone("lenet5", 10, 32).eval()


# --------------------------------------------------------------------------------------------------------- regions
def test_region_grid_default_gives_64_regions_at_32_and_96_px():
    for size, region in ((32, 4), (96, 12)):
        assert MorfConfig().resolve_region_size(size) == region
        ids, count = region_grid(size, size, region)
        assert count == 64
        assert ids.shape == (size, size)
        assert torch.bincount(ids.flatten()).tolist() == [region * region] * 64
    ids, count = region_grid(10, 10, 4)  # non-dividing size: smaller last row/column of regions, nothing dropped
    assert count == 9 and ids[9, 9] == 8 and ids[0, 9] == 2


def test_region_relevance_is_the_signed_sum_over_region_and_channels():
    torch.manual_seed(0)
    maps = torch.randn(2, 3, 8, 8)
    rel = region_relevance(maps, 4)
    assert rel.shape == (2, 4)
    for b in range(2):
        for r, (y, x) in enumerate([(0, 0), (0, 4), (4, 0), (4, 4)]):
            assert rel[b, r] == pytest.approx(float(maps[b, :, y:y + 4, x:x + 4].sum()), abs=1e-5)
    one = region_relevance(maps[:, :1], 4)  # single-channel map works the same way
    assert torch.allclose(one[:, 0], maps[:, 0, :4, :4].sum((1, 2)), atol=1e-5)


def test_morf_order_is_descending_and_stable():
    rel = torch.tensor([[1.0, 3.0, 3.0, -2.0, 3.0, 0.0]])
    assert morf_order(rel).tolist() == [[1, 2, 4, 0, 5, 3]]


# ---------------------------------------------------------------------------------------------------------- curves
def _naive_curves(model, raw, target, maps, data, cfg: MorfConfig, index):
    """A slow, obviously-correct MoRF: per image, per step, replace the first k regions of the order and predict."""
    h = raw.shape[-1]
    size = cfg.resolve_region_size(h)
    ids, regions = region_grid(h, h, size)
    out = []
    for i in range(raw.shape[0]):
        order = morf_order(region_relevance(maps[i:i + 1], size))[0]
        noise = ev._noise(index[i:i + 1], tuple(raw.shape[1:]), cfg, 0, raw.device)[0]
        x = raw[i].float() / 255.0
        row = []
        with torch.no_grad():
            for k in range(regions + 1):
                mask = torch.isin(ids, order[:k])
                xk = torch.where(mask, noise, x)
                p = model(data.normalize(xk[None]))
                p = torch.softmax(p, 1) if cfg.score == "probability" else p
                row.append(float(p[0, target[i]]))
        out.append(row)
    return torch.tensor(out)


@pytest.mark.parametrize("baseline", ["uniform", 0.25])
def test_curves_match_a_naive_per_step_loop(synthetic, template_model, baseline):
    raw, y = synthetic.test.images[:3], synthetic.test.labels[:3]
    maps = torch.randn(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    cfg = MorfConfig(baseline=baseline, seed=5)
    index = torch.tensor([10, 20, 30])
    fast = morf_curves(template_model, raw, y, maps, normalize=synthetic, index=index, config=cfg)
    slow = _naive_curves(template_model, raw, y, maps, synthetic, cfg, index)
    assert fast.shape == (3, 65)
    assert torch.allclose(fast, slow, atol=1e-5)
    assert (fast[:, 0] - fast[:, -1]).abs().max() > 0.1  # the model reacts: the check is not vacuous


def test_curve_endpoints_and_logit_option(synthetic, template_model):
    raw, y = synthetic.test.images[:6], synthetic.test.labels[:6]
    maps = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        logits = template_model(synthetic.normalize(raw))
        full = template_model(synthetic.normalize(torch.full((6, 3, 32, 32), 0.5)))
    prob = morf_curves(template_model, raw, y, maps, normalize=synthetic, baseline=0.5)
    assert torch.allclose(prob[:, 0], torch.softmax(logits, 1)[torch.arange(6), y], atol=1e-6)
    assert torch.allclose(prob[:, -1], torch.softmax(full, 1)[torch.arange(6), y], atol=1e-6)
    logit = morf_curves(template_model, raw, y, maps, normalize=synthetic, baseline=0.5, score="logit")
    assert torch.allclose(logit[:, 0], logits[torch.arange(6), y], atol=1e-5)
    # Every order ends at the fully replaced image: same last point for another map (same seeded noise).
    a = morf_curves(template_model, raw, y, maps, normalize=synthetic)
    b = morf_curves(template_model, raw, y, -maps, normalize=synthetic)
    assert torch.allclose(a[:, -1], b[:, -1], atol=1e-6) and not torch.allclose(a, b)


def test_curves_do_not_depend_on_batch_composition_or_chunking(synthetic, template_model):
    raw, y = synthetic.test.images[:12], synthetic.test.labels[:12]
    maps = torch.randn(12, 1, 32, 32)
    index = torch.arange(100, 112)
    full = morf_curves(template_model, raw, y, maps, normalize=synthetic, index=index)
    chunked = morf_curves(template_model, raw, y, maps, normalize=synthetic, index=index, chunk_size=100)
    part = morf_curves(template_model, raw[5:9], y[5:9], maps[5:9], normalize=synthetic, index=index[5:9])
    assert torch.allclose(full, chunked, atol=1e-6)
    assert torch.allclose(full[5:9], part, atol=1e-6)
    other_seed = morf_curves(template_model, raw, y, maps, normalize=synthetic, index=index, seed=1)
    assert not torch.allclose(full, other_seed)


def test_steps_region_size_and_noise_draw_options(synthetic, template_model):
    raw, y = synthetic.test.images[:4], synthetic.test.labels[:4]
    maps = torch.randn(4, 1, 32, 32)
    full = morf_curves(template_model, raw, y, maps, normalize=synthetic)
    short = morf_curves(template_model, raw, y, maps, normalize=synthetic, steps=10)
    assert short.shape == (4, 11) and torch.allclose(short, full[:, :11], atol=1e-6)
    assert morf_curves(template_model, raw, y, maps, normalize=synthetic, region_size=8).shape == (4, 17)
    three = morf_curves(template_model, raw, y, maps, normalize=synthetic, noise_draws=3)
    assert torch.allclose(three[:, 0], full[:, 0], atol=1e-6) and not torch.allclose(three, full)
    # A constant baseline has nothing random: more draws change nothing.
    c1 = morf_curves(template_model, raw, y, maps, normalize=synthetic, baseline=0.0)
    c3 = morf_curves(template_model, raw, y, maps, normalize=synthetic, baseline=0.0, noise_draws=3)
    assert torch.allclose(c1, c3, atol=1e-6)
    with pytest.raises(TypeError):
        morf_curves(template_model, raw, y, maps, normalize=synthetic, regions=3)
    with pytest.raises(ValueError):
        MorfConfig(score="margin")
    assert MorfConfig(baseline="0.5").baseline == 0.5  # from a command line
    with pytest.raises(ValueError):
        MorfConfig(baseline="gaussian")


class _ViewNet(nn.Module):
    """A model that ``.view()``s its activations: it cannot take channels-last input."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 32 * 32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        return self.fc(h.view(h.shape[0], -1))


def test_memory_layout_does_not_change_curves_and_view_models_work(synthetic):
    raw, y = synthetic.test.images[:5], synthetic.test.labels[:5]
    maps = torch.randn(5, 1, 32, 32)
    for model in (_lenet(), _ViewNet().eval()):
        cl = morf_curves(model, raw, y, maps, normalize=synthetic, channels_last=True, chunk_size=100)
        plain = morf_curves(model, raw, y, maps, normalize=synthetic, channels_last=False, chunk_size=100)
        assert torch.allclose(cl, plain, atol=1e-5)
    with pytest.raises(RuntimeError):
        _ViewNet()(synthetic.normalize(raw).contiguous(memory_format=torch.channels_last))  # the fallback was used


def test_model_training_flag_is_restored():
    model = _lenet().train()
    raw = torch.rand(2, 3, 32, 32)
    morf_curves(model, raw, torch.tensor([0, 1]), torch.rand(2, 1, 32, 32), steps=2)
    assert model.training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_curves_match_cpu(synthetic):
    model = _lenet()
    raw, y = synthetic.test.images[:8], synthetic.test.labels[:8]
    maps = torch.randn(8, 1, 32, 32)
    cpu = morf_curves(model, raw, y, maps, normalize=synthetic)
    gpu = morf_curves(model.cuda(), raw.cuda(), y.cuda(), maps.cuda(), normalize=synthetic)
    assert gpu.device.type == "cuda"
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)


# ------------------------------------------------------------------------------------------------------ area scores
def test_area_score_formulas_on_hand_made_curves():
    curves = torch.tensor([[1.0, 0.5, 0.0], [0.5, 0.5, 0.5], [0.8, 0.2, 0.2]])
    assert torch.allclose(aopc(curves), torch.tensor([0.5, 0.0, 0.4]))
    # trapezoid over x = 0, .5, 1 of f_k / f_0
    assert torch.allclose(deletion_auc(curves), torch.tensor([0.5, 1.0, 0.5 * (1.25 / 2 + 0.5 / 2)]))
    ref = torch.tensor([[1.0, 1.0, 0.0]] * 3)
    scores = area_scores(curves, ref)
    assert torch.allclose(scores["aopc_vs_random"], scores["aopc"] - aopc(ref))
    assert torch.allclose(scores["deletion_auc_vs_random"], scores["deletion_auc"] - 0.75)


def test_morf_scores_bundles_curves_and_the_random_reference(synthetic, template_model):
    raw, y = synthetic.test.images[:6], synthetic.test.labels[:6]
    maps = torch.randn(6, 1, 32, 32)
    out = ev.morf_scores(template_model, raw, y, maps, normalize=synthetic, steps=16)
    assert out["curves"].shape == out["random_curves"].shape == (6, 17)
    expected = area_scores(out["curves"], random_curves(template_model, raw, y, normalize=synthetic, steps=16))
    for key, value in expected.items():
        assert torch.allclose(out[key], value)


def test_every_metric_has_a_direction():
    assert direction("aopc/shap") == "higher" and direction("deletion_auc/own") == "lower"
    assert direction("aopc_vs_random") == "higher" and direction("deletion_auc_vs_random") == "lower"
    assert {SCORES.get(n).direction for n in names_of_kind("explanation")} == {"higher", "lower"}
    with pytest.raises(KeyError):
        direction("nonsense/own")


def test_ground_truth_scores_on_hand_made_maps():
    masks = torch.zeros(3, 1, 4, 4, dtype=torch.bool)
    masks[:, :, :2, :2] = True
    maps = torch.zeros(3, 1, 4, 4)
    maps[0, 0, 0, 0], maps[0, 0, 3, 3] = 3.0, 1.0  # 3/4 of the positive relevance inside, top pixel inside
    maps[1, 0, 3, 3], maps[1, 0, 0, 1] = 2.0, -5.0  # negative relevance is ignored; top pixel outside
    maps[2] = -1.0  # nothing positive: chance level (mask area 4/16); every pixel ties for the top: 4/16 inside
    scores = ground_truth_scores(maps, masks)
    assert torch.allclose(scores["mask_share"], torch.tensor([0.75, 0.0, 0.25]))
    assert scores["pointing_game"].tolist() == [1.0, 0.0, 0.25]


# ------------------------------------------------------------------------------------------------- sanity of MoRF
def test_random_map_scores_like_random_order_and_oracle_beats_it(synthetic, template_model):
    n = 300
    raw, y = synthetic.test.images[:n], synthetic.test.labels[:n]
    kw = dict(normalize=synthetic, seed=3, region_size=8)  # 16 regions: 4x cheaper, same question
    ref = random_curves(template_model, raw, y, **kw)
    rand_maps = ev.random_maps(torch.arange(n), (1, 32, 32), seed=99)
    rand = area_scores(morf_curves(template_model, raw, y, rand_maps, **kw), ref)
    oracle_maps = region_occlusion_maps(template_model, raw, y, **kw)
    oracle = area_scores(morf_curves(template_model, raw, y, oracle_maps, **kw), ref)
    rel = rand["aopc_vs_random"]
    sem = float(rel.std()) / n ** 0.5
    assert abs(float(rel.mean())) < 4 * sem + 1e-3
    assert float(oracle["aopc_vs_random"].mean()) > 0.05
    assert float(oracle["aopc_vs_random"].mean()) > float(rel.mean()) + 10 * sem
    assert float(oracle["deletion_auc_vs_random"].mean()) < float(rand["deletion_auc_vs_random"].mean())


def test_mask_first_map_beats_mask_last_map_on_synthetic(synthetic, template_model):
    n = 64
    raw, y, masks = synthetic.test.images[:n], synthetic.test.labels[:n], synthetic.test.masks[:n]
    assert (template_model(synthetic.normalize(raw)).argmax(1) == y).float().mean() > 0.9  # the model works
    first = area_scores(morf_curves(template_model, raw, y, masks.float(), normalize=synthetic))
    last = area_scores(morf_curves(template_model, raw, y, -masks.float(), normalize=synthetic))
    assert float(first["aopc"].mean()) > float(last["aopc"].mean()) + 0.2
    assert float(first["deletion_auc"].mean()) < float(last["deletion_auc"].mean()) - 0.2
    assert (first["aopc"] > last["aopc"]).float().mean() > 0.9


@pytest.mark.slow
def test_briefly_trained_model_prefers_the_mask_region(synthetic):
    """A real (briefly trained, ~55% accurate) model, not a hand-built one: removing the template first hurts it
    more than removing it last (measured: AOPC 0.22 vs 0.13)."""
    from methods.context import BackboneConfig, FitContext
    from methods.engine import Engine, TrainConfig, accuracy

    engine = Engine(TrainConfig(epochs=3, batch_size=32, lr=1e-2, augment=False), progress=False)
    model, _ = FitContext(synthetic, engine, BackboneConfig("tiny")).stage1()
    assert accuracy(model, synthetic, synthetic.test) > 0.3  # chance is 0.1
    split = synthetic.test
    raw, y, masks = split.images[:128], split.labels[:128], split.masks[:128]
    first = area_scores(morf_curves(model, raw, y, masks.float(), normalize=synthetic))
    last = area_scores(morf_curves(model, raw, y, -masks.float(), normalize=synthetic))
    assert float(first["aopc"].mean()) > float(last["aopc"].mean()) + 0.03


# ----------------------------------------------------------------------------------------- evaluate_explanations
def _baseline(data, own: str = "saliency"):
    from methods import create_method

    method = create_method("baseline", "tiny", data.num_classes, explainer=own)
    torch.manual_seed(0)
    method.model = create_backbone("tiny", data.num_classes, data.image_size).eval()
    return method


def test_evaluate_explanations_rows(synthetic):
    from benchmarks.explanation_quality import evaluate_explanations

    method = _baseline(synthetic)
    kwargs = dict(n_images=12, seed=0, explainer="occlusion", morf_options={"steps": 8})
    rows = evaluate_explanations(method, synthetic, **kwargs)
    names = {r["metric"] for r in rows}
    scores = ("aopc", "deletion_auc", "aopc_vs_random", "deletion_auc_vs_random", "mask_share", "pointing_game")
    assert names == {f"{s}/{src}" for s in scores for src in ("own", "occlusion", "random")}
    for r in rows:
        assert r["direction"] == SCORES.get(r["score"]).direction
        assert len(r["per_image"]) == r["n_images"] == 12
        assert r["value"] == pytest.approx(sum(r["per_image"]) / 12, abs=1e-6)
        assert r["explainer"] == "occlusion" and r["target"] == "label"
    again = evaluate_explanations(method, synthetic, **kwargs)
    assert [r["per_image"] for r in rows] == [r["per_image"] for r in again]  # seeded: reproducible
    no_masks = dataclasses.replace(synthetic, test=Split(synthetic.test.images[:40], synthetic.test.labels[:40]))
    plain = evaluate_explanations(method, no_masks, **kwargs)
    assert not any(r["score"] in ("mask_share", "pointing_game") for r in plain)
    predicted = evaluate_explanations(method, synthetic, **kwargs, target="predicted")
    assert {r["target"] for r in predicted} == {"predicted"}


def test_shap_explainers_are_named_shap():
    from benchmarks.explanation_quality import source_name

    assert source_name("partition") == "shap" and source_name("shap-partition") == "shap"
    assert source_name("occlusion") == "occlusion"
