"""The baseline: the backbone fine-tuned with cross-entropy (= IMPACTX's stage-1 model A); maps post hoc."""
from __future__ import annotations

from typing import Any

import torch

from methods.base import Method
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
