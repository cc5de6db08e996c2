"""A method plugin in one file: ``python -m benchmarks.run --plugin my_method --methods my-method,baseline``
(with this folder on ``PYTHONPATH``). It imports from ``methods`` only; everything a method needs is exported there.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from methods import Batch, FitContext, Method, create_explainer, register_method


@register_method("my-method")
class LabelSmoothing(Method):
    """The backbone trained with label-smoothed cross-entropy; saliency maps (a plugin example)."""

    def __init__(self, backbone: str, num_classes: int, *, smoothing: float = 0.1, **cfg) -> None:
        super().__init__(backbone, num_classes, **cfg)  # options are keyword-only; unknown ones are rejected
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"my-method: smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing

    def fit(self, ctx: FitContext) -> dict:
        """Train through the shared engine (same optimiser, epochs, validation checkpoint as every method)."""
        self.model = ctx.build_backbone()

        def loss(batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
            logits = self.model(batch.x)
            return F.cross_entropy(logits, batch.y, label_smoothing=self.smoothing), logits

        result = ctx.engine.fit(self.model, loss, ctx.data, desc="my-method")
        return {"fit": result.as_dict()}  # "fit" facts become val_accuracy / seconds / budget rows

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def explain(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return create_explainer("saliency").explain(self.model, x, target)
