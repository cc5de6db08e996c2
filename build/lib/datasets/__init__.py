"""Datasets as resident uint8 tensors: torchvision sets, image folders, and embedded offline sets.

Note: this top-level package shadows Hugging Face's ``datasets``; keep the suite in its own environment.
"""
from datasets.base import DataBundle, DatasetUnavailable, Split
from datasets.registry import list_datasets, load_dataset, register_dataset

__all__ = ["DataBundle", "DatasetUnavailable", "Split", "list_datasets", "load_dataset", "register_dataset"]
