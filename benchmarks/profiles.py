"""Presets as plain functions returning RunConfig fields; ``--profile NAME`` picks one, flags override it."""
from __future__ import annotations

from typing import Any, Callable

from methods.context import TeacherConfig
from methods.engine import TrainConfig

PAPER_METHODS = ("baseline", "impactx", "abn", "wae")
PAPER_LR_GRID = tuple(round(1e-4 + 5e-4 * i, 6) for i in range(20))  # [0.0001, 0.01] step 0.0005


def smoke() -> dict[str, Any]:
    """Minutes on a 2-core CPU: every registered method, LeNet-5, the embedded offline datasets."""
    return dict(
        methods=("*",), backbones=("lenet5",), datasets=("digits", "synthetic"), seeds=(0,),
        train=TrainConfig(epochs=8, batch_size=64, lr=2e-3, val_fraction=0.1, augment=False),
        teacher=TeacherConfig("partition", {"max_evals": 200}, batch_images=500),
        method_options={"wae-shap": {"explainer_options": {"max_evals": 100}}, "impactx-single": {"refresh_every": 4}},
        explanation_images=64, morf={"noise_draws": 1},
    )


def quick() -> dict[str, Any]:
    """Real CIFAR-10 with LeNet-5 and the paper's four methods; an hour-scale check on a GPU."""
    return dict(
        methods=PAPER_METHODS, backbones=("lenet5",), datasets=("cifar10",), seeds=(0,),
        train=TrainConfig(epochs=20, batch_size=64, lr=1e-3, val_fraction=0.1, augment=True),
        teacher=TeacherConfig("partition", {"max_evals": 500, "compile": True}, batch_images=1000),
        explanation_images=200, morf={"noise_draws": 1},
    )


def paper() -> dict[str, Any]:
    """The paper's grid: 4 methods x 3 backbones x 3 datasets, SHAP Partition 2000 evaluations, 3 seeds.

    Pretrained nets run at 224 (MobileNet) / 260 (EfficientNet-B2) px, resized inside the model wrapper.
    Epoch count is not given by the paper (decided: 30, best-on-validation checkpoint; docs/decisions.md).
    Teacher maps run the stage-1 model through torch.compile (same maps; falls back to eager with a warning where
    compiling fails).
    """
    return dict(
        methods=PAPER_METHODS, backbones=("lenet5", "mobilenet", "efficientnet_b2"),
        datasets=("cifar10", "cifar100", "stl10"), seeds=(0, 1, 2),
        train=TrainConfig(epochs=30, batch_size=32, lr=1e-3, val_fraction=0.1, augment=True),
        teacher=TeacherConfig("partition", {"max_evals": 2000, "compile": True}, batch_images=1000),
        input_size={"mobilenet": 224, "efficientnet_b2": 260},
        explanation_images=500, morf={"noise_draws": 10},
        # Paper Table 1: 3 x 20 x 3 = 180 stage-1 trainings per cell (each cached); --no-tune drops the searches.
        stage1_grid={"batch_size": (16, 32, 64), "lr": PAPER_LR_GRID, "val_fraction": (0.05, 0.1, 0.2)},
        method_grid={"impactx": {"lam": (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4)}},
    )


PROFILES: dict[str, Callable[[], dict[str, Any]]] = {"smoke": smoke, "quick": quick, "paper": paper}
