"""A batched reimplementation of shap's Partition explainer for images (``partition``).

It computes exactly what ``shap.explainers.Partition`` (shap 0.51) computes with an ``Image("blur(kx,ky)")``
masker, ``outputs=[target]``, ``fixed_context=None`` and a ``batch_size >= max_evals`` (see
:mod:`methods.explainers.shap_reference`), but it evaluates the masked images of MANY images in one forward pass
and does the queue bookkeeping with numpy, on the device of the input.

What is reproduced (read ``shap/explainers/_partition.py``, ``shap/maskers/_image.py``,
``shap/utils/_masked_model.py``):

* the partition tree of ``Image.build_partition_tree`` for the channels-last shape (H, W, C): a heap of boxes by
  size, split along H when it is at least as wide as W, else along W, and along channels only once H = W = 1;
* the masker: a feature kept (mask True) shows the image, a hidden one the ``cv2.blur`` of the channels-last image
  (computed with OpenCV itself, once per image);
* ``PartitionExplainer.owen`` with ``fixed_context=None``: a priority queue of (m00, f00, f11, node, weight) ordered
  by ``-max|f11 - f00| * weight`` with ties broken by ``np.random.randn()``; each expanded node evaluates
  m00 + left and m00 + right and pushes four children with half the weight; ``max_evals - 2`` evaluations after
  f(blurred) and f(x); when the budget is spent every queued node keeps ``(f11 - f00) * weight``; finally
  ``lower_credit`` spreads each node's value over its leaves in proportion to their size.

With a batch size of at least ``max_evals`` shap pops the whole queue each round, so the search proceeds in
*waves*: every node of depth d is popped (in priority order) in round d and only the last round is cut by the
budget. Priority order therefore matters for two things only, both reproduced exactly: which nodes the last round
expands, and which ``randn`` tie-break value each pushed child receives (shap consumes the global NumPy stream in
push order; each image here uses a fresh ``RandomState(seed)`` stream, which equals shap's global stream when it
is seeded with ``seed`` before each image, as the reference explainer does).

All images of a call advance wave by wave in lock-step; the masked evaluations of a wave (all images, all nodes)
go through the model in chunks of ``batch_size`` images.
"""
from __future__ import annotations

import heapq
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from methods.explainers.base import Explainer, register_explainer
from methods.fast_forward import BatchForward, compile_model, prefers_channels_last
from core.progress import progress as progress_bar
from core.torch_utils import eval_mode


def parse_blur(masker: str) -> tuple[int, int]:
    """``"blur(kx,ky)"`` -> (kx, ky), the OpenCV ``ksize`` shap's Image masker uses."""
    text = masker.replace(" ", "")
    if not (text.startswith("blur(") and text.endswith(")")):
        raise ValueError(f"partition supports the masker 'blur(kx,ky)' only, got {masker!r} "
                         "(use the shap-partition explainer for 'inpaint_telea' / 'inpaint_ns')")
    try:
        kx, ky = (int(v) for v in text[5:-1].split(","))
    except ValueError as err:
        raise ValueError(f"bad blur masker {masker!r}; expected e.g. 'blur(128,128)'") from err
    if kx < 1 or ky < 1:
        raise ValueError(f"blur kernel sizes must be positive, got {masker!r}")
    return kx, ky


def blur_images(x: torch.Tensor, ksize: tuple[int, int]) -> torch.Tensor:
    """shap's blur background: ``cv2.blur`` of each channels-last image, returned [B, C, H, W] on x's device."""
    import cv2

    hwc = x.detach().permute(0, 2, 3, 1).contiguous().cpu().numpy()
    out = np.stack([cv2.blur(img, ksize) for img in hwc])
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(x.device)


