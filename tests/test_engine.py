import torch
from torch import nn

from benchmarks.engine import Engine, TrainConfig, accuracy, random_crop_flip, validation_split
from benchmarks.context import BackboneConfig, FitContext


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
