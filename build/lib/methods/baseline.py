"""The baseline (the backbone fine-tuned with cross-entropy = IMPACTX's stage-1 model A) and its equal-budget
control ``baseline-long`` (the same model trained as long as IMPACTX's trunk); maps post hoc."""
from __future__ import annotations

from typing import Any

import torch

from methods.base import Method
from methods.blocks import check_stage2_options, stage2_engine
from methods.explainers import create_explainer
from methods.registry import register_method


@register_method("baseline")
class Baseline(Method):
    """The backbone trained with cross-entropy alone; its maps come from a post-hoc explainer (``explainer``)."""

    uses_stage1 = True

    def __init__(self, backbone: str, num_classes: int, *, explainer: str = "saliency",
                 explainer_options: dict[str, Any] | None = None, **cfg: Any) -> None:
        super().__init__(backbone, num_classes, **cfg)
        self.explainer = create_explainer(explainer, **(explainer_options or {}))
        self.model: torch.nn.Module | None = None

    def fit(self, ctx) -> dict[str, Any]:
        self.model, key = ctx.stage1()
        return {"stage1_key": key}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def explain(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.explainer.explain(self.model, x, target)


@register_method("baseline-long")
class BaselineLong(Baseline):
    """The baseline trained as long as IMPACTX's trunk: the stage-1 model, E more epochs of cross-entropy alone.

    The equal-budget control of two-stage methods: IMPACTX's LEP starts from the stage-1 weights and trains another
    stage, so its trunk sees about twice the baseline's epochs. This continues the stage-1 model with a fresh
    optimiser and the same schedule, augmentation and best-on-validation selection as IMPACTX's stage 2 (``epochs``,
    ``augment``, ``lr``: None = the run's ``train.*``, as for IMPACTX; set them alike for a like-for-like budget).
    """

    def __init__(self, backbone: str, num_classes: int, *, epochs: int | None = None, augment: bool | None = None,
                 lr: float | None = None, **cfg: Any) -> None:
        super().__init__(backbone, num_classes, **cfg)
        check_stage2_options(epochs, augment, lr)
        self.stage2 = {"epochs": epochs, "augment": augment, "lr": lr}

    def fit(self, ctx) -> dict[str, Any]:
        stage1, key = ctx.stage1()
        for p in stage1.parameters():
            p.requires_grad_(True)
        self.model = stage1.train()
        engine = stage2_engine(ctx.engine, **self.stage2)
        result = engine.fit(self.model, lambda b: _cross_entropy(self.model, b), ctx.data,
                            desc=f"{self.name} {ctx.backbone.name}")
        return {"stage1_key": key, "stage2_fit": result.as_dict()}


def _cross_entropy(model: torch.nn.Module, batch) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(batch.x)
    return torch.nn.functional.cross_entropy(logits, batch.y), logits
