"""Post-hoc explainers (captum wrappers, shap's Partition explainer and its batched reimplementation)."""
from methods.explainers.base import Explainer, create_explainer, list_explainers, register_explainer

__all__ = ["Explainer", "create_explainer", "list_explainers", "register_explainer"]
