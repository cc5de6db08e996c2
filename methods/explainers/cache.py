"""Teacher-map cache (placeholder: one artifact per (model, data, split, explainer config); sharding to come)."""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import torch

from methods.explainers.base import create_explainer

if TYPE_CHECKING:
    from benchmarks.artifacts import ArtifactStore
    from benchmarks.context import TeacherConfig
    from datasets.base import DataBundle


def cached_maps(model: torch.nn.Module, data: "DataBundle", split: str, teacher: "TeacherConfig",
                model_key: str, artifacts: "ArtifactStore") -> torch.Tensor:
    """Maps of ``model`` for every image of ``data.<split>`` w.r.t. its true label, [N, C, H, W] float32."""
    from benchmarks.context import fingerprint

    explainer = create_explainer(teacher.explainer, **teacher.options)
    images = getattr(data, split)

    def compute() -> torch.Tensor:
        out = []
        for i in range(0, len(images), teacher.batch_images):
            x = data.normalize(images.images[i:i + teacher.batch_images])
            out.append(explainer.explain(model, x, images.labels[i:i + teacher.batch_images]).half().cpu())
        return torch.cat(out)

    spec = {"model": model_key, "data": fingerprint(data), "split": split, "explainer": explainer.config(),
            "teacher": asdict(teacher)}
    maps, _ = artifacts.get_or_create("maps", spec, compute)
    return maps.float().to(data.device)
