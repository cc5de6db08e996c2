"""The one interface every method implements, and its shape contract.

Bind the model, pass the data (captum style): a trained method maps a *normalised* batch ``x`` [B, 3, H, W] to
``predict(x) -> logits [B, K]`` and ``explain(x, target) -> maps [B, C, H, W]`` at input resolution (C = 1 or 3).
Training goes through :meth:`fit`, which receives a :class:`methods.context.FitContext`: the data, the shared
training engine, and cached upstream artifacts (the stage-1 model, teacher maps).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from methods.context import FitContext


class Method(nn.Module):
    """Base class of registered methods. Subclasses set their own modules in ``fit``."""

    name: ClassVar[str] = "?"
    #: True for methods that consume teacher maps of the stage-1 model (so runners can share that work).
    uses_teacher_maps: ClassVar[bool] = False
    #: True for methods that start from the stage-1 (baseline) model of the same cell.
    uses_stage1: ClassVar[bool] = False
    #: False when a post-hoc explainer on top of ``predict`` is unaffordable (``predict`` itself runs an explainer:
    #: SHAP of it would cost max_evals predictions per image); explanation tables then omit that map source.
    post_hoc_explainable: ClassVar[bool] = True
    #: At most this many test images get their maps scored with MoRF (None: the run's ``explanation_images``);
    #: for methods whose every prediction is expensive.
    max_explanation_images: ClassVar[int | None] = None

    def __init__(self, backbone: str, num_classes: int, **cfg: Any) -> None:
        super().__init__()
        self.backbone_name = backbone
        self.num_classes = num_classes
        if cfg:
            raise TypeError(f"method {self.name!r} got unknown options {sorted(cfg)}; "
                            f"valid: {sorted(self.option_names())}")

    @classmethod
    def option_names(cls) -> set[str]:
        """Keyword options accepted by this method's constructor (for validating ``--set method.<name>.<key>``)."""
        import inspect

        names: set[str] = set()
        for klass in cls.__mro__:
            if klass in (Method, nn.Module, object):
                continue
            params = inspect.signature(klass.__init__).parameters
            names |= {p for p, v in params.items() if v.kind is v.KEYWORD_ONLY}
        return names

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        """Every keyword option with its constructor default (a subclass's default wins): what a cache key must
        hold so that changing a default retrains the cells that relied on it."""
        import inspect

        defaults: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if klass in (Method, nn.Module, object):
                continue
            params = inspect.signature(klass.__init__).parameters
            defaults.update({p: v.default for p, v in params.items() if v.kind is v.KEYWORD_ONLY})
        return defaults

    def fit(self, ctx: "FitContext") -> dict[str, Any]:
        """Train on ``ctx.data`` with ``ctx.engine``; return a small dict of facts worth recording.

        Facts that become rows (``benchmarks.grid.fit_rows``): every ``<stage>_fit`` dict (``FitResult.as_dict()``)
        gives ``val_accuracy/<stage>`` and ``seconds/<stage>``, the last one ``val_accuracy`` (what grids select
        on), and together the training budget ``budget/epochs`` and ``budget/images`` (summed over the stages,
        the shared stage-1 model included when the method used it); ``"metrics"``: {name: number} gives one row
        each (direction from its declared score, :mod:`core.scores`; ``info`` when undeclared). Everything else is
        stored with the cell but not tabulated."""
        raise NotImplementedError

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits) [B, K] for a normalised batch."""
        raise NotImplementedError

    def explain(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Attribution maps [B, C, H, W] at input resolution for the class ``target`` [B] of each image."""
        raise NotImplementedError

    def classifier(self) -> nn.Module:
        """The trained model as a plain module ``x -> logits`` (what post-hoc explainers and MoRF query)."""
        return _PredictModule(self)


class _PredictModule(nn.Module):
    def __init__(self, method: Method) -> None:
        super().__init__()
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.method.predict(x)


def check_map_shape(maps: torch.Tensor, x: torch.Tensor) -> None:
    """The shape contract of ``explain``: [B, 1 or C, H, W] matching ``x``."""
    if maps.ndim != 4 or maps.shape[0] != x.shape[0] or maps.shape[1] not in (1, x.shape[1]) \
            or maps.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"explain() must return [B, 1|C, H, W] = [{x.shape[0]}, 1|{x.shape[1]}, "
                         f"{x.shape[2]}, {x.shape[3]}], got {tuple(maps.shape)}")
