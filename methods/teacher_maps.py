"""The one path to teacher maps (:func:`teacher_maps`): model, images, targets and explainer config in; cached,
resumable maps and their key out. Stage-2 IMPACTX and its ablations, WAE, single-stage IMPACTX's refreshes,
wae-shap's test-time maps and ``benchmarks.explain`` all come through it.

Maps are stored as float16 shards of ``teacher.batch_images`` images under ``<cache>/maps/<key>/`` (the shard format
and its checks: :mod:`core.artifacts`), so killing a run loses at most the shard in progress and a restart computes
only missing shards. The key covers the model key *and* a checksum of the model's weights, a hash of the images and
targets, the dataset fingerprint (the inputs' normalisation), the explainer's ``config()`` and the shard size: a
changed model, subset, target or explainer option never reuses stale maps.
"""
from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from core.artifacts import ArtifactStore, CorruptShard, spec_key
from core.progress import progress as progress_bar
from core.torch_utils import eval_mode
from datasets.base import DataBundle, fingerprint
from methods.explainers.base import Explainer, create_explainer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherConfig:
    """How teacher maps are computed (paper: SHAP Partition, 2000 evaluations, true class, probability)."""

    explainer: str = "partition"
    options: dict[str, Any] = field(default_factory=dict)  # none: the explainer's own defaults (the one place)
    batch_images: int = 500  # images explained per shard / call


MAPS_KIND = "maps"


def weights_checksum(model: torch.nn.Module) -> str:
    """SHA-1 of the model's parameters and buffers (names, shapes, dtypes, values)."""
    h = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}:{tuple(tensor.shape)}:{t.dtype}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def split_checksum(images: torch.Tensor, labels: torch.Tensor) -> str:
    h = hashlib.sha1()
    for t in (images, labels):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return f"{len(labels)}:{h.hexdigest()[:16]}"


def maps_spec(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor, teacher: TeacherConfig,
              model_key: str, explainer_config: dict[str, Any], data_key: str = "") -> dict[str, Any]:
    """What a set of maps depends on: the model (key and weights), the images and targets (content), the inputs'
    normalisation (``data_key``: the dataset's fingerprint), the explainer's config and the shard size."""
    return {"model": model_key, "weights": weights_checksum(model), "data": data_key,
            "content": split_checksum(images, targets), "explainer": explainer_config,
            "shard_images": int(teacher.batch_images)}


def maps_key(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor, teacher: TeacherConfig,
             model_key: str = "", data_key: str = "") -> str:
    """The cache key :func:`teacher_maps` stores these maps under (``<cache>/maps/<key>/``)."""
    config = create_explainer(teacher.explainer, **teacher.options).config()
    return spec_key(MAPS_KIND, maps_spec(model, images, targets, teacher, model_key, config, data_key))


