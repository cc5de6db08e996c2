"""Issue 16: the engine's crop + flip of teacher maps is the per-image pad / crop / flip of a naive loop (same
random draws), and the map losses of IMPACTX and WAE receive exactly those transformed maps during training."""
from __future__ import annotations

import pytest
import torch

import methods.engine as engine_module
from methods.engine import Engine, random_crop_flip

pytestmark = pytest.mark.usefixtures("one_thread")


def naive_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """One image at a time: zero canvas, paste, cut the window at the drawn offset, mirror if drawn. The draws are
    taken in the engine's order (offsets [2, B], then flips [B])."""
    b, c, h, w = images.shape
    shifts = torch.randint(0, 2 * padding + 1, (2, b), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5
    out = torch.empty_like(images)
    for i in range(b):
        canvas = torch.zeros(c, h + 2 * padding, w + 2 * padding, dtype=images.dtype)
        canvas[:, padding:padding + h, padding:padding + w] = images[i]
        dy, dx = int(shifts[0, i]), int(shifts[1, i])
        window = canvas[:, dy:dy + h, dx:dx + w]
        out[i] = window.flip(-1) if flips[i] else window
    return out


@pytest.mark.parametrize("padding,seed", [(4, 0), (2, 1), (1, 2)])
def test_crop_flip_of_images_and_maps_equals_a_naive_per_image_loop(padding, seed):
    g = torch.Generator().manual_seed(100 + seed)
    images = torch.randint(0, 256, (16, 3, 12, 10), generator=g, dtype=torch.uint8)
    maps = {"one": torch.randn(16, 1, 12, 10, generator=g), "three": torch.randn(16, 3, 12, 10, generator=g)}
    out, extras = random_crop_flip(images, padding, torch.Generator().manual_seed(seed), maps)
    for name, original in [("images", images), *maps.items()]:
        expected = naive_crop_flip(original, padding, torch.Generator().manual_seed(seed))
        got = out if name == "images" else extras[name]
        assert torch.equal(got, expected), name
    # the transform really did something: some images shifted, some mirrored
    changed = [not torch.equal(out[i], images[i]) for i in range(16)]
    mirrored = [torch.equal(out[i], images[i].flip(-1)) for i in range(16)]
    assert sum(changed) >= 8 and not all(mirrored)


def _spy_training(monkeypatch) -> tuple[list, list]:
    """Record the generator state before every augmentation that carries maps, and the maps each ``fit`` got."""
    draws, given = [], []
    real_crop, real_fit = engine_module.random_crop_flip, Engine.fit

    def crop(images, padding, generator, extras=None):
        if extras and "maps" in extras:
            draws.append((padding, generator.get_state().clone()))
        return real_crop(images, padding, generator, extras)

    def fit(self, module, loss_fn, data, **kwargs):
        if kwargs.get("extras"):
            given.append(kwargs["extras"]["maps"].detach().clone())
        return real_fit(self, module, loss_fn, data, **kwargs)

    monkeypatch.setattr(engine_module, "random_crop_flip", crop)
    monkeypatch.setattr(Engine, "fit", fit)
    return draws, given


def _check_received(received: list, draws: list, given: list) -> None:
    assert len(given) == 1 and len(received) == len(draws) > 0
    full = given[0]
    moved = 0
    for (index, maps), (padding, state) in zip(received, draws):
        generator = torch.Generator()
        generator.set_state(state)
        expected = naive_crop_flip(full[index.cpu()], padding, generator)
        assert torch.equal(maps.cpu(), expected)
        moved += not torch.equal(maps.cpu(), full[index.cpu()])
    assert moved == len(received)  # every batch's maps were transformed, none passed through untouched


def test_impactx_map_loss_receives_the_transformed_maps(tiny_ctx, monkeypatch):
    from methods.registry import create_method

    draws, given = _spy_training(monkeypatch)
    method = create_method("impactx", "tiny", tiny_ctx.data.num_classes).to(tiny_ctx.device)
    received, in_training = [], []
    real_loss, real_terms = method.loss, method.loss_terms

    def loss(batch):  # only the engine's training steps, not the fidelity probe's own calls
        in_training.append(True)
        try:
            return real_loss(batch)
        finally:
            in_training.pop()

    def loss_terms(batch):
        if in_training:
            received.append((batch.index.clone(), batch.extras["maps"].detach().clone()))
        return real_terms(batch)

    method.loss, method.loss_terms = loss, loss_terms
    method.fit(tiny_ctx)
    assert tiny_ctx.engine.cfg.augment
    _check_received(received, draws, given)


def test_wae_map_loss_receives_the_transformed_maps(tiny_ctx, monkeypatch):
    from methods.registry import create_method

    draws, given = _spy_training(monkeypatch)
    method = create_method("wae", "tiny", tiny_ctx.data.num_classes).to(tiny_ctx.device)
    received = []
    real_loss = method.loss

    def loss(batch):
        received.append((batch.index.clone(), batch.extras["maps"].detach().clone()))
        return real_loss(batch)

    method.loss = loss
    method.fit(tiny_ctx)
    _check_received(received, draws, given)
