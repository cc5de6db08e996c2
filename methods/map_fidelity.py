"""Did IMPACTX's decoder learn anything image-specific? Map fidelity on held-out teacher maps.

A decoder that only learns "which class is this → that class's average map" (or just the global average map) can
lower the map loss without carrying any per-image explanation into LEP's features; any accuracy gain then cannot
come from per-image explanations. So, on the *validation* images' teacher maps (images the stage-2 loss never saw):

- ``map_mse/decoder``: MSE of D(LEP(x)) against the teacher map;
- ``map_mse/zero``, ``map_mse/mean``, ``map_mse/class_mean``: the same for the all-zero map, the mean training map
  and the mean training map of the image's true class (an oracle that knows the label);
- ``map_fidelity`` = 1 − MSE(D) / MSE(per-class mean map): > 0 only when D predicts image-specific structure beyond
  the class → map lookup; ≤ 0 means nothing image-specific was learned;
- ``map_grad_share`` = ‖∇_LEP λ·MSE‖ / (‖∇_LEP CE‖ + ‖∇_LEP λ·MSE‖) on a fixed batch of training images: how much of
  the signal reaching LEP's weights comes from the explanations (0 with λ = 0).

Means (global and per class) are taken over the engine's training portion, never over the validation images.
Why and how to read it: docs/decisions.md#map-fidelity, docs/metrics.md#map-fidelity.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from core.scores import HIGHER, INFO, LOWER, declare_score
from methods.engine import Batch, validation_split

declare_score("map_fidelity", HIGHER, "map_fidelity", "1 - MSE(D(LEP(x)), teacher map) / MSE(per-class mean map, "
              "teacher map) on validation images; <= 0: nothing image-specific learned")
declare_score("map_mse", LOWER, "map_fidelity", "MSE against the validation images' teacher maps of the decoder "
              "(``map_mse/decoder``) and of the zero / mean / per-class mean map", parts=("decoder", "class_mean",
                                                                                        "mean", "zero"))
declare_score("map_grad_share", INFO, "map_fidelity", "share of LEP's gradient norm that comes from the map term "
              "(on a fixed batch of training images; 0 with lambda = 0)")
#: the rows the probe writes
FIDELITY_METRICS = ("map_fidelity", "map_mse/decoder", "map_mse/zero", "map_mse/mean", "map_mse/class_mean",
                    "map_grad_share")


def reference_mses(target: torch.Tensor, labels: torch.Tensor, mean_map: torch.Tensor,
                   class_means: torch.Tensor) -> dict[str, float]:
    """MSE of the zero, mean and per-class mean maps against ``target`` [N, C, H, W] (labels [N])."""
    return {"map_mse/zero": float(target.pow(2).mean()),
            "map_mse/mean": float((target - mean_map.unsqueeze(0)).pow(2).mean()),
            "map_mse/class_mean": float((target - class_means[labels]).pow(2).mean())}


def fidelity(mse_decoder: float, mse_class_mean: float) -> float:
    """1 − MSE(D) / MSE(per-class mean map); NaN when the class means are exact (nothing left to explain)."""
    return 1.0 - mse_decoder / mse_class_mean if mse_class_mean > 0 else float("nan")


class MapFidelityProbe:
    """Measures an IMPACTX-like method (``method.lep``, ``method.decoder``, ``method.loss_terms``, ``method.lam``)
    against teacher maps of the validation images, after every epoch (:meth:`epoch_record`) and at the end
    (:meth:`final_metrics`).

    ``teacher``: the true teacher maps of every training image [N, C, H, W] (scaled as the method scales them);
    ``targets``: what the loss trains on (the same, or e.g. shuffled maps), used for the gradient share only.
    """

    def __init__(self, method, data, teacher: torch.Tensor, engine, targets: torch.Tensor | None = None,
                 grad_images: int = 256, batch_size: int = 500) -> None:
        self.method, self.data, self.batch_size = method, data, batch_size
        train_idx, val_idx = validation_split(len(data.train), engine.cfg.val_fraction, engine.seed)
        device = teacher.device
        train_idx, val_idx = train_idx.to(device), val_idx.to(device)
        labels = data.train.labels.to(device)
        self.val_idx = val_idx
        self.val_target = teacher[val_idx]
        self.val_labels = labels[val_idx]
        train_maps = teacher[train_idx]
        self.mean_map = train_maps.mean(0)
        sums = torch.zeros(data.num_classes, *teacher.shape[1:], device=device).index_add_(0, labels[train_idx],
                                                                                          train_maps)
        counts = torch.bincount(labels[train_idx], minlength=data.num_classes).clamp_min(1)
        self.class_means = sums / counts.view(-1, 1, 1, 1).to(device)
        self.references = reference_mses(self.val_target, self.val_labels, self.mean_map, self.class_means) \
            if len(val_idx) else {}
        pick = train_idx[:grad_images]
        targets = teacher if targets is None else targets
        self.grad_batch = Batch(data.normalize(data.train.images[pick]), labels[pick], pick,
                                {"maps": targets[pick]})

    @torch.no_grad()
    def decoder_mse(self) -> float:
        total, n = 0.0, 0
        for i in range(0, len(self.val_idx), self.batch_size):
            index = self.val_idx[i:i + self.batch_size]
            recon = self.method.decoder(self.method.lep(self.data.normalize(self.data.train.images[index])))
            target = self.val_target[i:i + self.batch_size]
            total += float(F.mse_loss(recon, target.expand_as(recon), reduction="sum"))
            n += recon.numel()
        return total / max(n, 1)

    def grad_share(self) -> float:
        """‖∇ λ·MSE‖ / (‖∇ CE‖ + ‖∇ λ·MSE‖) over LEP's trainable parameters, on a fixed un-augmented batch."""
        params = [p for p in self.method.lep.parameters() if p.requires_grad]
        if not params:
            return float("nan")
        with torch.enable_grad():
            ce, mse, _, _ = self.method.loss_terms(self.grad_batch)
            g_ce = torch.autograd.grad(ce, params, retain_graph=True, allow_unused=True)
            g_map = torch.autograd.grad(self.method.lam * mse, params, allow_unused=True) if self.method.lam \
                else [None] * len(params)
        norm = lambda grads: float(torch.sqrt(sum((g.pow(2).sum() for g in grads if g is not None),  # noqa: E731
                                                  torch.zeros(()))))
        a, b = norm(g_ce), norm(g_map)
        return b / (a + b) if a + b > 0 else float("nan")

    def measure(self) -> dict[str, float]:
        if not len(self.val_idx):
            return {"map_grad_share": self.grad_share()}
        mse = self.decoder_mse()
        return {**self.references, "map_mse/decoder": mse,
                "map_fidelity": fidelity(mse, self.references["map_mse/class_mean"]),
                "map_grad_share": self.grad_share()}

    def epoch_record(self) -> dict[str, float]:
        out = self.measure()
        return {"map_fidelity": out.get("map_fidelity", float("nan")), "map_mse": out.get("map_mse/decoder", 0.0),
                "map_grad_share": out["map_grad_share"]}

    def final_metrics(self) -> dict[str, Any]:
        """Rows' worth of numbers for the kept (best-on-validation) weights: {metric: value}."""
        return self.measure()


__all__ = ["FIDELITY_METRICS", "MapFidelityProbe", "fidelity", "reference_mses"]
