"""Evaluating explanations: MoRF curves and area scores as pure functions, with score direction metadata.

MoRF (Samek et al. 2016; paper §4.4): the image is cut into a grid of non-overlapping square regions, the regions are
ranked once by their relevance (descending, stable), and they are replaced cumulatively by noise in that order. The
model's score for the explained class after k replaced regions is ``f_k``; the curve is ``[f_0, f_1, ..., f_L]``.

Defaults (:class:`MorfConfig`; the reasons: docs/decisions.md#morf-defaults):

- region size ``H // 8`` (4x4 patches at 32 px, 12x12 at 96 px: 64 regions on every dataset);
- region relevance = *signed* sum of the map over the region's pixels and all map channels;
- order = stable descending sort of that relevance (ties keep region order: row-major, top-left first);
- replacement = per-pixel i.i.d. U(0, 1) noise in RAW pixel space ([0, 1]), then normalised like any input;
  ``baseline=<float>`` replaces by that constant raw value instead (what the Quantus cross-check uses);
- score = softmax probability of the target class (``score="logit"``: the raw logit);
- one noise draw per trajectory (``noise_draws=n`` averages the curves of n draws); the noise of image ``i`` is
  seeded from ``(seed, index[i], draw)`` only, so curves do not depend on batch composition, chunking or device
  (the noise is drawn on the CPU and moved). The map's curve and the random-order curve of an image share the
  same noise (a paired comparison).

Area scores (per image; tables take the mean); each is declared with its direction in :mod:`benchmarks.scores`:

- ``aopc`` = 1/(L+1) Σ_{k=0..L} (f_0 − f_k)                      (higher = better: the score falls fast);
- ``deletion_auc`` = area under f_k / f_0 against x = k / L ∈ [0, 1], trapezoidal rule (lower = better);
  with ``score="logit"`` the ratio is only meaningful for positive f_0;
- ``aopc_vs_random`` = aopc − aopc of a random region order (higher = better; ≈ 0 for an uninformative map);
- ``deletion_auc_vs_random`` = deletion_auc − deletion_auc of a random region order (lower = better).

Speed: the L+1 perturbed copies of many images are built with one ``torch.where`` on the device of the inputs
(normalisation is per-pixel affine, so the clean and the noise images are normalised once and mixed afterwards),
and go through the model in chunks of ``chunk_size`` images (default 1024 on CPU, 8192 on CUDA); there is no NumPy
round trip per step. On CPU the perturbed batch is laid out channels-last (``channels_last``), which oneDNN
convolves faster; a model that cannot take such input (``.view`` on activations) is retried contiguous.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from core.torch_utils import eval_mode

SCORES = ("probability", "logit")


@dataclass(frozen=True)
class MorfConfig:
    """MoRF settings (see the module docstring). ``None`` values are resolved per image size."""

    region_size: int | None = None  # side of a square region in pixels; None: H // 8 (64 regions)
    steps: int | None = None  # L, regions replaced (one per step); None: all regions
    score: str = "probability"  # "probability" (softmax of the target class) | "logit"
    noise_draws: int = 1  # noise trajectories per image, curves averaged (paper profile: 10)
    baseline: str | float = "uniform"  # "uniform": per-pixel U(0, 1) raw noise; a float: that constant raw value
    seed: int = 0  # base seed; image i uses (seed, index[i], draw)
    chunk_size: int | None = None  # perturbed images per forward pass (bounds memory); None: 1024 CPU, 8192 GPU
    channels_last: bool | None = None  # perturbed batch in channels-last layout; None: on CPU only (same values)

    def __post_init__(self) -> None:
        if isinstance(self.baseline, str) and self.baseline != "uniform":
            try:  # "0.5" from a command line
                object.__setattr__(self, "baseline", float(self.baseline))
            except ValueError:
                pass
        if self.score not in SCORES:
            raise ValueError(f"morf score must be one of {SCORES}, got {self.score!r}")
        if not (self.baseline == "uniform" or isinstance(self.baseline, (int, float))):
            raise ValueError(f"morf baseline must be 'uniform' or a number (raw pixel value), got {self.baseline!r}")
        if self.noise_draws < 1 or (self.chunk_size is not None and self.chunk_size < 1):
            raise ValueError("morf noise_draws and chunk_size must be >= 1")
        if self.region_size is not None and self.region_size < 1:
            raise ValueError("morf region_size must be >= 1")
        if self.steps is not None and self.steps < 1:
            raise ValueError("morf steps must be >= 1")
        if self.seed < 0:
            raise ValueError("morf seed must be >= 0")

    def resolve_region_size(self, height: int) -> int:
        return self.region_size or max(1, height // 8)

    def resolve_chunk_size(self, device: torch.device) -> int:
        """CPU: ~1k images keep the perturbed batch in cache (measured: 4k is ~15% slower for LeNet-5 at 32 px)."""
        return self.chunk_size or (1024 if torch.device(device).type == "cpu" else 8192)

    def resolve_channels_last(self, device: torch.device) -> bool:
        """CPU: channels-last input makes oneDNN convolutions ~1.3-1.9x faster for LeNet-5 (measured); the values
        are the same up to float rounding. On CUDA (fp32) it is left off unless asked for."""
        return self.channels_last if self.channels_last is not None else torch.device(device).type == "cpu"


def make_config(config: MorfConfig | None = None, **options) -> MorfConfig:
    """``config`` (default :class:`MorfConfig`) with ``options`` replacing fields; unknown keys are an error."""
    config = config or MorfConfig()
    unknown = set(options) - {f.name for f in dataclasses.fields(MorfConfig)}
    if unknown:
        raise TypeError(f"unknown MoRF options {sorted(unknown)}; valid: "
                        f"{sorted(f.name for f in dataclasses.fields(MorfConfig))}")
    return dataclasses.replace(config, **options) if options else config


# ----------------------------------------------------------------------------------------------------------- regions
def region_grid(height: int, width: int, region_size: int,
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, int]:
    """Region id of every pixel ([H, W] int64, row-major over the grid) and the number of regions.

    When the size does not divide the image, the last row / column of regions is smaller (nothing is padded).
    """
    rows = math.ceil(height / region_size)
    cols = math.ceil(width / region_size)
    ys = torch.arange(height, device=device) // region_size
    xs = torch.arange(width, device=device) // region_size
    return ys[:, None] * cols + xs[None, :], rows * cols


def region_relevance(maps: torch.Tensor, region_size: int) -> torch.Tensor:
    """Signed sum of ``maps`` [B, C, H, W] over each region and all channels -> [B, R] float32."""
    b, _, h, w = maps.shape
    ids, count = region_grid(h, w, region_size, maps.device)
    flat = maps.float().sum(1).reshape(b, -1)
    return torch.zeros(b, count, device=maps.device).index_add_(1, ids.reshape(-1), flat)


def morf_order(relevance: torch.Tensor) -> torch.Tensor:
    """Region indices [B, R] from most to least relevant (stable: ties keep the lower region index first)."""
    return torch.sort(relevance, dim=1, descending=True, stable=True).indices


def _seed(base: int, index: int, draw: int, stream: int) -> int:
    state = np.random.SeedSequence([int(base), int(index), int(draw), int(stream)]).generate_state(2, np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def random_order(index: torch.Tensor, regions: int, seed: int = 0) -> torch.Tensor:
    """One seeded random permutation of ``regions`` per image ([B, R]); image i depends only on (seed, index[i])."""
    perms = [torch.randperm(regions, generator=torch.Generator().manual_seed(_seed(seed, int(i), 0, 1)))
             for i in index.tolist()]
    return torch.stack(perms).to(index.device)


def random_maps(index: torch.Tensor, shape: tuple[int, int, int], seed: int = 0) -> torch.Tensor:
    """Seeded U(0, 1) maps [B, *shape] (the 'random map' floor); image i depends only on (seed, index[i])."""
    maps = [torch.rand(shape, generator=torch.Generator().manual_seed(_seed(seed, int(i), 0, 2)))
            for i in index.tolist()]
    return torch.stack(maps).to(index.device)


def _noise(index: torch.Tensor, shape: tuple[int, ...], config: MorfConfig, draw: int,
           device: torch.device) -> torch.Tensor:
    """Replacement images in raw pixel space [b, C, H, W] (CPU-drawn so values do not depend on the device)."""
    if config.baseline != "uniform":
        return torch.full((len(index), *shape), float(config.baseline), device=device)
    noise = [torch.rand(shape, generator=torch.Generator().manual_seed(_seed(config.seed, int(i), draw, 0)))
             for i in index.tolist()]
    return torch.stack(noise).to(device)


# -------------------------------------------------------------------------------------------------------- the curves
def _as_raw_float(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 255.0 if images.dtype == torch.uint8 else images.float()


def _prepare(images: torch.Tensor, target: torch.Tensor, index: torch.Tensor | None,
             normalize: Callable[[torch.Tensor], torch.Tensor] | None):
    if images.ndim != 4:
        raise ValueError(f"images must be [B, C, H, W], got {tuple(images.shape)}")
    device = images.device
    target = torch.as_tensor(target, device=device).long().reshape(-1)
    if target.shape[0] != images.shape[0]:
        raise ValueError("target must hold one class per image")
    index = torch.arange(images.shape[0], device=device) if index is None else \
        torch.as_tensor(index, device=device).long().reshape(-1)
    if index.shape[0] != images.shape[0]:
        raise ValueError("index must hold one id per image")
    norm = getattr(normalize, "normalize", normalize) or (lambda t: t)  # a DataBundle works too
    return target, index, norm


def _score(model: nn.Module, batch: torch.Tensor, target: torch.Tensor, score: str) -> torch.Tensor:
    logits = model(batch)
    if score == "probability":
        logits = torch.softmax(logits.float(), dim=1)
    return logits.gather(1, target[:, None])[:, 0].float()


def _masked_scores(model: nn.Module, images: torch.Tensor, target: torch.Tensor, index: torch.Tensor,
                   norm: Callable, config: MorfConfig, steps: int,
                   masks_of: Callable[[slice], torch.Tensor]) -> torch.Tensor:
    """Scores [B, S] of images whose pixels under ``masks_of(chunk)`` ([b, S, H, W] bool) are replaced by noise,
    averaged over the configured noise draws."""
    b_total = images.shape[0]
    device = images.device
    out = torch.zeros(b_total, steps, device=device)
    chunk_size = config.resolve_chunk_size(device)
    per_chunk = max(1, chunk_size // steps)
    channels_last = config.resolve_channels_last(device) and images.shape[1] > 1
    draws = config.noise_draws if config.baseline == "uniform" else 1  # a constant baseline has nothing to average
    buffer = None  # the perturbed batch, reused across chunks (no fresh 10+ MB allocation per chunk)
    with eval_mode(model), torch.inference_mode():
        for start in range(0, b_total, per_chunk):
            rows = slice(start, min(start + per_chunk, b_total))
            clean = norm(_as_raw_float(images[rows]))  # [b, C, H, W]
            masks = masks_of(rows)[:, :, None]  # [b, S, 1, H, W]
            tgt = target[rows].repeat_interleave(steps)
            if buffer is None:
                buffer = _buffer(min(per_chunk, b_total), steps, clean, False)
                layout = _buffer(min(per_chunk, b_total), steps, clean, True) if channels_last else None
            b = clean.shape[0]
            for draw in range(draws):
                noise = norm(_noise(index[rows], tuple(images.shape[1:]), config, draw, device))
                # where() into a contiguous buffer is ~3x faster than into a channels-last one (its broadcast mask
                # vectorises along W); one copy then gives the channels-last batch (measured: ~3.3 vs 5.6 ms).
                batch = torch.where(masks, noise[:, None], clean[:, None], out=buffer[:b])
                if channels_last:
                    batch = layout[:b].copy_(batch)
                batch = batch.reshape(-1, *clean.shape[1:])  # a view; channels-last strides when asked
                scores = []
                for i in range(0, batch.shape[0], chunk_size):
                    try:
                        scores.append(_score(model, batch[i:i + chunk_size], tgt[i:i + chunk_size], config.score))
                    except RuntimeError:
                        if not channels_last:
                            raise
                        # A model that .view()s its activations cannot take channels-last input: go contiguous.
                        channels_last = False
                        batch = batch.contiguous()
                        scores.append(_score(model, batch[i:i + chunk_size], tgt[i:i + chunk_size], config.score))
                out[rows] += torch.cat(scores).view(-1, steps)
    return out / draws


def _buffer(b: int, steps: int, like: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """Storage for b·steps perturbed images, shaped [b, steps, C, H, W]; with ``channels_last`` its reshape to
    [b·steps, C, H, W] has channels-last strides (faster convolutions on CPU, identical values)."""
    c, h, w = like.shape[1:]
    if channels_last:
        return torch.empty(b, steps, h, w, c, device=like.device, dtype=like.dtype).permute(0, 1, 4, 2, 3)
    return torch.empty(b, steps, c, h, w, device=like.device, dtype=like.dtype)


def morf_curves(model: nn.Module, images: torch.Tensor, target: torch.Tensor, maps: torch.Tensor | None = None, *,
                normalize: Callable[[torch.Tensor], torch.Tensor] | None = None, index: torch.Tensor | None = None,
                order: torch.Tensor | None = None, config: MorfConfig | None = None, **options) -> torch.Tensor:
    """MoRF curves [B, L+1] (``[:, 0]`` = the clean image's score).

    ``images``: RAW images, uint8 [0, 255] or float [0, 1], [B, C, H, W] (hold normalised ``x``? pass
    ``data.denormalize(x).clamp(0, 1)``). ``normalize``: raw -> model input (``data.normalize`` or the bundle itself;
    must act per pixel; ``None`` = the model takes raw images). ``target`` [B]: explained classes. ``maps``
    [B, 1|C, H, W]: relevance; or ``order`` [B, R]: a precomputed region order (e.g. :func:`random_order`).
    ``index`` [B]: per-image ids seeding the noise (default ``arange(B)``; pass dataset indices so a subset or a
    different batching gives the same curves). ``config`` / ``options``: :class:`MorfConfig` fields.
    The model runs on the images' device.
    """
    config = make_config(config, **options)
    target, index, norm = _prepare(images, target, index, normalize)
    b, _, h, w = images.shape
    size = config.resolve_region_size(h)
    ids, regions = region_grid(h, w, size, images.device)
    if order is None:
        if maps is None:
            raise ValueError("pass maps or order")
        if maps.shape[0] != b or maps.shape[-2:] != images.shape[-2:]:
            raise ValueError(f"maps {tuple(maps.shape)} do not match images {tuple(images.shape)}")
        order = morf_order(region_relevance(maps.to(images.device), size))
    order = order.to(images.device)
    if order.shape != (b, regions):
        raise ValueError(f"order must be [B, R] = [{b}, {regions}], got {tuple(order.shape)}")
    steps = min(config.steps or regions, regions)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(regions, device=order.device).expand(b, -1))
    pixel_rank = rank[:, ids].to(torch.int16 if regions < 2 ** 15 else torch.int64)  # [B, H, W]: region position
    ks = torch.arange(steps + 1, device=images.device, dtype=pixel_rank.dtype)[None, :, None, None]
    return _masked_scores(model, images, target, index, norm, config, steps + 1,
                          lambda rows: pixel_rank[rows][:, None] < ks)


def region_occlusion_maps(model: nn.Module, images: torch.Tensor, target: torch.Tensor, *,
                          normalize: Callable[[torch.Tensor], torch.Tensor] | None = None,
                          index: torch.Tensor | None = None, config: MorfConfig | None = None,
                          **options) -> torch.Tensor:
    """The 'oracle' map [B, 1, H, W]: each region's pixels hold f_0 − f(image with only that region replaced),
    with the same grid, noise and score as MoRF (exhaustive single-region occlusion, R + 1 forwards per image)."""
    config = make_config(config, **options)
    target, index, norm = _prepare(images, target, index, normalize)
    b, _, h, w = images.shape
    ids, regions = region_grid(h, w, config.resolve_region_size(h), images.device)
    which = torch.arange(-1, regions, device=images.device)[:, None, None]  # -1: clean image
    masks = (ids[None] == which)[None]  # [1, R+1, H, W]
    scores = _masked_scores(model, images, target, index, norm, config, regions + 1,
                            lambda rows: masks.expand(rows.stop - rows.start, -1, -1, -1))
    drop = scores[:, :1] - scores[:, 1:]  # [B, R]
    return drop[:, ids][:, None]


# ------------------------------------------------------------------------------------------------------ area scores
def aopc(curves: torch.Tensor) -> torch.Tensor:
    """AOPC [B] = 1/(L+1) Σ_{k=0..L} (f_0 − f_k) (higher = better)."""
    return (curves[:, :1] - curves).mean(1)


def deletion_auc(curves: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Area [B] under f_k / f_0 against x = k / L in [0, 1], trapezoidal rule (lower = better).

    f_0 is clamped away from 0 by ``eps`` (keeping its sign) so an image the model gives ~0 does not divide by 0.
    """
    f0 = curves[:, :1]
    f0 = torch.where(f0 >= 0, f0.clamp_min(eps), f0.clamp_max(-eps))
    steps = curves.shape[1] - 1
    if steps < 1:
        raise ValueError("curves need at least two points")
    return torch.trapezoid(curves / f0, dx=1.0 / steps, dim=1)


def area_scores(curves: torch.Tensor, random_curves: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-image area scores: ``aopc``, ``deletion_auc`` and, given the random-order curves of the same images,
    ``aopc_vs_random`` and ``deletion_auc_vs_random`` (score − score of the random order)."""
    scores = {"aopc": aopc(curves), "deletion_auc": deletion_auc(curves)}
    if random_curves is not None:
        scores["aopc_vs_random"] = scores["aopc"] - aopc(random_curves)
        scores["deletion_auc_vs_random"] = scores["deletion_auc"] - deletion_auc(random_curves)
    return scores


def random_curves(model: nn.Module, images: torch.Tensor, target: torch.Tensor, *,
                  normalize: Callable[[torch.Tensor], torch.Tensor] | None = None, index: torch.Tensor | None = None,
                  config: MorfConfig | None = None, **options) -> torch.Tensor:
    """MoRF curves [B, L+1] of a seeded random region order (the reference of the ``*_vs_random`` scores)."""
    config = make_config(config, **options)
    _, index, _ = _prepare(images, target, index, normalize)
    h, w = images.shape[-2:]
    _, regions = region_grid(h, w, config.resolve_region_size(h))
    order = random_order(index, regions, config.seed)
    return morf_curves(model, images, target, normalize=normalize, index=index, order=order, config=config)


def morf_scores(model: nn.Module, images: torch.Tensor, target: torch.Tensor, maps: torch.Tensor, *,
                normalize: Callable[[torch.Tensor], torch.Tensor] | None = None, index: torch.Tensor | None = None,
                config: MorfConfig | None = None, reference: torch.Tensor | None = None,
                **options) -> dict[str, torch.Tensor]:
    """All area scores of ``maps`` per image (see :func:`area_scores`); ``reference``: precomputed random-order
    curves (computed here otherwise). The result also holds ``"curves"`` and ``"random_curves"``."""
    config = make_config(config, **options)
    curves = morf_curves(model, images, target, maps, normalize=normalize, index=index, config=config)
    if reference is None:
        reference = random_curves(model, images, target, normalize=normalize, index=index, config=config)
    return {**area_scores(curves, reference), "curves": curves, "random_curves": reference}


# --------------------------------------------------------------------------------------------- ground-truth scores
def ground_truth_scores(maps: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
    """Localisation against known relevance (e.g. ``synthetic``'s template masks), per image [B].

    The map is first summed over its channels. ``mask_share`` = Σ_{mask} max(m, 0) / Σ max(m, 0): the share of the
    POSITIVE relevance inside the mask (an all-non-positive map scores the mask's area fraction, i.e. chance).
    ``pointing_game`` = 1.0 if the pixel of highest summed relevance lies in the mask, else 0.0; when several pixels
    share the maximum (block-constant SHAP maps, constant maps) it is the share of those pixels inside the mask.
    """
    if masks.shape[0] != maps.shape[0] or masks.shape[-2:] != maps.shape[-2:]:
        raise ValueError(f"masks {tuple(masks.shape)} do not match maps {tuple(maps.shape)}")
    m = maps.float().sum(1).flatten(1)
    inside = masks.to(maps.device).bool().flatten(1) if masks.ndim == 3 else \
        masks.to(maps.device).bool().any(1).flatten(1)
    positive = m.clamp_min(0)
    total = positive.sum(1)
    chance = inside.float().mean(1)
    share = torch.where(total > 0, (positive * inside).sum(1) / total.clamp_min(1e-30), chance)
    top = m == m.max(1, keepdim=True).values
    pointing = (top & inside).sum(1).float() / top.sum(1).float()
    return {"mask_share": share, "pointing_game": pointing}


__all__ = ["MorfConfig", "aopc", "area_scores", "deletion_auc",
           "ground_truth_scores", "make_config", "morf_curves", "morf_order", "morf_scores", "random_curves",
           "random_maps", "random_order", "region_grid", "region_occlusion_maps", "region_relevance"]
