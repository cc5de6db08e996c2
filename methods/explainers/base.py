"""The explainer interface and registry.

``create_explainer(name, **cfg).explain(model, x, target) -> Tensor[B, C, H, W]``: ``model`` maps a normalised
batch to class scores (logits), ``target`` is a LongTensor of class indices (one per image). ``output`` chooses
what is explained: ``"probability"`` (softmax of the scores, the default for teacher maps) or ``"logit"``.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, TypeVar

import torch
from torch import nn

from core.registry import Registry

EXPLAINERS: Registry[type] = Registry("explainer", ("methods.explainers.captum_explainers",
                                                   "methods.explainers.partition", "methods.explainers.shap_reference"))
T = TypeVar("T", bound=type)
OUTPUTS = ("probability", "logit")


def register_explainer(name: str) -> Callable[[T], T]:
    """Class decorator that registers an :class:`Explainer` subclass under ``name``."""
    return EXPLAINERS.register(name)


def list_explainers(pattern: str = "*") -> list[str]:
    return EXPLAINERS.names(pattern)


def create_explainer(name: str, **cfg: Any) -> "Explainer":
    return EXPLAINERS.get(name)(**cfg)


class Explainer:
    name: ClassVar[str] = "?"

    def __init__(self, output: str = "probability") -> None:
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.output = output

    def config(self) -> dict[str, Any]:
        """Everything that changes the maps (used in cache keys)."""
        return {"name": self.name, **{k: v for k, v in vars(self).items() if not k.startswith("_")}}

    def scores(self, model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        """``model`` wrapped to return what is explained (softmax probabilities or logits)."""
        if self.output == "logit":
            return model
        return lambda x: torch.softmax(model(x), dim=1)

    def explain(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
