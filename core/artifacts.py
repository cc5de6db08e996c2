"""Content-keyed artifacts: every stage output is stored once under a key derived from its config and inputs.

A key is the SHA-256 of the canonical JSON of a spec (config + the keys of the inputs). Files are written
atomically (temporary file + rename) with a checksum of the payload; a corrupt or truncated file is detected on
load and rebuilt. With ``root=None`` artifacts live in memory only (tests, ``--no-cache``).

A cache directory is untrusted input (it may be shared): payloads hold only tensors, numbers, strings, lists and
dicts, and are read with ``torch.load(weights_only=True)``, which refuses any pickled object that could run code.
The checksum in the same file detects corruption, not tampering; an artifact that is refused is rebuilt.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

log = logging.getLogger(__name__)


def spec_key(kind: str, spec: dict[str, Any]) -> str:
    text = json.dumps({"kind": kind, **spec}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` all at once (temporary file + rename): readers see the old file or the new, never half.
    The file gets the permissions a plain ``open()`` would give (0666 minus the umask), not mkstemp's 0600, so
    others on a shared machine can read results when the user's umask lets them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CorruptArtifact(RuntimeError):
    pass


def safe_payload(value: Any) -> Any:
    """``value`` with NumPy arrays as tensors and NumPy scalars as Python numbers (what ``weights_only`` loads)."""
    import numpy as np

    if isinstance(value, dict):
        return {k: safe_payload(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(safe_payload(v) for v in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


class CorruptShard(RuntimeError):
    """A shard that fails its checks (truncated, corrupt, another key's, wrong shape); it is recomputed."""


def shard_path(directory: Path, index: int) -> Path:
    return directory / f"shard_{index:05d}.pt"


def write_shard(path: Path, key: str, index: int, start: int, maps: torch.Tensor, seconds: float = 0.0) -> None:
    """Write one shard atomically; ``seconds`` (what computing it took) is kept in the header for reports."""
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


class ArtifactStore:
    def __init__(self, root: str | Path | None) -> None:
        self.root = Path(root) if root is not None else None
        self._memory: dict[str, Any] = {}
        self.created: list[str] = []  # keys computed in this process (resume tests read this)
        self.loaded: list[str] = []

    @contextlib.contextmanager
    def lock(self, name: str, blocking: bool = True) -> Iterator[bool]:
        """An exclusive inter-process lock named ``name`` under ``<root>/locks/`` (POSIX ``flock``; released when
        the holder exits, even when killed). Yields whether it was acquired (always True when ``blocking``).
        Two processes sharing a cache dir therefore never compute the same artifact twice: the second waits and
        loads. In-memory stores (``root=None``) and platforms without ``fcntl`` lock nothing."""
        if self.root is None:
            yield True
            return
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield True
            return
        path = self.root / "locks" / f"{name.replace('/', '-')}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- sharded artifacts: one folder per key, one file per shard, written and checked one by one ------------
    def shard_dir(self, kind: str, key: str) -> Path | None:
        """The folder of a sharded artifact (``None`` in memory)."""
        return None if self.root is None else self.root / kind / key

    def describe_shards(self, kind: str, key: str, description: dict[str, Any]) -> None:
        """Write ``spec.json`` (what the key was made of, for humans) once."""
        folder = self.shard_dir(kind, key)
        if folder is not None and not (folder / "spec.json").exists():
            atomic_write_bytes(folder / "spec.json", json.dumps(description, indent=1, default=str).encode())

    def load_shard(self, kind: str, key: str, index: int, start: int, stop: int
                   ) -> tuple[torch.Tensor, dict[str, Any]] | None:
        """Shard ``index`` (images ``start:stop``) with its header, ``None`` if absent; :class:`CorruptShard` if it
        does not check out."""
        folder = self.shard_dir(kind, key)
        path = None if folder is None else shard_path(folder, index)
        if path is None or not path.exists():
            return None
        tensor, header = read_shard(path, key, index, start, stop)
        self.loaded.append(f"{kind}/{key}/{index}")
        return tensor, header

    def save_shard(self, kind: str, key: str, index: int, start: int, tensor: torch.Tensor,
                   seconds: float = 0.0) -> None:
        folder = self.shard_dir(kind, key)
        if folder is not None:
            write_shard(shard_path(folder, index), key, index, start, tensor, seconds)
        self.created.append(f"{kind}/{key}/{index}")

    # -- this process's memory: finished artifacts already loaded or computed --------------------------------
    def recall(self, kind: str, key: str) -> Any | None:
        value = self._memory.get(f"{kind}/{key}")
        if value is not None:
            self.loaded.append(f"{kind}/{key}")
        return value

    def remember(self, kind: str, key: str, value: Any) -> None:
        self._memory[f"{kind}/{key}"] = value

    def path(self, kind: str, key: str) -> Path | None:
        return None if self.root is None else self.root / kind / f"{key}.pt"

    def save(self, kind: str, key: str, spec: dict, payload: Any) -> None:
        self._memory[f"{kind}/{key}"] = payload
        path = self.path(kind, key)
        if path is None:
            return
        buffer = io.BytesIO()
        torch.save(safe_payload(payload), buffer)
        body = buffer.getvalue()
        header = json.dumps({"sha256": hashlib.sha256(body).hexdigest(), "spec": spec}, default=str).encode()
        atomic_write_bytes(path, len(header).to_bytes(8, "little") + header + body)

    def load(self, kind: str, key: str, map_location: str | torch.device = "cpu") -> Any:
        if f"{kind}/{key}" in self._memory:
            return self._memory[f"{kind}/{key}"]
        path = self.path(kind, key)
        if path is None or not path.exists():
            raise FileNotFoundError(f"{kind}/{key}")
        raw = path.read_bytes()
        try:
            size = int.from_bytes(raw[:8], "little")
            header = json.loads(raw[8:8 + size])
            body = raw[8 + size:]
            if hashlib.sha256(body).hexdigest() != header["sha256"]:
                raise CorruptArtifact("checksum mismatch")
            payload = torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as err:  # not plain tensors / containers: never executed, rebuilt
            raise CorruptArtifact(f"{path}: refused to load objects other than tensors and plain containers "
                                  f"({str(err).splitlines()[0][:200]})") from err
        except (ValueError, KeyError, json.JSONDecodeError, CorruptArtifact, RuntimeError, EOFError) as err:
            raise CorruptArtifact(f"{path}: {err}") from err
        self._memory[f"{kind}/{key}"] = payload
        return payload

    def get_or_create(self, kind: str, spec: dict[str, Any], create: Callable[[], Any],
                      map_location: str | torch.device = "cpu") -> tuple[Any, str]:
        """The artifact for ``spec``: loaded if stored and intact, otherwise created, stored and returned."""
        key = spec_key(kind, spec)
        with self.lock(f"{kind}/{key}"):  # another process computing it: wait, then load its result
            try:
                payload = self.load(kind, key, map_location)
                self.loaded.append(f"{kind}/{key}")
                log.debug("artifact %s/%s loaded from the cache", kind, key)
                return payload, key
            except FileNotFoundError:
                pass
            except CorruptArtifact as err:
                log.warning("corrupt artifact %s, rebuilding (%s)", key, err)
            log.debug("artifact %s/%s not cached: computing it", kind, key)
            payload = create()
            self.save(kind, key, spec, payload)
            self.created.append(f"{kind}/{key}")
            return payload, key
