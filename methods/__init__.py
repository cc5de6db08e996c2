"""Methods that train image classifiers with (or without) explanations, behind one interface.

A method plugin imports from here only: the :class:`Method` contract and its registry, the shared training engine
(:class:`Engine`, :class:`Batch`), what ``fit`` receives (:class:`FitContext`), the teacher-map path
(:func:`teacher_maps`, :class:`TeacherConfig`) and the explainers.
"""
from methods.backbones import register_backbone
from methods.base import Method
from methods.context import BackboneConfig, FitContext
from methods.engine import Batch, Engine, FitResult, TrainConfig, validation_split
from methods.explainers import Explainer, create_explainer, list_explainers, register_explainer
from methods.registry import create_method, get_method_class, list_methods, load_plugin, register_method
from methods.teacher_maps import TeacherConfig, teacher_maps

__all__ = ["BackboneConfig", "Batch", "Engine", "Explainer", "FitContext", "FitResult", "Method", "TeacherConfig",
           "TrainConfig", "create_explainer", "create_method", "get_method_class", "list_explainers", "list_methods",
           "load_plugin", "register_backbone", "register_explainer", "register_method", "teacher_maps",
           "validation_split"]