def build_clustering(h: int, w: int, c: int) -> np.ndarray:
    """shap's ``Image.build_partition_tree`` for a channels-last (h, w, c) image: an [M - 1, 4] scipy-style linkage
    (left, right, distance = 0, size), leaves = flat (h, w, c) feature indices, internal node i has id M + i."""
    m = h * w * c
    clustering = np.zeros((m - 1, 4))
    heap = [(0, 0, h, 0, w, 0, c, -1, False)]
    ind = m - 2
    while heap:
        _, xmin, xmax, ymin, ymax, zmin, zmax, parent, is_left = heapq.heappop(heap)
        if parent >= 0:
            clustering[parent, 0 if is_left else 1] = ind + m
        if ind < 0:
            assert -ind - 1 == xmin * w * c + ymin * c + zmin
        xw, yw, zw = xmax - xmin, ymax - ymin, zmax - zmin
        if not (xw == 1 and yw == 1 and zw == 1):
            lx0 = rx0 = xmin
            lx1 = rx1 = xmax
            ly0 = ry0 = ymin
            ly1 = ry1 = ymax
            lz0 = rz0 = zmin
            lz1 = rz1 = zmax
            if xw >= yw and xw > 1:
                lx1 = rx0 = xmin + xw // 2
            elif yw > 1:
                ly1 = ry0 = ymin + yw // 2
            else:
                lz1 = rz0 = zmin + zw // 2
            lsize = (lx1 - lx0) * (ly1 - ly0) * (lz1 - lz0)
            rsize = (rx1 - rx0) * (ry1 - ry0) * (rz1 - rz0)
            heapq.heappush(heap, (-lsize, lx0, lx1, ly0, ly1, lz0, lz1, ind, True))
            heapq.heappush(heap, (-rsize, rx0, rx1, ry0, ry1, rz0, rz1, ind, False))
        ind -= 1
    for i in range(m - 1):
        li, ri = int(clustering[i, 0]), int(clustering[i, 1])
        clustering[i, 3] = (1 if li < m else clustering[li - m, 3]) + (1 if ri < m else clustering[ri - m, 3])
    return clustering


GEMM_SLOTS = 512  # frontiers up to this many slots expand masks by a matrix product


