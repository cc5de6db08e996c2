"""WAE: Weighted Average Explanation (Apicella et al., "SHAP-based explanations to improve classification systems",
XAI.it 2023) — a RECONSTRUCTION.

The original paper's text could not be obtained; this is the best-supported reconstruction from how the IMPACTX paper
describes it (docs/decisions.md#wae-reconstruction), not a verified reimplementation:

- Teacher maps φ_y(x) of the stage-1 model A on the training set w.r.t. the true class (the same cached maps as
  IMPACTX), each scaled by its max |value| by default (``map_scale``).
- An explanation encoder E (decided: the same trunk as IMPACTX's LEP, i.e. a copy of the backbone whose last layer is
  FC(512) + sigmoid) that takes the map as its input (a one-channel map is broadcast to 3 channels). Its output is
  concatenated with the frozen stage-1 features (``stage1_input="features"``, or its logits) and fed to a classifier
  head Linear(F + 512, 256) -> ReLU -> Linear(256, K). Training (CE only) feeds φ_y(x) of the true class.
- At test time the label is unknown, so E receives the weighted average explanation
  ê(x) = Σ_c p(c|x) · E_c(x), with p = softmax of the stage-1 model.
  ``wae``: E_c(x) = the class-mean training map of class c (computed over the engine's training portion, i.e.
  without the validation images; no explainer at inference).
  ``wae-shap``: E_c(x) = φ_c(x), per-image maps of A for every class at test time from ``explainer`` (default
  "partition" with few evaluations; any registered explainer works, e.g. "saliency"). Its validation accuracy during
  training uses the class-mean path (training is identical; explaining every class of every validation image each
  epoch would dominate the cost).
``explain`` returns ê(x), the map the classifier consumes (class-agnostic: ``target`` is not used).
"""
from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from methods.engine import Batch, validation_split
from methods.base import Method
from methods.blocks import (LATENT_DIM, MAP_SCALES, TRUNK_INITS, as_image_channels, check_choice,
                            check_stage2_options, freeze, latent_head, scale_maps, shallow_classifier, stage2_engine,
                            trunk_copy)
from methods.explainers import create_explainer
from methods.registry import register_method
from methods.teacher_maps import TeacherConfig, teacher_maps

STAGE1_INPUTS = ("features", "logits")


