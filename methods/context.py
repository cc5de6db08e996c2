"""What a method's ``fit`` receives: data, the shared engine, and cached upstream artifacts.

The pipeline for one (backbone, dataset, seed): stage-1 model A -> teacher maps of A on the training set ->
{IMPACTX stage 2, WAE}. Each arrow's output is an artifact keyed by its config and its inputs' keys, so every
method of a cell reuses the same stage-1 model and the same maps, and a re-run recomputes nothing finished.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from core.artifacts import ArtifactStore
from methods.engine import Batch, Engine, FitResult
from datasets.base import DataBundle, fingerprint
from methods.backbones import Backbone, create_backbone
from methods.teacher_maps import TeacherConfig, split_maps


@dataclass(frozen=True)
class BackboneConfig:
    name: str
    input_size: int | None = None
    pretrained: bool | None = None
    weights_path: str | None = None

    def build(self, num_classes: int, image_size: int) -> Backbone:
        return create_backbone(self.name, num_classes, image_size, self.input_size, self.pretrained,
                               self.weights_path)


@dataclass
class FitContext:
    data: DataBundle
    engine: Engine
    backbone: BackboneConfig
    seed: int = 0
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    artifacts: ArtifactStore = field(default_factory=lambda: ArtifactStore(None))
    facts: dict[str, Any] = field(default_factory=dict)  # recorded with the results (timings, chosen values)
    stage1_grid: dict[str, tuple] = field(default_factory=dict)  # engine settings searched for stage 1

    @property
    def device(self) -> torch.device:
        return self.data.device

    def build_backbone(self, num_classes: int | None = None) -> Backbone:
        torch.manual_seed(self.seed)
        return self.backbone.build(num_classes or self.data.num_classes, self.data.image_size).to(self.device)

    def stage1_spec(self, engine: Engine | None = None) -> dict[str, Any]:
        return {"backbone": asdict(self.backbone), "data": fingerprint(self.data),
                "train": (engine or self.engine).cfg.key_dict(), "seed": self.seed}

    def stage1(self) -> tuple[Backbone, str]:
        """The stage-1 model A (the baseline): the backbone fine-tuned with cross-entropy by the shared engine.

        Trained once per (backbone config, data, train config, seed) and reused by every method that needs it.
        With ``stage1_grid`` (paper Table 1: batch size, lr, validation fraction) every combination is trained
        (each its own artifact) and the one with the best validation accuracy is kept; the choice is recorded in
        ``facts["stage1_chosen"]``. Returns the model (in eval mode) and its artifact key.
        """
        engines = [self.engine]
        if self.stage1_grid:
            names = sorted(self.stage1_grid)
            engines = [self.engine.replace(**dict(zip(names, values)))
                       for values in itertools.product(*(self.stage1_grid[n] for n in names))]
        best: tuple[float, dict, str, Engine] | None = None
        for engine in engines:
            payload, key = self._stage1_artifact(engine)
            score = payload["fit"]["best_val_accuracy"]
            if len(engines) > 1 and not score >= 0:  # the engine reports -1 without validation images
                raise ValueError("the stage-1 grid has no validation accuracy to choose on (val_fraction=0?)")
            if best is None or score > best[0]:  # ties: the first combination in grid order
                best = (score, payload, key, engine)
        _, payload, key, engine = best
        model = self.build_backbone()
        model.load_state_dict(payload["state"])
        self.facts["stage1_fit"] = payload["fit"]
        if self.stage1_grid:
            self.facts["stage1_chosen"] = {n: getattr(engine.cfg, n) for n in sorted(self.stage1_grid)}
        return model.eval(), key

    def _stage1_artifact(self, engine: Engine) -> tuple[dict[str, Any], str]:
        def train() -> dict[str, Any]:
            model = self.build_backbone()
            result = engine.fit(model, lambda b: _cross_entropy(model, b), self.data,
                                desc=f"stage-1 {self.backbone.name}")
            return {"state": model.state_dict(), "fit": result.as_dict()}

        return self.artifacts.get_or_create("stage1", self.stage1_spec(engine), train, self.device)

    def teacher_maps(self, model: torch.nn.Module, model_key: str) -> torch.Tensor:
        """The run's teacher maps of ``model`` for every training image w.r.t. its true label, [N, C, H, W] float32
        (shared by every method of the group; what they cost is recorded in ``facts["teacher_maps"]``)."""
        stats: dict[str, Any] = {}
        maps, _ = self.maps_of(model, model_key, stats=stats)
        self.facts["teacher_maps"] = stats
        return maps

    def maps_of(self, model: torch.nn.Module, model_key: str, teacher: TeacherConfig | None = None,
                split: str = "train", stats: dict[str, Any] | None = None) -> tuple[torch.Tensor, str]:
        """Maps of ``model`` for every image of ``data.<split>`` w.r.t. its true label by ``teacher`` (default: the
        run's), through the one cached path (:func:`methods.teacher_maps.teacher_maps`); returns (maps, key)."""
        return split_maps(model, self.data, split, teacher or self.teacher, model_key, self.artifacts,
                          self.engine.progress, stats)


def _cross_entropy(model: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(batch.x)
    return F.cross_entropy(logits, batch.y), logits


__all__ = ["BackboneConfig", "FitContext", "FitResult", "TeacherConfig", "fingerprint"]
