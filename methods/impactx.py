"""IMPACTX (Apicella et al., arXiv 2502.12222, §3 and §4.3) and its single-stage variant and ablations.

Two branches on the same input x: the top branch M (the stage-1 classifier A up to its K class scores, m = M(x)) and
the bottom branch LEP (a copy of A whose last layer is FC(512) + sigmoid, z = LEP(x)) followed by a decoder D that
reconstructs the teacher attribution map, r̂ = D(z). A shallow classifier C predicts from [m, z]. Loss (eq. 1):
``CE(y, C(m, z)) + lam * MSE(r, D(LEP(x)))``. ``explain`` returns D(LEP(x)): no explainer call, class-agnostic.

Registered methods:

- ``impactx``: the paper's two-stage training. Stage 1 = the shared baseline model (``ctx.stage1()``), teacher maps of
  it w.r.t. the true labels (``ctx.teacher_maps``), stage 2 trains LEP, D, C with M frozen (no gradient, BatchNorm in
  eval mode). Maps are spatial extras of the engine, so they get the same crop / flip as their images.
- ``impactx-single``: all of M, LEP, D, C trained together from the fresh backbone; the teacher maps are recomputed
  from the current M every ``refresh_every`` epochs with a batched explainer (the paper describes this but does not
  run it).
- ``impactx-nolambda`` (ablation): lam = 0, the bottom branch's capacity without the explanations.
- ``impactx-shuffled`` (ablation): the teacher maps permuted across training images (seeded), i.e. explanations
  that do not belong to their images.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from methods.engine import Batch
from methods.base import Method
from methods.blocks import (DECODER_PRESETS, LATENT_DIM, MAP_SCALES, check_choice, check_stage2_options, freeze,
                            latent_head, make_decoder, scale_maps, shallow_classifier, stage2_engine, trunk_copy)
from methods.map_fidelity import MapFidelityProbe
from methods.explainers import create_explainer
from methods.registry import register_method
from methods.teacher_maps import TeacherConfig


@register_method("impactx")
class IMPACTX(Method):
    """Two-stage IMPACTX: frozen stage-1 M + LEP/decoder trained to reproduce teacher maps, classifier on both.

    Options: ``lam`` (λ of eq. 1), ``map_scale`` (``"max_abs"`` | ``"raw"``), ``lep_init``
    (``"stage1"`` | ``"pretrained"`` | ``"scratch"``); the decoder: ``decoder`` (preset ``"paper"`` | ``"small"`` |
    ``"tiny"``), ``decoder_width`` (filters of D's first block), ``decoder_start`` (side of D's first map),
    ``decoder_blocks``; stage 2's own ``epochs``, ``augment``, ``lr`` (None: the run's ``train.*``).

    Map fidelity (did D learn anything image-specific?) is measured on the validation images' teacher maps after
    every stage-2 epoch and at the end (:mod:`methods.map_fidelity`) and becomes rows."""

    uses_stage1 = True
    uses_teacher_maps = True

    def __init__(self, backbone: str, num_classes: int, *, lam: float = 1.0, map_scale: str = "max_abs",
                 lep_init: str = "stage1", decoder: str = "tiny", decoder_width: int | None = None,
                 decoder_start: int | None = None, decoder_blocks: int | None = None, epochs: int | None = None,
                 augment: bool | None = None, lr: float | None = None, **cfg: Any) -> None:
        super().__init__(backbone, num_classes, **cfg)
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam >= 0:
            raise ValueError(f"lam must be a number >= 0, got {lam!r}")
        self.lam = float(lam)
        self.map_scale = check_choice("map_scale", map_scale, MAP_SCALES)
        self.lep_init = check_choice("lep_init", lep_init, self.lep_inits())
        self.decoder_preset = check_choice("decoder", decoder, tuple(DECODER_PRESETS))
        self.decoder_width, self.decoder_start, self.decoder_blocks = decoder_width, decoder_start, decoder_blocks
        check_stage2_options(epochs, augment, lr)
        self.stage2 = {"epochs": epochs, "augment": augment, "lr": lr}
        self.frozen_m = True
        self.m: nn.Module | None = None
        self.lep: nn.Module | None = None
        self.decoder: nn.Module | None = None
        self.head: nn.Module | None = None

    @classmethod
    def lep_inits(cls) -> tuple[str, ...]:
        return ("stage1", "pretrained", "scratch")

    # ----------------------------------------------------------------------------------------------- modules
    def build(self, m: nn.Module, lep: nn.Module, map_channels: int, image_size: int, frozen_m: bool = True) -> None:
        """Attach M (a backbone giving K scores), LEP (a backbone whose head gives 512 sigmoid units), a fresh D
        and C. With ``frozen_m`` M gets no gradient (stage 2)."""
        self.frozen_m = frozen_m
        self.m = freeze(m) if frozen_m else m
        self.lep = lep
        device = next(lep.parameters()).device
        self.decoder = make_decoder(self.decoder_preset, map_channels, image_size, self.decoder_width,
                                    self.decoder_start, self.decoder_blocks).to(device)
        self.head = shallow_classifier(self.num_classes + LATENT_DIM, self.num_classes).to(device)

    def scores_m(self, x: torch.Tensor) -> torch.Tensor:
        # No torch.no_grad here: a frozen M has no trainable parameters, so training builds no graph through it
        # anyway, while gradient explainers applied to IMPACTX must still see the input gradient through M.
        return self.m(x)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits of C, D(LEP(x)), M(x))."""
        m = self.scores_m(x)
        z = self.lep(x)
        return self.head(torch.cat([m, z], dim=1)), self.decoder(z), m

    def loss_terms(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(CE, MSE, logits, M's logits) of eq. 1 for a batch whose extras hold the target ``maps``."""
        logits, recon, m = self.forward_all(batch.x)
        ce = F.cross_entropy(logits, batch.y)
        target = batch.extras["maps"]
        mse = F.mse_loss(recon, target.expand_as(recon) if target.shape[1] == 1 else target)
        return ce, mse, logits, m

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 1: CE + lam * MSE."""
        ce, mse, logits, _ = self.loss_terms(batch)
        return ce + self.lam * mse, logits

    # -------------------------------------------------------------------------------------------- training
    def target_maps(self, ctx, teacher: torch.Tensor) -> torch.Tensor:
        """What stage 2 trains D on, given the scaled teacher maps of every training image (here: those maps)."""
        return teacher

    def fit(self, ctx) -> dict[str, Any]:
        stage1, key = ctx.stage1()
        t0 = time.perf_counter()
        teacher = scale_maps(ctx.teacher_maps(stage1, key), self.map_scale)
        maps = self.target_maps(ctx, teacher)
        maps_s = time.perf_counter() - t0
        lep = trunk_copy(ctx, self.lep_init, stage1, latent_head(stage1.num_features))
        self.build(stage1, lep, maps.shape[1], ctx.data.image_size, frozen_m=True)
        engine = stage2_engine(ctx.engine, **self.stage2)
        probe = MapFidelityProbe(self, ctx.data, teacher, engine, targets=maps)
        result = engine.fit(self, self.loss, ctx.data, extras={"maps": maps}, predict=self.predict,
                            freeze_eval=[self.m], desc=f"{self.name} stage-2 {ctx.backbone.name}",
                            on_epoch_end=probe.epoch_record)
        return {"stage1_key": key, "maps_s": maps_s, "lam": self.lam, "stage2_fit": result.as_dict(),
                "metrics": probe.final_metrics()}

    # ------------------------------------------------------------------------------------------- inference
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.scores_m(x), self.lep(x)], dim=1))

    def explain(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """r̂ = D(LEP(x)) (class-agnostic: ``target`` is not used)."""
        return self.decoder(self.lep(x))


@register_method("impactx-nolambda")
class IMPACTXNoLambda(IMPACTX):
    """Ablation: IMPACTX with lam = 0 (the bottom branch's extra capacity, no explanation signal)."""

    def __init__(self, backbone: str, num_classes: int, **cfg: Any) -> None:
        if "lam" in cfg:
            raise TypeError("impactx-nolambda fixes lam = 0; use 'impactx' to set lam")
        super().__init__(backbone, num_classes, lam=0.0, **cfg)

    @classmethod
    def option_names(cls) -> set[str]:
        return super().option_names() - {"lam"}


@register_method("impactx-shuffled")
class IMPACTXShuffled(IMPACTX):
    """Ablation: teacher maps permuted across training images with a seeded permutation (``shuffle_seed``; default
    the run seed), so each image is paired with another image's explanation."""

    def __init__(self, backbone: str, num_classes: int, *, shuffle_seed: int | None = None, **cfg: Any) -> None:
        super().__init__(backbone, num_classes, **cfg)
        self.shuffle_seed = shuffle_seed

    def permutation(self, n: int, seed: int) -> torch.Tensor:
        s = self.shuffle_seed if self.shuffle_seed is not None else seed
        return torch.randperm(n, generator=torch.Generator().manual_seed(int(s)))

    def target_maps(self, ctx, teacher: torch.Tensor) -> torch.Tensor:
        return teacher[self.permutation(teacher.shape[0], ctx.seed).to(teacher.device)]


@register_method("impactx-single")
class IMPACTXSingle(IMPACTX):
    """Single-stage IMPACTX: M, LEP, D, C trained together from the fresh backbone; teacher maps of the current M
    (true labels) recomputed every ``refresh_every`` epochs with ``explainer`` (default: the run's teacher explainer
    and options, i.e. the same kind of maps two-stage IMPACTX learns from; any registered explainer can be named).

    Decided (the paper gives no recipe): ``m_loss_weight`` adds CE(y, M(x)) so that M stays a classifier A whose
    explanations w.r.t. a class mean something (0 = eq. 1 alone); LEP starts as a copy of the backbone's default
    (pretrained) weights. Each refresh chunk is one ``Engine.fit`` call: the optimiser state restarts and the best
    validation epoch of the chunk is kept before the maps are recomputed.
    """

    uses_stage1 = False
    uses_teacher_maps = False

    def __init__(self, backbone: str, num_classes: int, *, refresh_every: int = 5, explainer: str | None = None,
                 explainer_options: dict[str, Any] | None = None, m_loss_weight: float = 1.0,
                 lep_init: str = "pretrained", **cfg: Any) -> None:
        super().__init__(backbone, num_classes, lep_init=lep_init, **cfg)
        if refresh_every < 1:
            raise ValueError(f"refresh_every must be >= 1, got {refresh_every}")
        self.refresh_every = int(refresh_every)
        self.m_loss_weight = float(m_loss_weight)
        self.explainer_options = dict(explainer_options or {})
        self.explainer_name = explainer  # None: the run's teacher explainer, resolved in fit()
        # a bad name or option fails now, not after stage 1
        self.explainer = None if explainer is None else create_explainer(explainer, **self.explainer_options)

    @classmethod
    def lep_inits(cls) -> tuple[str, ...]:
        return ("pretrained", "scratch")

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        ce, mse, logits, m = self.loss_terms(batch)
        total = ce + self.lam * mse
        if self.m_loss_weight:
            total = total + self.m_loss_weight * F.cross_entropy(m, batch.y)
        return total, logits

    def refresh_teacher(self, ctx) -> TeacherConfig:
        """The explainer config of the refreshes: ``explainer`` / ``explainer_options``, else the run's teacher."""
        if self.explainer_name is None:
            return dataclasses.replace(ctx.teacher, options={**ctx.teacher.options, **self.explainer_options})
        return dataclasses.replace(ctx.teacher, explainer=self.explainer_name, options=self.explainer_options)

    def current_maps(self, ctx, chunk: int) -> torch.Tensor:
        """Maps of the current M for every training image w.r.t. its true label, scaled per map (through the one
        teacher-map path: cached under a key that includes M's weights)."""
        maps, _ = ctx.maps_of(self.m, f"{self.name}/chunk{chunk}", self.teacher)
        return scale_maps(maps, self.map_scale)

    def fit(self, ctx) -> dict[str, Any]:
        self.teacher = self.refresh_teacher(ctx)
        m = ctx.build_backbone()
        lep = trunk_copy(ctx, self.lep_init, None, latent_head(m.num_features))
        base_engine = stage2_engine(ctx.engine, **self.stage2)
        total_epochs = base_engine.cfg.epochs
        chunks = math.ceil(total_epochs / self.refresh_every)
        history: list[dict[str, float]] = []
        results, refresh_s = [], []
        self.m = m
        for chunk in range(chunks):
            epochs = min(self.refresh_every, total_epochs - chunk * self.refresh_every)
            t0 = time.perf_counter()
            maps = self.current_maps(ctx, chunk)  # of the current M (chunk 0: the fresh backbone)
            refresh_s.append(time.perf_counter() - t0)
            if chunk == 0:  # the maps' channel count sizes D
                self.build(m, lep, maps.shape[1], ctx.data.image_size, frozen_m=False)
            engine = base_engine.replace(epochs=epochs)
            result = engine.fit(self, self.loss, ctx.data, extras={"maps": maps}, predict=self.predict,
                                desc=f"{self.name} chunk {chunk + 1}/{chunks} {ctx.backbone.name}")
            start = chunk * self.refresh_every
            history += [{**rec, "epoch": start + rec["epoch"], "chunk": chunk} for rec in result.history]
            results.append(result.as_dict())
        best = max(results, key=lambda r: r["best_val_accuracy"])
        fit = {"best_val_accuracy": results[-1]["best_val_accuracy"], "history": history,
               "wall_s": sum(r["wall_s"] for r in results), "chunks": len(results),
               "epochs": sum(r["epochs"] for r in results), "images_seen": sum(r["images_seen"] for r in results),
               "best_chunk_val_accuracy": best["best_val_accuracy"]}
        explainer = create_explainer(self.teacher.explainer, **self.teacher.options)
        return {"refresh_every": self.refresh_every, "explainer": explainer.config(),
                "refresh_s": refresh_s, "lam": self.lam, "fit": fit}
