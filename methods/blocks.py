"""Building blocks shared by the explanation-guided methods (IMPACTX, WAE): no method logic lives here.

- :func:`latent_head`: the FC(512) + sigmoid that replaces a backbone's last layer (IMPACTX's LEP, WAE's encoder).
- :class:`MapDecoder`: IMPACTX's decoder D, latent vector -> attribution map at input resolution (paper Fig. 2).
- :func:`shallow_classifier`: the classifier C on concatenated features, Linear(in, 256) -> ReLU -> Linear(256, K).
- :func:`scale_maps`: per-map normalisation of teacher maps (``"max_abs"`` -> [-1, 1], or ``"raw"``).
- :func:`freeze`: ``requires_grad = False`` on every parameter of a module (its BatchNorm is kept in eval mode by
  passing it to ``Engine.fit(freeze_eval=[...])``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from benchmarks.context import FitContext
    from methods.backbones import Backbone

LATENT_DIM = 512
MAP_SCALES = ("max_abs", "raw")
TRUNK_INITS = ("stage1", "pretrained", "scratch")


def latent_head(num_features: int, dim: int = LATENT_DIM) -> nn.Module:
    """FC(dim) + sigmoid (paper §4.3: LEP's last layer)."""
    return nn.Sequential(nn.Linear(num_features, dim), nn.Sigmoid())


def shallow_classifier(in_features: int, num_classes: int, hidden: int = 256) -> nn.Module:
    """C: "a shallow fully-connected network with K outputs" (decided: one hidden layer of 256 ReLU units)."""
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))


def decoder_blocks(image_size: int, min_start: int = 4) -> int:
    """Number of [Conv, Conv, UpSampling x2] blocks: the most halvings that leave an integer start map of at least
    ``min_start`` pixels (32 px -> 3 blocks from 4x4; 96 px -> 4 blocks from 6x6, i.e. one more, as in the paper)."""
    n = 0
    while image_size % (2 ** (n + 1)) == 0 and image_size // (2 ** (n + 1)) >= min_start:
        n += 1
    return n


class MapDecoder(nn.Module):
    """D: FC -> reshape to a small map -> n x [Conv3x3, ReLU, Conv3x3, ReLU, UpSampling x2] -> Conv3x3 to C channels.

    The paper's Fig. 2 gives the layer types and 3x3 kernels but not the widths; decided: ``width`` filters in the
    first block, halved per block (at least 16); nearest-neighbour upsampling (Keras ``UpSampling2D`` default);
    linear output (targets are signed maps). Sizes that do not halve down to a whole map are bilinearly resized at
    the end.
    """

    def __init__(self, latent_dim: int, out_channels: int, image_size: int, width: int = 128,
                 min_start: int = 4) -> None:
        super().__init__()
        self.image_size = image_size
        self.num_blocks = decoder_blocks(image_size, min_start)
        self.start = image_size // (2 ** self.num_blocks)
        self.width = width
        self.fc = nn.Sequential(nn.Linear(latent_dim, width * self.start * self.start), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        cin = width
        for i in range(self.num_blocks):
            cout = max(16, width // (2 ** i))
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                       nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True),
                       nn.Upsample(scale_factor=2, mode="nearest")]
            cin = cout
        layers.append(nn.Conv2d(cin, out_channels, 3, padding=1))
        self.blocks = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.fc(z).view(z.shape[0], self.width, self.start, self.start))
        if out.shape[-1] != self.image_size or out.shape[-2] != self.image_size:
            out = F.interpolate(out, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return out


def scale_maps(maps: torch.Tensor, mode: str = "max_abs", eps: float = 1e-12) -> torch.Tensor:
    """``"max_abs"``: each map divided by its own max |value| (all-zero maps stay zero); ``"raw"``: unchanged."""
    if mode == "raw":
        return maps
    if mode != "max_abs":
        raise ValueError(f"map_scale must be one of {MAP_SCALES}, got {mode!r}")
    peak = maps.abs().flatten(1).amax(1).view(-1, *([1] * (maps.ndim - 1)))
    return maps / peak.clamp_min(eps)


def check_choice(option: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{option} must be one of {choices}, got {value!r}")
    return value


def freeze(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def trunk_copy(ctx: "FitContext", init: str, stage1: "Backbone | None", head: nn.Module) -> "Backbone":
    """A backbone copy with a new last layer, initialised from the stage-1 model, the backbone's default
    (pretrained) weights, or from scratch (random init, ``pretrained=False``)."""
    import dataclasses

    check_choice("init", init, TRUNK_INITS)
    if init == "stage1":
        if stage1 is None:
            raise ValueError("init='stage1' needs a stage-1 model")
        clone = stage1.with_new_head(head)
    elif init == "pretrained":
        clone = ctx.build_backbone().with_new_head(head)
    else:
        torch.manual_seed(ctx.seed)
        cfg = dataclasses.replace(ctx.backbone, pretrained=False, weights_path=None)
        clone = cfg.build(ctx.data.num_classes, ctx.data.image_size).with_new_head(head)
    for p in clone.parameters():  # trainable even when copied from a frozen stage-1 model
        p.requires_grad_(True)
    return clone.train().to(ctx.device)


def as_image_channels(maps: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """Maps [B, 1|C, H, W] as a ``channels``-channel input (a one-channel map is broadcast)."""
    if maps.shape[1] == channels:
        return maps
    if maps.shape[1] == 1:
        return maps.expand(-1, channels, -1, -1)
    raise ValueError(f"cannot feed a {maps.shape[1]}-channel map to a {channels}-channel trunk")
