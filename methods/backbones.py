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

from core.registry import Registry, unknown_name


class PretrainedWeightsUnavailable(RuntimeError):
    """Pretrained weights could not be loaded (offline, or a wrong local file)."""


def resize_input(x: torch.Tensor, size: int) -> torch.Tensor:
    """``x`` resized (bilinear) to the model's ``size`` x ``size`` input, or ``x`` itself when it already fits."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


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
        return resize_input(x, self.input_size)

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


BACKBONES: Registry[BackboneSpec] = Registry("backbone")  # built-ins are registered below, in this module


def register_backbone(name: str, default_input_size: int | None, pretrained_by_default: bool, description: str):
    def decorator(fn: Callable[..., Backbone]) -> Callable[..., Backbone]:
        BACKBONES.add(name, BackboneSpec(name, fn, default_input_size, pretrained_by_default, description))
        return fn

    return decorator


def list_backbones(pattern: str = "*") -> list[str]:
    return BACKBONES.names(pattern)


def backbone_spec(name: str) -> BackboneSpec:
    if name.startswith("timm:") and name not in BACKBONES:
        return BackboneSpec(name, lambda **kw: _timm_backbone(name[5:], **kw), None, True, "any timm model")
    return BACKBONES.get(name, also_valid=("timm:<any timm model name>",))


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
            raise unknown_name("backbone", model_name, BACKBONES.names() + ["any name in timm.list_models()"])
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


# ------------------------------------------------------------------------------------------------ ABN split points
# ABN (Fukui et al. 2019) splits a backbone before its last downsampling stage. A split function maps a *built*
# Backbone to an AbnSplit; register one for a new backbone with ``@register_abn_split("name")`` (the Backbone's
# ``name``), next to its ``@register_backbone``. timm models built from timm's EfficientNet class (MobileNet v1/v2/v3,
# EfficientNet, ...) and timm ResNets get one automatically.


@dataclass
class AbnSplit:
    """Where ABN cuts a backbone.

    ``extractor``: g(x) on the (already resized) input -> feature map [B, Cg, h, w]. ``perception``: the original
    remaining stages, g'(x) -> pooled features [B, num_features] (the backbone's ``head`` follows).
    ``attention_trunk``: a copy of the remaining stage(s) whose downsampling is removed (first stride 1 / "same"
    padding), g(x) -> [B, Ca, h, w] at g's resolution. Modules are the backbone's own (perception) or deep copies
    (attention trunk), so pretrained weights carry over to both.
    """

    extractor: nn.Module
    perception: nn.Module
    attention_trunk: nn.Module


ABN_SPLITS: Registry[Callable[[Backbone], AbnSplit]] = Registry("ABN split")


def register_abn_split(name: str):
    def decorator(fn: Callable[[Backbone], AbnSplit]) -> Callable[[Backbone], AbnSplit]:
        ABN_SPLITS.add(name, fn)
        return fn

    return decorator


def abn_split(backbone: Backbone) -> AbnSplit:
    """The ABN split of a built backbone: its registered split function, else a generic one for timm models."""
    if backbone.name in ABN_SPLITS:
        return ABN_SPLITS.get(backbone.name)(backbone)
    body = backbone.body
    if hasattr(body, "conv_stem") and hasattr(body, "blocks"):
        return _timm_efficientnet_split(backbone)
    if all(hasattr(body, f"layer{i}") for i in range(1, 5)):
        return _timm_resnet_split(backbone)
    raise ValueError(f"no ABN split point for backbone {backbone.name!r}; register one with "
                     f"methods.backbones.register_abn_split({backbone.name!r}) (known: {ABN_SPLITS.names()})")


def _strides_to_one(module: nn.Module, first_only: bool = True) -> nn.Module:
    """Set the stride of the first strided convolution (or all, with ``first_only=False``) of ``module`` to 1."""
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d) and tuple(sub.stride) != (1, 1):
            sub.stride = (1, 1)
            if first_only:
                break
    return module


@register_abn_split("lenet5")
def _lenet5_split(backbone: Backbone) -> AbnSplit:
    """After conv1 + pool (14x14 at 32 px); attention trunk = a "same"-padded copy of conv2 + ReLU (no pool)."""
    body = backbone.body
    conv2 = body[3]
    same = nn.Conv2d(conv2.in_channels, conv2.out_channels, conv2.kernel_size, padding=conv2.kernel_size[0] // 2)
    same.load_state_dict(conv2.state_dict())
    return AbnSplit(body[:3], body[3:], nn.Sequential(same, nn.ReLU(inplace=True)))


@register_abn_split("tiny")
def _tiny_split(backbone: Backbone) -> AbnSplit:
    """After conv1 + pool; attention trunk = a copy of conv2 + ReLU (stride 1 already)."""
    body = backbone.body
    return AbnSplit(body[:3], body[3:], copy.deepcopy(body[3:5]))


def _stride2_stage(blocks: nn.Sequential) -> int:
    """Index of the last stage whose first convolution is strided."""
    last = None
    for i, stage in enumerate(blocks):
        conv = next((m for m in stage.modules() if isinstance(m, nn.Conv2d) and tuple(m.stride) != (1, 1)), None)
        if conv is not None:
            last = i
    if last is None:
        raise ValueError("no strided stage to split before")
    return last


class _Pool(nn.Module):
    """timm's forward_head without the classifier: global pool (+ flatten) and the model's dropout."""

    def __init__(self, global_pool: nn.Module, drop_rate: float) -> None:
        super().__init__()
        self.global_pool = global_pool
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.global_pool(x).flatten(1)
        return F.dropout(x, p=self.drop_rate, training=self.training) if self.drop_rate > 0 else x


@register_abn_split("mobilenet")
@register_abn_split("efficientnet_b2")
def _timm_efficientnet_split(backbone: Backbone) -> AbnSplit:
    """timm EfficientNet-class models (MobileNet v1, EfficientNet-B2, ...): before the last stride-2 stage;
    the attention trunk copies the remaining stages (pretrained weights included) with the first stride set to 1."""
    body = backbone.body
    s = _stride2_stage(body.blocks)
    extractor = nn.Sequential(body.conv_stem, body.bn1, *body.blocks[:s])
    perception = nn.Sequential(*body.blocks[s:], body.conv_head, body.bn2,
                               _Pool(body.global_pool, float(getattr(body, "drop_rate", 0.0))))
    trunk = _strides_to_one(copy.deepcopy(nn.Sequential(*body.blocks[s:])), first_only=False)
    return AbnSplit(extractor, perception, trunk)


def _timm_resnet_split(backbone: Backbone) -> AbnSplit:
    """timm ResNets: g = up to layer3; attention trunk = a stride-1 copy of layer4 (as in the official ABN code)."""
    body = backbone.body
    extractor = nn.Sequential(body.conv1, body.bn1, body.act1, body.maxpool, body.layer1, body.layer2, body.layer3)
    perception = nn.Sequential(body.layer4, _Pool(body.global_pool, float(getattr(body, "drop_rate", 0.0))))
    return AbnSplit(extractor, perception, _strides_to_one(copy.deepcopy(body.layer4), first_only=False))