def teacher_maps(model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor, teacher: TeacherConfig, *,
                 store: ArtifactStore | None = None, model_key: str = "", data_key: str = "",
                 normalize: Callable[[torch.Tensor], torch.Tensor] | None = None, label: str = "",
                 progress: bool = False, stats: dict[str, Any] | None = None,
                 explainer: Explainer | None = None) -> tuple[torch.Tensor, str]:
    """The one path to teacher maps: maps of ``model`` for ``images`` w.r.t. ``targets`` by ``teacher``'s explainer,
    as ``([N, C, H, W] float32 on the images' device, key)``; every method that needs maps comes through here.

    ``images`` are raw (``normalize`` applied per shard) or already normalised (``normalize=None``). With a
    ``store`` the maps are cached under the key at float16, their storage precision (a run from the cache and a run
    without one see the same maps): in memory for this process, and as resumable shards of ``teacher.batch_images``
    images on disk when the store has a root (only the missing or corrupt shards are computed; shards are claimed one
    by one with a lock, so processes sharing the cache split the work). Without a store nothing is kept and the maps
    come back at full precision (test-time maps of perturbed images, computed once). ``explainer``: an instance of
    ``teacher``'s explainer to reuse across calls (built from the config otherwise). ``stats`` receives
    ``compute_seconds`` (what computing every shard took, whenever and by whichever process), ``shards`` and
    ``shards_computed`` (by this call).
    """
    explainer = explainer or create_explainer(teacher.explainer, **teacher.options)
    keep = store is not None
    # no store, no key: hashing the weights and images of every test-time batch would cost time for nothing
    spec = maps_spec(model, images, targets, teacher, model_key, explainer.config(), data_key) if keep else {}
    key = spec_key(MAPS_KIND, spec) if keep else ""
    store = store if keep else ArtifactStore(None)
    device = images.device
    remembered = store.recall(MAPS_KIND, key)
    if remembered is not None:
        maps, seconds = remembered
        if stats is not None:
            stats.update(compute_seconds=seconds, shards=-1, shards_computed=0)
        return maps.float().to(device), key

    n, per = len(targets), max(1, int(teacher.batch_images))
    n_shards = math.ceil(n / per)
    bounds = [(i * per, min(n, (i + 1) * per)) for i in range(n_shards)]
    store.describe_shards(MAPS_KIND, key, {"key": key, "label": label, "images": n, "shards": n_shards, **spec})
    shards: list[torch.Tensor | None] = [None] * n_shards
    seconds = [0.0] * n_shards

    def load_if_done(i: int) -> bool:
        """Read shard ``i`` if it is on disk and intact (another process may have written it meanwhile)."""
        try:
            found = store.load_shard(MAPS_KIND, key, i, *bounds[i])
        except CorruptShard as err:
            log.warning("rebuilding corrupt map shard: %s", err)
            return False
        if found is None:
            return False
        shards[i], header = found
        seconds[i] = float(header.get("seconds", 0.0))
        return True

    todo = [i for i in range(n_shards) if not load_if_done(i)]
    if todo:
        # test-time maps (no store, no progress asked) are part of a prediction: no bar and no progress lines
        quiet = {} if keep or progress else {"close_line": False, "interval": math.inf}
        bar = progress_bar(n, f"maps {teacher.explainer} {label}".rstrip(), progress, unit="img",
                           initial=n - sum(bounds[i][1] - bounds[i][0] for i in todo), **quiet)
        log.debug("teacher maps %s: %d of %d shard(s) to compute (%s)", key, len(todo), n_shards,
                  store.shard_dir(MAPS_KIND, key) or "in memory")
        if progress and hasattr(explainer, "_progress"):
            explainer._progress = True  # partition: a second bar over the evaluations of the current shard

        def compute(i: int) -> None:
            start, stop = bounds[i]
            t0 = time.perf_counter()
            x = images[start:stop] if normalize is None else normalize(images[start:stop])
            maps = explainer.explain(model, x, targets[start:stop]).detach()
            maps = maps.to("cpu", torch.float16) if keep else maps.float()
            seconds[i] = time.perf_counter() - t0
            store.save_shard(MAPS_KIND, key, i, start, maps, seconds[i])
            shards[i] = maps

        try:
            with eval_mode(model):
                deferred = []
                for i in todo:
                    with store.lock(f"{MAPS_KIND}/{key}/{i}", blocking=False) as mine:
                        if not mine:
                            deferred.append(i)
                            continue
                        if not load_if_done(i):
                            compute(i)
                    bar.update(bounds[i][1] - bounds[i][0])
                for i in deferred:  # claimed by another process: wait for it (compute it if that process died)
                    with store.lock(f"{MAPS_KIND}/{key}/{i}"):
                        if not load_if_done(i):
                            compute(i)
                    bar.update(bounds[i][1] - bounds[i][0])
        finally:
            bar.close()
    maps = torch.cat(shards) if shards else torch.zeros(0, *images.shape[1:], dtype=torch.float16)
    if keep:
        store.remember(MAPS_KIND, key, (maps, sum(seconds)))
    if stats is not None:
        stats.update(compute_seconds=sum(seconds), shards=n_shards, shards_computed=len(todo))
    return maps.float().to(device), key


def split_maps(model: torch.nn.Module, data: DataBundle, split: str, teacher: TeacherConfig,
               model_key: str, artifacts: ArtifactStore, progress: bool = True,
               stats: dict[str, Any] | None = None) -> tuple[torch.Tensor, str]:
    """:func:`teacher_maps` of a whole split of ``data`` w.r.t. its true labels (raw images, normalised per shard);
    returns (maps, key)."""
    part = getattr(data, split)
    return teacher_maps(model, part.images, part.labels, teacher, store=artifacts, model_key=model_key,
                        data_key=fingerprint(data), normalize=data.normalize, label=split, progress=progress,
                        stats=stats)


def cached_maps(model: torch.nn.Module, data: DataBundle, split: str, teacher: TeacherConfig,
                model_key: str, artifacts: ArtifactStore, progress: bool = True,
                stats: dict[str, Any] | None = None) -> torch.Tensor:
    """:func:`split_maps` without the key."""
    return split_maps(model, data, split, teacher, model_key, artifacts, progress, stats)[0]
