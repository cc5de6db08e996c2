"""Teacher-map cache: resumable float16 shards on disk, one directory per (model, data, split, explainer config).

Layout under ``<artifacts.root>/maps/<key>/``: ``spec.json`` (what the key was made of, for humans) and
``shard_00000.pt``, ``shard_00001.pt``, ... each holding the maps of ``teacher.batch_images`` consecutive images
as float16. A shard file is ``8-byte header length | JSON header | torch.save payload``; the header carries the
payload's SHA-256, the cache key, the shard's index, image range and shape, and is checked on load, so a truncated
or corrupt shard (or one from another key) is detected and recomputed. Shards are written atomically (temporary
file + rename), so killing a run loses at most the shard in progress and a restart computes only missing shards.

The key covers the model key *and* a checksum of the model's weights, the dataset fingerprint *and* a hash of the
split's own images and labels, the split name, the explainer's ``config()`` and the shard size: a changed model,
subset or explainer option never reuses stale maps. With ``artifacts.root is None`` maps live in memory only.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import pickle
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from methods.explainers.base import create_explainer

if TYPE_CHECKING:
    from benchmarks.artifacts import ArtifactStore
    from benchmarks.context import TeacherConfig
    from datasets.base import DataBundle

log = logging.getLogger(__name__)
MAPS_KIND = "maps"


class CorruptShard(RuntimeError):
    pass


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


def maps_spec(model: torch.nn.Module, data: "DataBundle", split: str, teacher: "TeacherConfig", model_key: str,
              explainer_config: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.context import fingerprint

    part = getattr(data, split)
    return {"model": model_key, "weights": weights_checksum(model), "data": fingerprint(data), "split": split,
            "split_content": split_checksum(part.images, part.labels), "explainer": explainer_config,
            "shard_images": int(teacher.batch_images)}


def shard_path(directory: Path, index: int) -> Path:
    return directory / f"shard_{index:05d}.pt"


def write_shard(path: Path, key: str, index: int, start: int, maps: torch.Tensor, seconds: float = 0.0) -> None:
    """Write one shard atomically; ``seconds`` (what computing it took) is kept in the header for reports."""
    from benchmarks.artifacts import atomic_write_bytes

    buffer = io.BytesIO()
    torch.save(maps.detach().to(device="cpu", dtype=torch.float16).contiguous(), buffer)
    body = buffer.getvalue()
    header = json.dumps({"sha256": hashlib.sha256(body).hexdigest(), "key": key, "index": index, "start": start,
                         "stop": start + int(maps.shape[0]), "shape": list(maps.shape),
                         "seconds": float(seconds)}).encode()
    atomic_write_bytes(path, len(header).to_bytes(8, "little") + header + body)


def read_shard(path: Path, key: str, index: int, start: int, stop: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """The float16 maps of a shard and its header; :class:`CorruptShard` if anything does not check out."""
    raw = path.read_bytes()
    try:
        size = int.from_bytes(raw[:8], "little")
        if len(raw) < 8 + size:
            raise CorruptShard("truncated header")
        header = json.loads(raw[8:8 + size])
        body = raw[8 + size:]
        if hashlib.sha256(body).hexdigest() != header["sha256"]:
            raise CorruptShard("checksum mismatch (truncated or corrupt payload)")
        if (header["key"], header["index"], header["start"], header["stop"]) != (key, index, start, stop):
            raise CorruptShard(f"header does not match (key {header['key']}, images {header['start']}:"
                               f"{header['stop']}; expected {key}, {start}:{stop})")
        maps = torch.load(io.BytesIO(body), map_location="cpu", weights_only=True)
        if not isinstance(maps, torch.Tensor) or list(maps.shape) != header["shape"] or maps.shape[0] != stop - start:
            raise CorruptShard("payload shape does not match its header")
    except CorruptShard as err:
        raise CorruptShard(f"{path}: {err}") from err
    except (ValueError, KeyError, TypeError, json.JSONDecodeError, RuntimeError, EOFError, UnicodeDecodeError,
            pickle.UnpicklingError) as err:
        raise CorruptShard(f"{path}: {type(err).__name__}: {err}") from err
    return maps, header


def cached_maps(model: torch.nn.Module, data: "DataBundle", split: str, teacher: "TeacherConfig",
                model_key: str, artifacts: "ArtifactStore", progress: bool = True,
                stats: dict[str, Any] | None = None) -> torch.Tensor:
    """Maps of ``model`` for every image of ``data.<split>`` w.r.t. its true label, [N, C, H, W] float32 on
    ``data.device`` (stored as float16). Computes only the shards that are missing or corrupt.

    ``stats`` (optional) receives ``compute_seconds`` (what computing all shards took, whenever and by whichever
    process they were computed), ``shards`` and ``shards_computed`` (by this call).
    """
    from benchmarks.artifacts import atomic_write_bytes, spec_key

    explainer = create_explainer(teacher.explainer, **teacher.options)
    part = getattr(data, split)
    spec = maps_spec(model, data, split, teacher, model_key, explainer.config())
    key = spec_key(MAPS_KIND, spec)
    memory_key = f"{MAPS_KIND}/{key}"
    memory = artifacts._memory  # the store's in-process cache (shared with its other artifacts)
    if memory_key in memory:
        artifacts.loaded.append(memory_key)
        maps, seconds = memory[memory_key]
        if stats is not None:
            stats.update(compute_seconds=seconds, shards=-1, shards_computed=0)
        return maps.float().to(data.device)

    n, per = len(part), max(1, int(teacher.batch_images))
    n_shards = math.ceil(n / per)
    directory = None if artifacts.root is None else artifacts.root / MAPS_KIND / key
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        spec_file = directory / "spec.json"
        if not spec_file.exists():
            atomic_write_bytes(spec_file, json.dumps({"key": key, "images": n, "shards": n_shards, **spec},
                                                     indent=1, default=str).encode())
    shards: list[torch.Tensor | None] = [None] * n_shards
    seconds = [0.0] * n_shards
    todo = []
    for i in range(n_shards):
        start, stop = i * per, min(n, (i + 1) * per)
        path = None if directory is None else shard_path(directory, i)
        if path is not None and path.exists():
            try:
                shards[i], header = read_shard(path, key, i, start, stop)
                seconds[i] = float(header.get("seconds", 0.0))
                artifacts.loaded.append(f"{memory_key}/{i}")
                continue
            except CorruptShard as err:
                log.warning("rebuilding corrupt map shard: %s", err)
        todo.append(i)

    if todo:
        from benchmarks.progress import progress as progress_bar

        bar = progress_bar(n, f"maps {teacher.explainer} {split}", progress, unit="img",
                           initial=n - sum(min(n, (i + 1) * per) - i * per for i in todo))
        log.debug("teacher maps %s: %d of %d shard(s) to compute (%s)", key, len(todo), n_shards,
                  "in memory" if directory is None else directory)
        was_training = model.training
        model.eval()
        if progress and hasattr(explainer, "_progress"):
            explainer._progress = True  # partition: a second bar over the evaluations of the current shard
        def compute(i: int) -> None:
            start, stop = i * per, min(n, (i + 1) * per)
            t0 = time.perf_counter()
            x = data.normalize(part.images[start:stop])
            maps = explainer.explain(model, x, part.labels[start:stop]).detach().to("cpu", torch.float16)
            seconds[i] = time.perf_counter() - t0
            if directory is not None:
                write_shard(shard_path(directory, i), key, i, start, maps, seconds[i])
            shards[i] = maps
            artifacts.created.append(f"{memory_key}/{i}")
            bar.update(stop - start)

        def load_if_done(i: int) -> bool:
            """Another process may have written the shard while we waited for its lock."""
            path = None if directory is None else shard_path(directory, i)
            if path is None or not path.exists():
                return False
            start, stop = i * per, min(n, (i + 1) * per)
            try:
                shards[i], header = read_shard(path, key, i, start, stop)
            except CorruptShard:
                return False
            seconds[i] = float(header.get("seconds", 0.0))
            artifacts.loaded.append(f"{memory_key}/{i}")
            bar.update(stop - start)
            return True

        try:
            # Shards are claimed one by one with a lock: processes sharing the cache split the work of one map set;
            # shards claimed by another process are waited for at the end (and computed if it died meanwhile).
            deferred = []
            for i in todo:
                with artifacts.lock(f"{memory_key}/{i}", blocking=False) as mine:
                    if not mine:
                        deferred.append(i)
                    elif not load_if_done(i):
                        compute(i)
            for i in deferred:
                with artifacts.lock(f"{memory_key}/{i}"):
                    if not load_if_done(i):
                        compute(i)
        finally:
            model.train(was_training)
            bar.close()
    maps = torch.cat(shards) if shards else torch.zeros(0, *part.images.shape[1:], dtype=torch.float16)
    memory[memory_key] = (maps, sum(seconds))
    if stats is not None:
        stats.update(compute_seconds=sum(seconds), shards=n_shards, shards_computed=len(todo))
    return maps.float().to(data.device)
