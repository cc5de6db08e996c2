"""How good are a trained method's explanations? MoRF area scores (and ground-truth localisation) as tidy rows.

:func:`evaluate_explanations` takes a trained method and its data, picks a fixed seeded subset of the test set, and
scores three maps of every picked image with MoRF (:mod:`benchmarks.evaluate`, docs/metrics.md#morf):

- ``own``: the method's own map, ``method.explain(x, target)`` (IMPACTX: D(LEP(x)); ABN: its attention map).
  The baseline has no map of its own: its "own" map is its *post-hoc* map, i.e. whatever explainer the baseline was
  configured with (``Baseline(explainer=...)``, saliency by default).
- ``shap``: the post-hoc explainer (default ``"partition"``, SHAP Partition) applied to ``method.classifier()``.
  This source is named ``"shap"`` for the SHAP explainers (``partition``, ``shap-partition``); for any other
  explainer it is named after the explainer (e.g. ``"occlusion"``), so a table never calls a non-SHAP map SHAP.
- ``random``: a seeded U(0, 1) map per image: the floor.
- ``constant`` (when a ``constant_map`` is given, e.g. the training set's mean teacher map): the same map for every
  image. A MoRF score cannot tell a per-image explanation from a fixed prior (say, "the centre matters") unless the
  own map beats this control; ``aopc_vs_constant/own`` is that difference per image (higher = better).

The explained class is the true label by default (``target="label"``; the teacher maps are w.r.t. the true label);
``target="predicted"`` explains the predicted class instead.

Rows (stable names; the lead's tables pivot on ``metric``)::

    {"metric": f"{score}/{source}", "value": mean over images, "direction": "higher" | "lower",
     "std": std over images, "n_images": n, "per_image": [one float per image, in index order],
     "source": source, "score": score, "explainer": explainer name, "target": "label" | "predicted"}

``score`` ∈ ``aopc`` (higher = better), ``deletion_auc`` (lower), ``aopc_vs_random`` (higher),
``deletion_auc_vs_random`` (lower) — definitions in :mod:`benchmarks.evaluate` — and, when ``data.test.masks`` is
not None (``synthetic``), ``mask_share`` (share of the POSITIVE relevance inside the true mask, higher) and
``pointing_game`` (top pixel inside the mask, higher). ``per_image`` lists are aligned across rows (same images,
same order), so paired tests between sources or between methods on the same seed are possible.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

import benchmarks.scores  # noqa: F401  (declares every score)
from benchmarks.evaluate import (MorfConfig, ground_truth_scores, make_config,
                                 morf_curves, random_curves, random_maps)
from core.scores import SCORES, ScoreInputs, names_of_kind, row
from methods.explainers import create_explainer
from core.torch_utils import eval_mode

SHAP_EXPLAINERS = ("partition", "shap-partition")
TARGETS = ("label", "predicted")


def source_name(explainer: str) -> str:
    """Row name of the post-hoc map: ``"shap"`` for the SHAP explainers, the explainer's name otherwise."""
    return "shap" if explainer in SHAP_EXPLAINERS else explainer


def seeded_subset(n_total: int, n_images: int | None, seed: int = 0) -> torch.Tensor:
    """A fixed seeded subset of test indices (sorted); all of them when ``n_images`` is None or too large."""
    if n_images is None or n_images >= n_total:
        return torch.arange(n_total)
    perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))
    return perm[:n_images].sort().values


@dataclass
class ExplanationRun:
    """Everything the scores and the figures are computed from (all on the data's device)."""

    index: torch.Tensor  # [n] test-set indices
    images: torch.Tensor  # [n, 3, H, W] uint8 raw
    labels: torch.Tensor  # [n]
    target: torch.Tensor  # [n] explained classes
    maps: dict[str, torch.Tensor]  # source -> [n, 1|C, H, W]
    curves: dict[str, torch.Tensor]  # source -> [n, L+1]
    random_order_curves: torch.Tensor  # [n, L+1] (reference of the *_vs_random scores)
    masks: torch.Tensor | None
    config: MorfConfig
    explainer: str
    target_mode: str
    facts: dict[str, Any] = field(default_factory=dict)


