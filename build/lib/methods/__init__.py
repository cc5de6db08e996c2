"""Methods that train image classifiers with (or without) explanations, behind one interface."""
from methods.base import Method
from methods.registry import create_method, list_methods, load_plugin, register_method

__all__ = ["Method", "create_method", "list_methods", "load_plugin", "register_method"]
