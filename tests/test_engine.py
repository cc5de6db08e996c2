import time

import torch
from torch import nn

from methods.engine import Engine, TrainConfig, accuracy, random_crop_flip, validation_split
from methods.context import BackboneConfig, FitContext


def test_validation_split_is_seeded_and_disjoint():
    a_train, a_val = validation_split(100, 0.2, seed=3)
    b_train, b_val = validation_split(100, 0.2, seed=3)
    assert torch.equal(a_val, b_val) and len(a_val) == 20
    assert not set(a_train.tolist()) & set(a_val.tolist())
    assert sorted(a_train.tolist() + a_val.tolist()) == list(range(100))


def test_crop_flip_moves_maps_with_images():
    g = torch.Generator().manual_seed(0)
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    maps = images[:, :1].clone()
    out, extras = random_crop_flip(images, 2, g, {"maps": maps, "label_like": torch.ones(2)})
    assert out.shape == images.shape
    assert torch.equal(extras["maps"], out[:, :1])  # same geometric transform
    assert torch.equal(extras["label_like"], torch.ones(2))  # non-spatial extras untouched


def test_crop_without_shift_or_flip_is_identity():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 8, 8)
    out, _ = random_crop_flip(images, 0, g)
    # With padding 0, each image is either unchanged or mirrored.
    for i in range(4):
        assert torch.equal(out[i], images[i]) or torch.equal(out[i], images[i].flip(-1))


def test_best_on_validation_checkpoint_is_restored(small_synthetic):
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    engine = Engine(TrainConfig(epochs=3, lr=1e-2, val_fraction=0.2), seed=0, progress=False)

    def loss_fn(batch):
        logits = model(batch.x)
        return nn.functional.cross_entropy(logits, batch.y), logits

    result = engine.fit(model, loss_fn, small_synthetic)
    assert len(result.history) == 3
    best = max(h["val_accuracy"] for h in result.history)
    assert result.best_val_accuracy == best
    # The restored weights reproduce the best validation accuracy.
    _, val = validation_split(len(small_synthetic.train), 0.2, 0)
    assert abs(accuracy(model, small_synthetic, small_synthetic.train.subset(val)) - best) < 1e-6


def test_the_warm_rate_leaves_out_the_first_epoch(small_synthetic):
    """bench_pipeline compares eager and compiled steps on their steady rate: a one-off cost in the first epoch
    (here a 0.3 s pause standing in for compilation) is in ``images_per_s`` but not in ``warm_images_per_s``."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    calls = []

    def loss_fn(batch):
        if not calls:
            time.sleep(0.3)
        calls.append(1)
        logits = model(batch.x)
        return nn.functional.cross_entropy(logits, batch.y), logits

    two = Engine(TrainConfig(epochs=2, max_steps_per_epoch=2, val_fraction=0.2), seed=0, progress=False)
    result = two.fit(model, loss_fn, small_synthetic)
    assert result.warm_images_per_s > 3 * result.images_per_s
    calls.clear()
    one = Engine(TrainConfig(epochs=1, max_steps_per_epoch=2, val_fraction=0.2), seed=0, progress=False)
    result = one.fit(model, loss_fn, small_synthetic)
    assert result.warm_images_per_s == result.images_per_s


def test_same_seed_same_weights(small_synthetic):
    def train():
        ctx = FitContext(small_synthetic, Engine(TrainConfig(epochs=1, max_steps_per_epoch=3), seed=5,
                                                 progress=False), BackboneConfig("tiny"), seed=5)
        model, _ = ctx.stage1()
        return model.state_dict()

    a, b = train(), train()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stage1_is_trained_once_per_cell(small_synthetic):
    ctx = FitContext(small_synthetic, Engine(TrainConfig(epochs=1, max_steps_per_epoch=2), progress=False),
                     BackboneConfig("tiny"))
    first, key1 = ctx.stage1()
    second, key2 = ctx.stage1()
    assert key1 == key2 and len(ctx.artifacts.created) == 1


def test_compiled_training_matches_eager_and_shares_cache_keys(tiny_synthetic):
    """train.compile runs the loss through torch.compile: the same weights up to float rounding, the same keys."""
    import dataclasses

    import torch.nn.functional as F

    from methods.backbones import create_backbone

    results = {}
    for compile_ in (False, True):
        torch.manual_seed(0)
        model = create_backbone("tiny", tiny_synthetic.num_classes, tiny_synthetic.image_size)
        cfg = TrainConfig(epochs=2, batch_size=32, val_fraction=0.25, compile=compile_)
        Engine(cfg, seed=0, progress=False).fit(model, lambda b: (F.cross_entropy(out := model(b.x), b.y), out),
                                                tiny_synthetic)
        results[compile_] = torch.cat([p.detach().flatten() for p in model.parameters()])
    eager, compiled = results[False], results[True]
    scale = float(eager.abs().max())
    assert float((eager - compiled).abs().max()) <= 1e-4 * scale
    assert not torch.equal(eager, torch.cat([p.detach().flatten() for p in create_backbone(
        "tiny", tiny_synthetic.num_classes, tiny_synthetic.image_size).parameters()]))  # it did train
    cfg = TrainConfig()
    assert cfg.key_dict() == dataclasses.replace(cfg, compile=True).key_dict()


def test_a_failing_compiler_falls_back_to_eager_with_a_warning(tiny_synthetic, monkeypatch, caplog):
    import torch.nn.functional as F

    from methods.backbones import create_backbone

    def broken(fn, *args, **kwargs):
        def run(*a, **k):
            raise RuntimeError("inductor: no C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    model = create_backbone("tiny", tiny_synthetic.num_classes, tiny_synthetic.image_size)
    cfg = TrainConfig(epochs=1, batch_size=32, val_fraction=0.25, compile=True)
    with caplog.at_level("WARNING"):
        fit = Engine(cfg, seed=0, progress=False).fit(
            model, lambda b: (F.cross_entropy(out := model(b.x), b.y), out), tiny_synthetic)
    assert "torch.compile failed" in caplog.text and "no C++ compiler" in caplog.text
    assert fit.images_seen > 0