class PartitionTree:
    """The partition tree of an (h, w, c) image plus what the batched search needs: children, sizes, depths and,
    per depth d, the *frontier* (nodes of depth d and shallower leaves, a partition of the features) with a slot
    index for each of its nodes."""

    def __init__(self, h: int, w: int, c: int) -> None:
        self.shape = (h, w, c)
        self.m = m = h * w * c
        self.clustering = build_clustering(h, w, c)
        n = 2 * m - 1
        self.left = np.full(n, -1, dtype=np.int64)
        self.right = np.full(n, -1, dtype=np.int64)
        self.left[m:] = self.clustering[:, 0].astype(np.int64)
        self.right[m:] = self.clustering[:, 1].astype(np.int64)
        self.size = np.ones(n, dtype=np.int64)
        self.size[m:] = self.clustering[:, 3].astype(np.int64)
        self.parent = np.full(n, -1, dtype=np.int64)
        self.parent[self.left[m:]] = np.arange(m, n)
        self.parent[self.right[m:]] = np.arange(m, n)
        self.root = n - 1
        # children always have smaller ids than their parent: one descending pass gives the depths
        depth = np.zeros(n, dtype=np.int64)
        levels = [np.array([self.root])]
        while True:
            nodes = levels[-1]
            nodes = nodes[nodes >= m]
            if len(nodes) == 0:
                break
            kids = np.concatenate([self.left[nodes], self.right[nodes]])
            depth[kids] = len(levels)
            levels.append(np.sort(kids))
        self.depth = depth
        self.levels = levels  # node ids by depth
        self._frontiers: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._labels: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor | None]] = {}

    @property
    def max_depth(self) -> int:
        return len(self.levels) - 1

    def frontier(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        """(nodes, slot) at depth d: ``nodes`` the sorted frontier, ``slot`` [2M - 1] -> position in it (or -1)."""
        d = min(d, self.max_depth)
        if d not in self._frontiers:
            leaves_above = np.nonzero((self.depth[:self.m] < d))[0]
            nodes = np.unique(np.concatenate([self.levels[d], leaves_above]))
            slot = np.full(2 * self.m - 1, -1, dtype=np.int64)
            slot[nodes] = np.arange(len(nodes))
            self._frontiers[d] = (nodes, slot)
        return self._frontiers[d]

    def step_map(self, d: int) -> np.ndarray:
        """For each slot of frontier d + 1, the slot of frontier d that contains it."""
        nodes1, _ = self.frontier(d + 1)
        _, slot0 = self.frontier(d)
        prev = np.where(self.depth[nodes1] == d + 1, self.parent[nodes1], nodes1) if d + 1 <= self.max_depth \
            else nodes1
        return slot0[prev]

    def labels(self, d: int) -> np.ndarray:
        """For each feature (flat (h, w, c) index), its slot in frontier d."""
        d = min(d, self.max_depth)
        a = np.arange(self.m)
        for _ in range(self.max_depth):
            a = np.where(self.depth[a] > d, self.parent[a], a)
        return self.frontier(d)[1][a]

    def pixel_masks(self, d: int, slot_masks: torch.Tensor) -> torch.Tensor:
        """Slot masks [n, slots of frontier d] (bool) -> pixel masks [n, C or 1, H, W] (one plane when every box
        spans all channels, as at the budgets SHAP is used with). Up to ``GEMM_SLOTS`` slots this is a product with
        the 0/1 slot-to-pixel matrix (exact, ~2.6x faster than an index gather on CPU), beyond that a gather."""
        h, w, c = self.shape
        d = min(d, self.max_depth)
        key = (d, str(slot_masks.device))
        if key not in self._labels:
            label = self.labels(d).reshape(h, w, c).transpose(2, 0, 1)
            if (label == label[:1]).all():
                label = label[:1]
            label = torch.from_numpy(np.ascontiguousarray(label)).to(slot_masks.device)
            slots = len(self.frontier(d)[0])
            spread = torch.nn.functional.one_hot(label.reshape(-1), slots).T.float().contiguous() \
                if slots <= GEMM_SLOTS else None
            self._labels[key] = (label, spread)
        label, spread = self._labels[key]
        if spread is None:
            return slot_masks[:, label]
        return (slot_masks.float() @ spread).view(slot_masks.shape[0], *label.shape) > 0.5

    def lower_credit(self, dvalues: np.ndarray) -> np.ndarray:
        """shap's ``lower_credit`` for a batch: dvalues [B, 2M - 1] -> leaf values [B, M] (same arithmetic order)."""
        values = dvalues.copy()
        for nodes in self.levels:
            nodes = nodes[nodes >= self.m]
            if len(nodes) == 0:
                continue
            group = self.size[nodes].astype(np.float64)
            for kids in (self.left[nodes], self.right[nodes]):
                values[:, kids] += values[:, nodes] * self.size[kids].astype(np.float64) / group
        return values[:, :self.m]


@lru_cache(maxsize=8)
def partition_tree(h: int, w: int, c: int) -> PartitionTree:
    return PartitionTree(h, w, c)


def owen_partition(forward, x: torch.Tensor, background: torch.Tensor, target: torch.Tensor, max_evals: int,
                   seed: int = 0, batch_size: int = 1024, progress: Any = None,
                   channels_last: bool | None = None,
                   compiled_forward: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The batched Owen-value search. ``forward`` maps a [n, C, H, W] batch to scores [n, K].

    ``channels_last`` (default: on CPU) and ``compiled_forward`` (``forward`` on a compiled model, fed fixed-size
    batches): how the masked batches are run, see :mod:`methods.fast_forward`; neither changes the maps beyond float
    rounding.

    Returns (values [B, C, H, W] float64, base values f(background) [B]); ``values`` sums to f(x) - f(background).
    """
    b, c, h, w = x.shape
    tree = partition_tree(h, w, c)
    m = tree.m
    budget = max_evals - 2  # shap: owen(..., max_evals - 2, ...) after f00 and f11
    device = x.device
    tgt = target.to(device).long()
    rng = np.random.RandomState(seed).randn(2 * max(budget, 0) + 8)  # each expansion costs 2 evals, pushes 4
    forward = BatchForward(forward, batch_size,
                           prefers_channels_last(device) if channels_last is None else channels_last, compiled_forward)

    @torch.no_grad()
    def evaluate(img: np.ndarray, masks: np.ndarray | None, depth: int = 0) -> np.ndarray:
        """Scores of the target class for masked images: row r shows image ``img[r]`` where ``masks[r]`` keeps a
        slot of frontier ``depth`` and its background elsewhere. Without ``masks``: ``img >= 0`` is the image
        itself, ``img < 0`` its background (~img)."""
        out = np.empty(len(img), dtype=np.float64)
        img_t = torch.from_numpy(img).to(device)
        for s in range(0, len(img), batch_size):
            idx = img_t[s:s + batch_size]
            if masks is None:  # img entries >= 0: the image itself; < 0: its background (~img)
                keep = (idx >= 0).view(-1, 1, 1, 1)
                real = torch.where(idx >= 0, idx, ~idx)
                xb = torch.where(keep, x[real], background[real])
            else:
                real = idx
                # [n, C or 1, H, W]: a single plane broadcasts over the channels
                mk = tree.pixel_masks(depth, torch.from_numpy(masks[s:s + batch_size]).to(device))
                chunk = img[s:s + batch_size]  # sorted by image: a few long runs once the waves are large
                cuts = np.flatnonzero(np.diff(chunk)) + 1
                if len(cuts) < 16:  # broadcast each run's image instead of gathering copies of it
                    xb = torch.empty((len(chunk), c, h, w), dtype=x.dtype, device=device)
                    for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(chunk)]):
                        i = int(chunk[lo])
                        torch.where(mk[lo:hi], x[i:i + 1], background[i:i + 1], out=xb[lo:hi])
                else:
                    xb = torch.where(mk, x[real], background[real])
            scores = forward(xb)
            out[s:s + len(idx)] = scores.gather(1, tgt[real].view(-1, 1)).squeeze(1).double().cpu().numpy()
            if progress is not None:
                progress.update(len(idx))
        return out

    both = evaluate(np.concatenate([np.arange(b), ~np.arange(b)]), None)
    f11_root, f00_root = both[:b], both[b:]
    dvalues = np.zeros((b, 2 * m - 1), dtype=np.float64)
    evals = np.zeros(b, dtype=np.int64)
    pushes = np.zeros(b, dtype=np.int64)

    # the queue of one wave (all images): items at depth d, masks m00 as booleans over frontier d's slots
    img = np.arange(b)
    node = np.full(b, tree.root)
    weight = np.ones(b)
    f00, f11 = f00_root.copy(), f11_root.copy()
    prio = np.zeros(b)
    key = np.zeros(b)
    m00 = np.zeros((b, 1), dtype=bool)
    d = 0
    while len(img) and budget > 0:
        order = np.lexsort((key, prio, img))
        img, node, weight, f00, f11, m00 = img[order], node[order], weight[order], f00[order], f11[order], m00[order]
        internal = node >= m
        # exclusive per-image count of internal nodes before each position (items are grouped by image)
        csum = np.cumsum(internal)
        starts = np.searchsorted(img, img, side="left")
        before = csum - internal - np.where(starts > 0, csum[starts - 1], 0)
        popped = evals[img] + 2 * before < budget
        expand = popped & internal
        # leaves (popped or not) and unpopped internal nodes keep (f11 - f00) * weight
        settle = ~expand
        np.add.at(dvalues, (img[settle], node[settle]), (f11[settle] - f00[settle]) * weight[settle])
        if not expand.any():
            break
        e_img, e_node, e_w = img[expand], node[expand], weight[expand]
        e_f00, e_f11 = f00[expand], f11[expand]
        n_exp = np.bincount(e_img, minlength=b)
        # rank of each expanded item among its image's expansions (pop order) -> its randn stream positions
        e_starts = np.searchsorted(e_img, e_img, side="left")
        rank = np.arange(len(e_img)) - e_starts
        base = pushes[e_img] + 4 * rank
        pushes += 4 * n_exp
        evals += 2 * n_exp
        # masks over frontier d + 1
        step = tree.step_map(d)
        _, slot1 = tree.frontier(d + 1)
        lnode, rnode = tree.left[e_node], tree.right[e_node]
        e_m00 = m00[expand][:, step]
        rows = np.arange(len(e_img))
        m10 = e_m00.copy()
        m10[rows, slot1[lnode]] = True
        m01 = e_m00.copy()
        m01[rows, slot1[rnode]] = True
        out = evaluate(np.repeat(e_img, 2), np.stack([m10, m01], 1).reshape(2 * len(e_img), -1), d + 1)
        f10, f01 = out[0::2], out[1::2]
        w2 = e_w / 2
        # children in shap's push order: (m00, f00, f10, L), (m00, f00, f01, R), (m01, f01, f11, L), (m10, f10, f11, R)
        c_img = np.repeat(e_img, 4)
        c_node = np.stack([lnode, rnode, lnode, rnode], 1).reshape(-1)
        c_w = np.repeat(w2, 4)
        c_f00 = np.stack([e_f00, e_f00, f01, f10], 1).reshape(-1)
        c_f11 = np.stack([f10, f01, e_f11, e_f11], 1).reshape(-1)
        c_m00 = np.stack([e_m00, e_m00, m01, m10], 1).reshape(4 * len(e_img), -1)
        c_prio = -np.abs(c_f11 - c_f00) * c_w
        c_key = rng[(base[:, None] + np.arange(4)).reshape(-1)]
        # images whose budget is now spent settle everything still queued
        done = evals[c_img] >= budget
        np.add.at(dvalues, (c_img[done], c_node[done]), (c_f11[done] - c_f00[done]) * c_w[done])
        keep = ~done
        img, node, weight, f00, f11 = c_img[keep], c_node[keep], c_w[keep], c_f00[keep], c_f11[keep]
        prio, key, m00 = c_prio[keep], c_key[keep], c_m00[keep]
        d += 1
    if len(img) and budget <= 0:  # no budget at all: the root keeps everything
        np.add.at(dvalues, (img, node), (f11 - f00) * weight)
    values = tree.lower_credit(dvalues).reshape(b, h, w, c).transpose(0, 3, 1, 2)
    return values, f00_root


@register_explainer("partition")
class Partition(Explainer):
    """shap's Partition explainer (Owen values over the image's axis-aligned partition tree, blur masker),
    reimplemented to explain many images per forward pass; numerically the same maps as ``shap-partition``.

    Options: ``max_evals`` (model evaluations per image, shap's meaning), ``masker`` ("blur(kx,ky)"), ``seed``
    (priority tie-breaks, as shap's seeded global NumPy RNG), ``output`` (probability | logit), ``batch_size``
    (images per forward pass, default ~2M input values per batch on CPU (651 images at 32 px, 72 at 96 px) and
    2048 on CUDA), ``compile`` (run the masked batches through ``torch.compile``: 1.3-1.6x faster for LeNet-5 on
    CPU after a compile of a few seconds, see :mod:`methods.fast_forward`). ``batch_size`` and ``compile`` do not
    change the maps (beyond float rounding), so they are not part of the config (nor of cache keys).
    """

    def __init__(self, output: str = "probability", max_evals: int = 2000, masker: str = "blur(128,128)",
                 seed: int = 0, batch_size: int | None = None, progress: bool = False, compile: bool = False) -> None:
        super().__init__(output)
        if int(max_evals) < 2:
            raise ValueError(f"max_evals must be at least 2, got {max_evals}")
        parse_blur(masker)
        self.max_evals = int(max_evals)
        self.masker = masker
        self.seed = int(seed)
        self._batch_size = None if batch_size is None else int(batch_size)
        self._progress = progress
        self._compile = bool(compile)
        self._compiled: tuple[nn.Module, nn.Module] | None = None  # (model, its compiled module), reused per model

    def compiled(self, model: nn.Module) -> nn.Module:
        """The compiled ``model``, built once and reused by every call on the same model (e.g. every shard)."""
        if self._compiled is None or self._compiled[0] is not model:
            self._compiled = (model, compile_model(model))
        return self._compiled[1]

    def explain(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        forward = self.scores(model)
        bar = None
        if self._progress:
            bar = progress_bar(x.shape[0] * self.max_evals, "partition evals", unit="eval", unit_scale=True, level=2,
                               close_line=False)
        try:
            x = x.detach()
            background = blur_images(x, parse_blur(self.masker))
            # CPUs want ~2M input values per forward batch (cache-resident activations: measured on LeNet-5, ~1.5x
            # faster than 500 images at 96 px), small images amortise per-batch overhead; GPUs want big batches
            per_image = x[0].numel()
            batch_size = self._batch_size or (min(1024, max(32, 2_000_000 // per_image)) if x.device.type == "cpu"
                                              else 2048)
            with eval_mode(model):
                values, _ = owen_partition(forward, x, background, target, self.max_evals, self.seed, batch_size, bar,
                                           compiled_forward=self.scores(self.compiled(model)) if self._compile
                                           else None)
        finally:
            if bar is not None:
                bar.close()
        return torch.from_numpy(values).to(device=x.device, dtype=torch.float32)
