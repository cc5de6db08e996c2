"""captum attribution methods as explainers: batched, one target per image."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from methods.explainers.base import Explainer, register_explainer
from core.torch_utils import eval_mode


class _CaptumExplainer(Explainer):
    captum_class: str = ""
    input_gradient: bool = False  # the method differentiates w.r.t. the input itself (captum warns if not enabled)

    def __init__(self, output: str = "probability", batch_size: int = 256) -> None:
        super().__init__(output)
        self.batch_size = batch_size

    def attribute(self, method: Any, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return method.attribute(x, target=target)

    def explain(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import captum.attr

        forward = self.scores(model)
        method = getattr(captum.attr, self.captum_class)(forward)
        out = []
        with eval_mode(model):
            for start in range(0, x.shape[0], self.batch_size):
                xb = x[start:start + self.batch_size].detach().clone().requires_grad_(self.input_gradient)
                tb = target[start:start + self.batch_size].to(x.device)
                out.append(self.attribute(method, xb, tb).detach())
        return torch.cat(out)


@register_explainer("saliency")
class Saliency(_CaptumExplainer):
    """Absolute input gradient (Simonyan et al. 2014)."""

    captum_class = "Saliency"
    input_gradient = True


@register_explainer("integrated-gradients")
class IntegratedGradients(_CaptumExplainer):
    """Integrated Gradients from a zero (= dataset mean) baseline."""

    captum_class = "IntegratedGradients"

    def __init__(self, output: str = "probability", batch_size: int = 64, n_steps: int = 50) -> None:
        super().__init__(output, batch_size)
        self.n_steps = n_steps

    def attribute(self, method: Any, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return method.attribute(x, target=target, n_steps=self.n_steps, internal_batch_size=x.shape[0] * 8)


@register_explainer("gradient-shap")
class GradientShap(_CaptumExplainer):
    """GradientSHAP with Gaussian-noised zero baselines (seeded)."""

    captum_class = "GradientShap"

    def __init__(self, output: str = "probability", batch_size: int = 64, n_samples: int = 20,
                 stdevs: float = 0.1, seed: int = 0) -> None:
        super().__init__(output, batch_size)
        self.n_samples, self.stdevs, self.seed = n_samples, stdevs, seed

    def attribute(self, method: Any, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import numpy as np

        # captum draws the noise with torch and the baseline choice / interpolation points with NumPy's global
        # RNG: seed both for this call only, and leave the callers' streams as they were
        devices = [x.device] if x.device.type == "cuda" else []
        state = np.random.get_state()
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)
                np.random.seed(self.seed)
                baselines = torch.zeros(2, *x.shape[1:], device=x.device)
                return method.attribute(x, baselines=baselines, target=target, n_samples=self.n_samples,
                                        stdevs=self.stdevs)
        finally:
            np.random.set_state(state)


@register_explainer("occlusion")
class Occlusion(_CaptumExplainer):
    """Sliding-window occlusion with a zero (= dataset mean) patch."""

    captum_class = "Occlusion"

    def __init__(self, output: str = "probability", batch_size: int = 64, window: int = 4, stride: int = 4) -> None:
        super().__init__(output, batch_size)
        self.window, self.stride = window, stride

    def attribute(self, method: Any, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return method.attribute(x, target=target, sliding_window_shapes=(x.shape[1], self.window, self.window),
                                strides=(x.shape[1], self.stride, self.stride),
                                perturbations_per_eval=16)
