"""Building blocks shared by the explanation-guided methods (IMPACTX, WAE): no method logic lives here.

- :func:`latent_head`: the FC(512) + sigmoid that replaces a backbone's last layer (IMPACTX's LEP, WAE's encoder).
- :class:`MapDecoder`: IMPACTX's decoder D, latent vector -> attribution map at input resolution (paper Fig. 2);
  :func:`make_decoder` builds it from a preset (``"paper"``, ``"small"``, ``"tiny"``).
- :func:`stage2_engine`: the engine of a second training stage with the method's own epochs / augment / lr.
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
    from methods.context import FitContext
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


DECODER_PRESETS = {
    # the decoder of the first suite versions: FC -> 128 x 4 x 4, blocks of 128 / 64 / 32 filters (32 px)
    "paper": {"width": 128, "start": None, "blocks": None},
    # sized for block-constant teacher maps (8 x 8 cells at 32 px): FC -> 16 x 8 x 8, two blocks of 16 filters
    "small": {"width": 16, "start": 8, "blocks": None},
    # the small decoder at half the width: FC -> 8 x 8 x 8, two blocks of 8 filters (~1/3 of small's multiply-adds)
    "tiny": {"width": 8, "start": 8, "blocks": None},
}


class MapDecoder(nn.Module):
    """D: FC -> reshape to a small map -> n x [Conv3x3, ReLU, Conv3x3, ReLU, UpSampling x2] -> Conv3x3 to C channels.

    The paper's Fig. 2 gives the layer types and 3x3 kernels but not the widths (docs/decisions.md#decoder-presets);
    decided: ``width`` filters in the first block, halved per block (at least 16); nearest-neighbour upsampling
    (Keras ``UpSampling2D`` default); linear output (targets are signed maps). ``start``: side of the first map
    (default: the smallest of at least 4 px that halves down from the image size: 4 at 32 px, 6 at 96 px);
    ``blocks``: how many blocks (default: as many as reach the image size). A map smaller than the image at the end
    is upsampled to it (nearest when the factor is an integer, else bilinear): teacher maps are block-constant, so D
    need not work at full resolution.
    """

    def __init__(self, latent_dim: int, out_channels: int, image_size: int, width: int = 128,
                 min_start: int = 4, start: int | None = None, blocks: int | None = None) -> None:
        super().__init__()
        self.image_size = image_size
        if start is None:
            self.num_blocks = decoder_blocks(image_size, min_start)
            self.start = image_size // (2 ** self.num_blocks)
        else:
            if not 1 <= start <= image_size:
                raise ValueError(f"decoder start resolution must be in [1, {image_size}], got {start}")
            self.start = int(start)
            self.num_blocks = 0
            while self.start * 2 ** (self.num_blocks + 1) <= image_size:
                self.num_blocks += 1
        if blocks is not None:
            if blocks < 0:
                raise ValueError(f"decoder blocks must be >= 0, got {blocks}")
            self.num_blocks = int(blocks)
        if width < 1:
            raise ValueError(f"decoder width must be >= 1, got {width}")
        self.width = width
        self.fc = nn.Sequential(nn.Linear(latent_dim, width * self.start * self.start), nn.ReLU(inplace=True))
        layers: list[nn.Module] = []
        cin = width
        for i in range(self.num_blocks):
            cout = max(min(16, width), width // (2 ** i))
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                       nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True),
                       nn.Upsample(scale_factor=2, mode="nearest")]
            cin = cout
        layers.append(nn.Conv2d(cin, out_channels, 3, padding=1))
        self.blocks = nn.Sequential(*layers)

    @property
    def out_size(self) -> int:
        return self.start * 2 ** self.num_blocks

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.blocks(self.fc(z).view(z.shape[0], self.width, self.start, self.start))
        size = out.shape[-1]
        if size != self.image_size or out.shape[-2] != self.image_size:
            if self.image_size % size == 0 and out.shape[-2] == size:
                out = F.interpolate(out, scale_factor=self.image_size // size, mode="nearest")
            else:
                out = F.interpolate(out, size=(self.image_size, self.image_size), mode="bilinear",
                                    align_corners=False)
        return out


def make_decoder(preset: str, out_channels: int, image_size: int, width: int | None = None,
                 start: int | None = None, blocks: int | None = None) -> MapDecoder:
    """D from a preset (``"paper"`` | ``"small"`` | ``"tiny"``, :data:`DECODER_PRESETS`) with any field overridden."""
    base = DECODER_PRESETS[check_choice("decoder", preset, tuple(DECODER_PRESETS))]
    return MapDecoder(LATENT_DIM, out_channels, image_size, width=width or base["width"],
                      start=start if start is not None else base["start"],
                      blocks=blocks if blocks is not None else base["blocks"])


def stage2_engine(engine, epochs: int | None = None, augment: bool | None = None, lr: float | None = None):
    """The engine of a method's second stage: the run's engine with the method's own ``epochs`` / ``augment`` /
    ``lr`` where given (None keeps the run's ``train.*`` value)."""
    changes = {k: v for k, v in (("epochs", epochs), ("augment", augment), ("lr", lr)) if v is not None}
    return engine.replace(**changes) if changes else engine


def check_stage2_options(epochs: int | None, augment: bool | None, lr: float | None) -> None:
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
    if augment is not None and not isinstance(augment, bool):
        raise ValueError(f"augment must be true or false, got {augment!r}")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0):
        raise ValueError(f"lr must be a number > 0, got {lr!r}")


def scale_maps(maps: torch.Tensor, mode: str = "max_abs", eps: float = 1e-12) -> torch.Tensor:
    """``"max_abs"``: each map divided by its own max |value| (all-zero maps stay zero); ``"raw"``: unchanged.

    Why: docs/decisions.md#teacher-map-scaling."""
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