@register_method("wae")
class WAE(Method):
    """WAE (reconstructed): maps encoded next to the stage-1 features; test-time map = sum_c p(c|x) * E_c.

    Options: ``map_scale`` (``"max_abs"`` | ``"raw"``), ``encoder_init`` (``"pretrained"`` | ``"stage1"`` |
    ``"scratch"``; decided default "pretrained": E reads maps, not images), ``stage1_input``
    (``"features"`` | ``"logits"``); the second stage's own ``epochs``, ``augment``, ``lr`` (None: the run's
    ``train.*``)."""

    uses_stage1 = True
    uses_teacher_maps = True

    def __init__(self, backbone: str, num_classes: int, *, map_scale: str = "max_abs",
                 encoder_init: str = "pretrained", stage1_input: str = "features", epochs: int | None = None,
                 augment: bool | None = None, lr: float | None = None, **cfg: Any) -> None:
        super().__init__(backbone, num_classes, **cfg)
        check_stage2_options(epochs, augment, lr)
        self.stage2 = {"epochs": epochs, "augment": augment, "lr": lr}
        self.map_scale = check_choice("map_scale", map_scale, MAP_SCALES)
        self.encoder_init = check_choice("encoder_init", encoder_init, TRUNK_INITS)
        self.stage1_input = check_choice("stage1_input", stage1_input, STAGE1_INPUTS)
        self.stage1: nn.Module | None = None
        self.encoder: nn.Module | None = None
        self.head: nn.Module | None = None

    # ----------------------------------------------------------------------------------------------- modules
    def build(self, stage1: nn.Module, encoder: nn.Module, class_means: torch.Tensor) -> None:
        """Attach the frozen stage-1 model A, the encoder E, a fresh head, and the class-mean maps [K, C, H, W]."""
        self.stage1 = freeze(stage1)
        self.encoder = encoder
        self.register_buffer("class_means", class_means.float())
        width = stage1.num_features if self.stage1_input == "features" else self.num_classes
        self.head = shallow_classifier(width + LATENT_DIM, self.num_classes).to(class_means.device)

    def stage1_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(what the head receives from A, A's logits). A is frozen (no trainable parameters); no torch.no_grad, so
        gradient explainers applied to WAE still see the input gradient through A."""
        feats = self.stage1.features(x)
        logits = self.stage1.head(feats)
        return (feats if self.stage1_input == "features" else logits), logits

    def classify(self, s: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([s, self.encoder(as_image_channels(maps, 3))], dim=1))

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        s, _ = self.stage1_outputs(batch.x)
        logits = self.classify(s, batch.extras["maps"])
        return F.cross_entropy(logits, batch.y), logits

    # -------------------------------------------------------------------------------------------- test maps
    def class_weights(self, stage1_logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(stage1_logits, dim=1)

    def class_mean_map(self, p: torch.Tensor) -> torch.Tensor:
        """Σ_c p(c|x) · mean training map of class c."""
        return torch.einsum("bk,kchw->bchw", p, self.class_means)

    def test_maps(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """ê(x) for a batch (``wae``: class-mean maps)."""
        return self.class_mean_map(p)

    def weighted_map(self, x: torch.Tensor) -> torch.Tensor:
        _, logits = self.stage1_outputs(x)
        return self.test_maps(x, self.class_weights(logits))

    # -------------------------------------------------------------------------------------------- training
    @staticmethod
    def compute_class_means(maps: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Mean map per class [K, C, H, W] (zeros for a class without images)."""
        sums = torch.zeros(num_classes, *maps.shape[1:], device=maps.device).index_add_(0, labels, maps)
        counts = torch.bincount(labels, minlength=num_classes).clamp_min(1).to(maps.device)
        return sums / counts.view(-1, 1, 1, 1)

    def fit(self, ctx) -> dict[str, Any]:
        stage1, key = ctx.stage1()
        t0 = time.perf_counter()
        maps = scale_maps(ctx.teacher_maps(stage1, key), self.map_scale)
        maps_s = time.perf_counter() - t0
        train_idx, _ = validation_split(len(ctx.data.train), ctx.engine.cfg.val_fraction, ctx.engine.seed)
        train_idx = train_idx.to(maps.device)
        means = self.compute_class_means(maps[train_idx], ctx.data.train.labels[train_idx].to(maps.device),
                                         self.num_classes)
        encoder = trunk_copy(ctx, self.encoder_init, stage1, latent_head(stage1.num_features))
        self.build(stage1, encoder, means)
        engine = stage2_engine(ctx.engine, **self.stage2)
        result = engine.fit(self, self.loss, ctx.data, extras={"maps": maps}, predict=self.validation_predict,
                            freeze_eval=[self.stage1], desc=f"{self.name} {ctx.backbone.name}")
        return {"stage1_key": key, "maps_s": maps_s, "stage2_fit": result.as_dict()}

    def validation_predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.predict(x)

    # ------------------------------------------------------------------------------------------- inference
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        s, logits = self.stage1_outputs(x)
        return self.classify(s, self.test_maps(x, self.class_weights(logits)))

    def explain(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """ê(x), the weighted average explanation fed to E (``target`` is not used)."""
        return self.weighted_map(x)


@register_method("wae-shap")
class WAEShap(WAE):
    """WAE with E_c(x) = per-image maps of the stage-1 model for every class at test time (``explainer``).

    Every prediction runs the explainer once per class (K x max_evals model evaluations), so the runner scores its
    maps on at most 16 test images and computes no post-hoc SHAP map of it (SHAP of a model that runs SHAP would
    cost another max_evals predictions per image).
    """

    post_hoc_explainable = False
    max_explanation_images = 16

    def __init__(self, backbone: str, num_classes: int, *, explainer: str = "partition",
                 explainer_options: dict[str, Any] | None = None, **cfg: Any) -> None:
        super().__init__(backbone, num_classes, **cfg)
        if explainer_options is None:
            explainer_options = {"max_evals": 200} if explainer == "partition" else {}
        self.explainer_options = dict(explainer_options)
        self.explainer = create_explainer(explainer, **self.explainer_options)  # a bad name or option fails now
        # the whole batch in one call (as before); nothing is cached at test time (every batch is new)
        self.teacher = TeacherConfig(explainer, self.explainer_options, batch_images=1 << 30)

    def per_class_maps(self, x: torch.Tensor) -> torch.Tensor:
        """φ_c(x) for every class, scaled per map like the training maps: [B, K, C, H, W].

        The last batch's maps are kept: ``explain`` after ``predict`` on the same images costs no explainer call.
        """
        cached = getattr(self, "_last_maps", None)
        if cached is not None and cached[0].shape == x.shape and cached[0].device == x.device \
                and torch.equal(cached[0], x):
            return cached[1]
        maps = []
        # predict() may run under torch.no_grad / inference_mode (accuracy, MoRF); gradient explainers need autograd
        with torch.inference_mode(False), torch.enable_grad():
            xc = x.clone()  # a normal tensor even when x is an inference tensor
            for c in range(self.num_classes):
                target = torch.full((x.shape[0],), c, dtype=torch.long, device=x.device)
                phi, _ = teacher_maps(self.stage1, xc, target, self.teacher, explainer=self.explainer)
                maps.append(scale_maps(phi, self.map_scale))
        out = torch.stack(maps, dim=1)
        self._last_maps = (x.detach().clone(), out)
        return out

    def fit(self, ctx) -> dict[str, Any]:
        self._last_maps = None
        return super().fit(ctx)

    def test_maps(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bk,bkchw->bchw", p, self.per_class_maps(x))

    def validation_predict(self, x: torch.Tensor) -> torch.Tensor:
        s, logits = self.stage1_outputs(x)
        return self.classify(s, self.class_mean_map(self.class_weights(logits)))
