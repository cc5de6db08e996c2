"""ABN: Attention Branch Network (Fukui et al., CVPR 2019; official code machine-perception-robotics-group/
attention_branch_network), on any backbone with an ABN split point.

The backbone is cut before its last downsampling stage (:func:`methods.backbones.abn_split`): a feature extractor
g(x); an attention branch = a stride-1 copy of the remaining stage(s), then BN -> Conv1x1(->K) -> BN -> ReLU, giving
(a) attention logits = GAP(Conv1x1 K->K) and (b) the attention map M(x) = sigmoid(BN(Conv3x3 K->1)); a perception
branch = the original remaining stages on g'(x) = (1 + M(x)) * g(x), then pooling and the backbone's classifier.
Loss = CE(attention logits, y) + CE(perception logits, y); predictions are the perception logits; ``explain`` returns
M(x) bilinearly resized to the input (one class-agnostic map).

Split points (the suite's choice, docs/decisions.md#abn-attach-points): LeNet-5 after conv1 + pool with a
"same"-padded copy of conv2 as attention trunk; MobileNet / EfficientNet before the last stride-2 stage, the copied
stages starting from the same (pretrained) weights. Another backbone gets its split with
``methods.backbones.register_abn_split("<backbone name>")``. ABN trains from the backbone's default weights (it
does not use the stage-1 model).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from methods.engine import Batch
from methods.backbones import Backbone, abn_split, resize_input
from methods.base import Method
from methods.registry import register_method
from core.torch_utils import eval_mode


@register_method("abn")
class ABN(Method):
    """Attention Branch Network: attention map M re-weights features as (1 + M) * g; perception CE + attention CE.

    Options: ``attention_weight`` (weight of the attention branch's CE; 1.0 = the paper's plain sum)."""

    def __init__(self, backbone: str, num_classes: int, *, attention_weight: float = 1.0, **cfg: Any) -> None:
        super().__init__(backbone, num_classes, **cfg)
        self.attention_weight = float(attention_weight)
        self.input_size: int | None = None

    def build(self, backbone: Backbone) -> "ABN":
        """Cut ``backbone`` and attach the attention branch (called by ``fit``; tests call it directly)."""
        split = abn_split(backbone)
        self.input_size = backbone.input_size
        self.extractor = split.extractor
        self.perception = split.perception
        self.attention_trunk = split.attention_trunk
        self.head = backbone.head
        channels = self._trunk_channels(backbone)
        k = self.num_classes
        self.att_bn = nn.BatchNorm2d(channels)
        self.att_conv = nn.Conv2d(channels, k, 1, bias=False)
        self.att_bn2 = nn.BatchNorm2d(k)
        self.att_conv2 = nn.Conv2d(k, k, 1, bias=False)
        self.att_conv3 = nn.Conv2d(k, 1, 3, padding=1, bias=False)
        self.att_bn3 = nn.BatchNorm2d(1)
        return self.to(next(backbone.parameters()).device)

    def _trunk_channels(self, backbone: Backbone) -> int:
        with eval_mode(self.extractor, self.attention_trunk), torch.no_grad():
            x = torch.zeros(1, 3, self.input_size, self.input_size, device=next(backbone.parameters()).device)
            return int(self.attention_trunk(self.extractor(x)).shape[1])

    # ------------------------------------------------------------------------------------------------ parts
    def resize(self, x: torch.Tensor) -> torch.Tensor:
        return resize_input(x, self.input_size)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """g(x)."""
        return self.extractor(self.resize(x))

    def attention(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(attention logits [B, K], attention map M [B, 1, h, w]) from g."""
        a = self.att_bn(self.attention_trunk(g))
        a = F.relu(self.att_bn2(self.att_conv(a)))
        att_map = torch.sigmoid(self.att_bn3(self.att_conv3(a)))
        logits = self.att_conv2(a).mean(dim=(2, 3))
        return logits, att_map

    def perceive(self, g: torch.Tensor, att_map: torch.Tensor) -> torch.Tensor:
        """Perception logits from g' = (1 + M) * g."""
        return self.head(self.perception(g * att_map + g))

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(attention logits, perception logits, attention map)."""
        g = self.features(x)
        att_logits, att_map = self.attention(g)
        return att_logits, self.perceive(g, att_map), att_map

    def loss(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        att_logits, per_logits, _ = self.forward_all(batch.x)
        loss = self.attention_weight * F.cross_entropy(att_logits, batch.y) + F.cross_entropy(per_logits, batch.y)
        return loss, per_logits

    # -------------------------------------------------------------------------------------------- interface
    def fit(self, ctx) -> dict[str, Any]:
        self.build(ctx.build_backbone())
        result = ctx.engine.fit(self, self.loss, ctx.data, predict=self.predict, desc=f"abn {ctx.backbone.name}")
        return {"fit": result.as_dict()}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[1]

    def explain(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """M(x) resized to the input (class-agnostic: ``target`` is not used)."""
        _, att_map = self.attention(self.features(x))
        return F.interpolate(att_map, size=x.shape[-2:], mode="bilinear", align_corners=False)
