"""The reference teacher explainer (``shap-partition``): shap's own Partition explainer, called as the paper did.

``shap.explainers.Partition(f, shap.maskers.Image("blur(128,128)", (H, W, C)))`` with ``max_evals=2000``: images are
passed channels-last (H, W, C) and permuted back inside the model function; every image is explained for its own
target class alone (``outputs=[c]`` applies to every row of a call, so this calls shap once per image); the global
NumPy RNG (which breaks priority ties in shap's queue) is seeded with ``seed`` before each image and restored
afterwards; ``batch_size`` defaults to ``max_evals`` (shap's default for images is 10, which is very slow and also
changes the expansion order). It is slow (~2 s per 32x32 image for LeNet-5 on 2 CPU cores): the batched
``partition`` explainer computes the same maps and is tested against this one.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from methods.explainers.base import Explainer, register_explainer
from methods.fast_forward import LayoutForward
from core.torch_utils import eval_mode


@register_explainer("shap-partition")
class ShapPartition(Explainer):
    """shap 0.51 ``PartitionExplainer`` with an ``Image`` masker, one call per image (its target class only)."""

    def __init__(self, output: str = "probability", max_evals: int = 2000, masker: str = "blur(128,128)",
                 seed: int = 0, batch_size: int | None = None) -> None:
        super().__init__(output)
        if int(max_evals) < 2:
            raise ValueError(f"max_evals must be at least 2, got {max_evals}")
        if not (masker.startswith("blur(") or masker in ("inpaint_telea", "inpaint_ns")):
            raise ValueError(f"masker must be 'blur(kx,ky)', 'inpaint_telea' or 'inpaint_ns', got {masker!r}")
        self.max_evals = int(max_evals)
        self.masker = masker
        self.seed = int(seed)
        # shap pops at most batch_size masks per round: below max_evals it changes the expansion order (and maps)
        self.batch_size = int(batch_size) if batch_size is not None else self.max_evals

    def explain(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import shap

        # shap hands over channels-last arrays; their NCHW view is channels-last in memory (the fast CPU layout),
        # and a model that cannot take that (a .view on its activations) gets contiguous batches instead
        forward = LayoutForward(self.scores(model), channels_last=True)
        device = x.device
        dtype = x.dtype

        def f(batch: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                t = torch.from_numpy(np.ascontiguousarray(batch)).to(device=device, dtype=dtype)
                return forward(t.permute(0, 3, 1, 2)).detach().cpu().numpy()

        hwc = x.detach().permute(0, 2, 3, 1).contiguous().cpu().numpy()
        masker = shap.maskers.Image(self.masker, hwc.shape[1:])
        explainer = shap.explainers.Partition(f, masker)
        state = np.random.get_state()
        out = []
        try:
            with eval_mode(model):
                for i in range(len(hwc)):
                    np.random.seed(self.seed)
                    exp = explainer(hwc[i:i + 1], max_evals=self.max_evals, batch_size=self.batch_size,
                                    outputs=[int(target[i])], silent=True)
                    out.append(np.asarray(exp.values)[0, ..., 0])  # (H, W, C)
        finally:
            np.random.set_state(state)
        values = np.stack(out).transpose(0, 3, 1, 2)
        return torch.from_numpy(np.ascontiguousarray(values)).to(device=device, dtype=torch.float32)