def _batched(fn, x: torch.Tensor, target: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch_size], target[i:i + batch_size]).detach()
                      for i in range(0, x.shape[0], batch_size)])


def explain_and_perturb(method, data, *, n_images: int | None = 256, seed: int = 0,
                        explainer: str | None = "partition",
                        explainer_options: dict[str, Any] | None = None, morf_options: dict[str, Any] | None = None,
                        target: str = "label", batch_size: int = 256,
                        constant_map: torch.Tensor | None = None) -> ExplanationRun:
    """Maps of the sources and their MoRF curves on a seeded test subset (see the module docstring).

    ``morf_options``: :class:`benchmarks.evaluate.MorfConfig` fields (``seed`` defaults to ``seed``).
    """

    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    config = make_config(MorfConfig(seed=seed), **(morf_options or {}))
    split = data.test
    index = seeded_subset(len(split), n_images, seed).to(split.images.device)
    images, labels = split.images[index], split.labels[index]
    masks = None if split.masks is None else split.masks[index]
    x = data.normalize(images)
    model = method.classifier()
    with eval_mode(model):
        if target == "predicted":
            with torch.no_grad():  # not inference_mode: explainers backpropagate through ops that index by target
                tgt = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
        else:
            tgt = labels
        maps = {"own": _batched(method.explain, x, tgt, batch_size)}
        if explainer is not None:
            post_hoc = create_explainer(explainer, **(explainer_options or {}))
            maps[source_name(explainer)] = _batched(lambda xb, tb: post_hoc.explain(model, xb, tb), x, tgt,
                                                    batch_size)
        maps["random"] = random_maps(index, (1, *images.shape[-2:]), seed)
        if constant_map is not None:
            maps["constant"] = constant_map.to(images.device).float().expand(len(index), *constant_map.shape[-3:])
        curves = {name: morf_curves(model, images, tgt, m, normalize=data, index=index, config=config)
                  for name, m in maps.items()}
        reference = random_curves(model, images, tgt, normalize=data, index=index, config=config)
    return ExplanationRun(index, images, labels, tgt, maps, curves, reference, masks, config, explainer, target)


def rows_from_run(run: ExplanationRun) -> list[dict[str, Any]]:
    """Tidy rows (module docstring) from an :class:`ExplanationRun`: every registered explanation score of every map
    source, where it applies (ground-truth scores need masks, ``aopc_vs_constant`` the constant control)."""
    rows = []
    for source, curves in run.curves.items():
        inputs = ScoreInputs(curves, run.random_order_curves, run.maps.get(source), run.masks, source,
                             run.curves.get("constant"))
        for score in names_of_kind("explanation"):
            values = SCORES.get(score).compute(inputs)
            if values is None:
                continue
            values = values.detach().float().cpu()
            rows.append(row(f"{score}/{source}", float(values.mean()),
                            std=float(values.std()) if len(values) > 1 else 0.0, n_images=len(values),
                            per_image=values.tolist(), source=source, score=score, explainer=run.explainer,
                            target=run.target_mode))
    return rows


def evaluate_explanations(method, data, *, n_images: int | None = 256, seed: int = 0, explainer: str = "partition",
                          explainer_options: dict[str, Any] | None = None,
                          morf_options: dict[str, Any] | None = None, target: str = "label",
                          batch_size: int = 256) -> list[dict[str, Any]]:
    """MoRF area scores (+ ground-truth scores on datasets with masks) of a trained method's own map, the post-hoc
    explainer's map of the same model, and a random map, on ``n_images`` seeded test images. Rows: module docstring.
    """
    run = explain_and_perturb(method, data, n_images=n_images, seed=seed, explainer=explainer,
                              explainer_options=explainer_options, morf_options=morf_options, target=target,
                              batch_size=batch_size)
    return rows_from_run(run)


__all__ = ["ExplanationRun", "evaluate_explanations", "explain_and_perturb", "ground_truth_scores", "rows_from_run",
           "source_name", "seeded_subset"]
