"""Map fidelity: closed-form references, and a decoder that must beat the per-class mean map on `synthetic`."""
from __future__ import annotations

import pytest
import torch

from methods.map_fidelity import fidelity, reference_mses


def test_reference_mses_match_a_hand_computation():
    target = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 1.0]]], [[[1.0, 1.0]]]])  # [3, 1, 1, 2]
    labels = torch.tensor([0, 1, 1])
    mean_map = torch.tensor([[[0.5, 0.5]]])
    class_means = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 1.0]]]])
    refs = reference_mses(target, labels, mean_map, class_means)
    assert refs["map_mse/zero"] == pytest.approx(4 / 6)
    assert refs["map_mse/mean"] == pytest.approx(6 * 0.25 / 6)
    assert refs["map_mse/class_mean"] == pytest.approx(1 / 6)  # only the third image differs, by 1 in one pixel
    assert fidelity(1 / 12, 1 / 6) == pytest.approx(0.5)
    assert fidelity(1 / 6, 1 / 6) == 0.0 and fidelity(0.2, 0.1) < 0
    assert fidelity(0.1, 0.0) != fidelity(0.1, 0.0)  # NaN when the class means are exact


@pytest.mark.slow
def test_impactx_decoder_learns_image_specific_maps_on_synthetic(synthetic, one_thread):
    """On `synthetic` the class lives in a template pasted at a random place, so the teacher maps move from image to
    image and the per-class mean map is blurred: a decoder that reads the image must beat it (fidelity > 0)."""
    from core.artifacts import ArtifactStore
    from methods.context import BackboneConfig, FitContext, TeacherConfig
    from methods.engine import Engine, TrainConfig
    from methods.registry import create_method

    engine = Engine(TrainConfig(epochs=10, batch_size=64, lr=2e-3, augment=False, val_fraction=0.2), seed=0,
                    progress=False)
    ctx = FitContext(synthetic, engine, BackboneConfig("lenet5"), seed=0,
                     teacher=TeacherConfig("occlusion", {}, batch_images=500), artifacts=ArtifactStore(None))
    facts = create_method("impactx", "lenet5", synthetic.num_classes, decoder="small", epochs=15).fit(ctx)
    curve = [h["map_fidelity"] for h in facts["stage2_fit"]["history"]]
    assert curve[-1] > 0.03, curve  # measured here: rises from ~0 to ~0.1 over 15 epochs
    assert curve[-1] > curve[0]
    assert 0 < facts["metrics"]["map_grad_share"] < 1
