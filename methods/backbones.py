"""Backbones: LeNet-5 (from scratch), timm's MobileNet v1 and EfficientNet-B2 (pretrained), any other timm model.

Every backbone is wrapped in :class:`Backbone`: ``features(x) -> [B, F]`` (the trunk, pooled and flattened) and a
linear ``head`` giving K scores. Inputs are always in the dataset's own pixel space; when ``input_size`` differs
from the image size the wrapper resizes *inside* the model, so explanations and MoRF stay in dataset pixels.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from methods.registry import unknown_name


class PretrainedWeightsUnavailable(RuntimeError):
    """Pretrained weights could not be loaded (offline, or a wrong local file)."""


class Backbone(nn.Module):
    """A trunk ``body`` giving ``num_features`` per image and a linear ``head`` giving ``num_classes`` scores."""

    def __init__(self, name: str, body: nn.Module, num_features: int, num_classes: int,
                 image_size: int, input_size: int | None = None) -> None:
        super().__init__()
        self.name = name
        self.body = body
        self.num_features = num_features
        self.num_classes = num_classes
        self.image_size = image_size
        self.input_size = input_size or image_size
        self.head = nn.Linear(num_features, num_classes)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] == self.input_size and x.shape[-2] == self.input_size:
            return x
        return F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.resize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def with_new_head(self, head: nn.Module) -> "Backbone":
        """A deep copy of this backbone whose last layer is replaced (e.g. LEP's FC(512) + sigmoid)."""
        clone = copy.deepcopy(self)
        clone.head = head
        return clone


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[..., Backbone]
    default_input_size: int | None  # None: the dataset's own image size
    pretrained_by_default: bool
    description: str


_BACKBONES: dict[str, BackboneSpec] = {}


def register_backbone(name: str, default_input_size: int | None, pretrained_by_default: bool, description: str):
    def decorator(fn: Callable[..., Backbone]) -> Callable[..., Backbone]:
        if name in _BACKBONES:
            raise ValueError(f"backbone {name!r} is already registered")
        _BACKBONES[name] = BackboneSpec(name, fn, default_input_size, pretrained_by_default, description)
        return fn

    return decorator


def list_backbones(pattern: str = "*") -> list[str]:
    import fnmatch

    return sorted(n for n in _BACKBONES if fnmatch.fnmatchcase(n, pattern))


def backbone_spec(name: str) -> BackboneSpec:
    if name in _BACKBONES:
        return _BACKBONES[name]
    if name.startswith("timm:"):
        return BackboneSpec(name, lambda **kw: _timm_backbone(name[5:], **kw), None, True, "any timm model")
    raise unknown_name("backbone", name, list(_BACKBONES) + ["timm:<any timm model name>"])


def create_backbone(name: str, num_classes: int, image_size: int = 32, input_size: int | None = None,
                    pretrained: bool | None = None, weights_path: str | None = None) -> Backbone:
    """Build a backbone for ``image_size`` inputs.

    ``input_size``: resolution the trunk runs at (resized inside the wrapper); ``None`` = the backbone's default
    for this profile (its native size for LeNet-5 / tiny, the dataset size otherwise).
    ``pretrained``: ``None`` = the backbone's default; ``weights_path``: a local weights file (offline machines).
    """
    spec = backbone_spec(name)
    if pretrained is None:
        pretrained = spec.pretrained_by_default
    return spec.build(num_classes=num_classes, image_size=image_size, input_size=input_size,
                      pretrained=pretrained, weights_path=weights_path)


def _flat_size(body: nn.Module, size: int) -> int:
    with torch.no_grad():
        return int(body(torch.zeros(1, 3, size, size)).flatten(1).shape[1])


@register_backbone("lenet5", None, False, "LeNet-5 (LeCun 1998), trained from scratch")
def lenet5(num_classes: int, image_size: int, input_size: int | None, pretrained: bool,
           weights_path: str | None) -> Backbone:
    if pretrained or weights_path:
        raise ValueError("lenet5 has no pretrained weights; it is trained from scratch")
    size = input_size or image_size
    convs = nn.Sequential(
        nn.Conv2d(3, 6, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Flatten(),
    )
    body = nn.Sequential(*convs, nn.Linear(_flat_size(convs, size), 120), nn.ReLU(inplace=True),
                         nn.Linear(120, 84), nn.ReLU(inplace=True))
    return Backbone("lenet5", body, 84, num_classes, image_size, size)


@register_backbone("tiny", None, False, "a 2-layer CNN for tests and smoke runs (not in the paper)")
def tiny(num_classes: int, image_size: int, input_size: int | None, pretrained: bool,
         weights_path: str | None) -> Backbone:
    if pretrained or weights_path:
        raise ValueError("tiny has no pretrained weights")
    body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Backbone("tiny", body, 16, num_classes, image_size, input_size or image_size)


TIMM_NAMES = {"mobilenet": "mobilenetv1_100", "efficientnet_b2": "tf_efficientnet_b2.ns_jft_in1k"}


@register_backbone("mobilenet", None, True, "MobileNet v1 (timm mobilenetv1_100), ImageNet-pretrained")
def mobilenet(**kw) -> Backbone:
    return _timm_backbone(TIMM_NAMES["mobilenet"], alias="mobilenet", **kw)


@register_backbone("efficientnet_b2", None, True,
                   "EfficientNet-B2, Noisy-Student weights (timm tf_efficientnet_b2.ns_jft_in1k)")
def efficientnet_b2(**kw) -> Backbone:
    return _timm_backbone(TIMM_NAMES["efficientnet_b2"], alias="efficientnet_b2", **kw)


def _timm_backbone(model_name: str, num_classes: int, image_size: int, input_size: int | None,
                   pretrained: bool, weights_path: str | None, alias: str | None = None) -> Backbone:
    import timm

    kwargs: dict = {"num_classes": 0}
    if weights_path:
        path = Path(weights_path)
        if not path.is_file():
            raise PretrainedWeightsUnavailable(f"weights file {path} does not exist (set weights_path to a "
                                               f"timm/safetensors or .pth checkpoint of {model_name})")
        kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
        pretrained = True
    try:
        body = timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except RuntimeError as err:
        if "Unknown model" in str(err):
            raise unknown_name("backbone", model_name, list(_BACKBONES) + ["any name in timm.list_models()"])
        raise _weights_error(model_name, err) from err
    except Exception as err:  # network errors from huggingface_hub / urllib come in many classes
        if pretrained:
            raise _weights_error(model_name, err) from err
        raise
    return Backbone(alias or f"timm:{model_name}", body, body.num_features, num_classes, image_size,
                    input_size or image_size)


def _weights_error(model_name: str, err: Exception) -> PretrainedWeightsUnavailable:
    return PretrainedWeightsUnavailable(
        f"could not load pretrained weights for {model_name} ({type(err).__name__}: {str(err)[:200]}). "
        "On a machine without internet either train from scratch with --no-pretrained, or download the weights "
        "elsewhere and pass the local file with --set weights_path=/path/to/model.safetensors "
        "(or pre-fill the Hugging Face cache, HF_HOME).")
