"""Every score the runner writes, declared once (:mod:`core.scores`); importing this module declares them all.

Explanation scores are functions of one map source's MoRF curves (and maps, masks) on a batch of test images, one
value per image; :mod:`benchmarks.explanation_quality` computes every registered one for every map source. The
map-fidelity scores are declared where they are computed (:mod:`methods.map_fidelity`).
"""
from __future__ import annotations

import torch

import methods.map_fidelity  # noqa: F401  (declares map_fidelity, map_mse, map_grad_share)
from benchmarks.evaluate import aopc, deletion_auc, ground_truth_scores
from core.scores import HIGHER, INFO, LOWER, ScoreInputs, declare_score, register_score

declare_score("accuracy", HIGHER, "accuracy", "top-1 accuracy on the test set (%)")
declare_score("val_accuracy", HIGHER, "validation", "best validation accuracy of the final training stage (%); "
              "``val_accuracy/<stage>`` for each stage; what grids select on")


@register_score("aopc", HIGHER, "explanation", "MoRF AOPC = mean over k=0..L of (f_0 - f_k)")
def aopc_score(inputs: ScoreInputs) -> torch.Tensor:
    return aopc(inputs.curves)


@register_score("deletion_auc", LOWER, "explanation", "MoRF area under f_k/f_0 over k/L in [0, 1] (trapezoidal rule)")
def deletion_auc_score(inputs: ScoreInputs) -> torch.Tensor:
    return deletion_auc(inputs.curves)


@register_score("aopc_vs_random", HIGHER, "explanation", "AOPC minus the AOPC of a random region order (same noise)")
def aopc_vs_random(inputs: ScoreInputs) -> torch.Tensor | None:
    return None if inputs.random_curves is None else aopc(inputs.curves) - aopc(inputs.random_curves)


@register_score("deletion_auc_vs_random", LOWER, "explanation",
                "deletion AUC minus that of a random region order (same noise)")
def deletion_auc_vs_random(inputs: ScoreInputs) -> torch.Tensor | None:
    if inputs.random_curves is None:
        return None
    return deletion_auc(inputs.curves) - deletion_auc(inputs.random_curves)


@register_score("aopc_vs_constant", HIGHER, "explanation", "AOPC of the own map minus the AOPC of the constant "
                "control map (the training set's mean teacher map) on the same image")
def aopc_vs_constant(inputs: ScoreInputs) -> torch.Tensor | None:
    if inputs.source != "own" or inputs.control_curves is None:
        return None
    return aopc(inputs.curves) - aopc(inputs.control_curves)


@register_score("mask_share", HIGHER, "explanation",
                "share of the positive relevance that lies inside the ground-truth mask")
def mask_share(inputs: ScoreInputs) -> torch.Tensor | None:
    return None if inputs.masks is None else ground_truth_scores(inputs.maps, inputs.masks)["mask_share"]


@register_score("pointing_game", HIGHER, "explanation",
                "1 if the most relevant pixel lies inside the ground-truth mask, else 0")
def pointing_game(inputs: ScoreInputs) -> torch.Tensor | None:
    return None if inputs.masks is None else ground_truth_scores(inputs.maps, inputs.masks)["pointing_game"]


declare_score("budget", INFO, "budget", "training budget of the classifier over every stage it depends on: "
              "``budget/epochs``, ``budget/images`` (training images seen)")
declare_score("fit_seconds", INFO, "cost", "wall time of the cell's fit (cached inputs loaded, not recomputed)")
declare_score("seconds", INFO, "cost", "wall time of a stage: ``seconds/stage1``, ``/stage2``, ``/teacher_maps``, "
              "``/test``, ``/explanations``")
declare_score("ms_per_image", INFO, "cost", "milliseconds per training image: ``ms_per_image/teacher_maps``")
declare_score("explanation_images", INFO, "info", "test images the explanation scores were computed on")
declare_score("figure_error", INFO, "info", "a figure of the cell could not be drawn (the run still counts)")
declare_score("chosen", INFO, "info", "a value chosen on validation data: ``chosen/<option>``")
