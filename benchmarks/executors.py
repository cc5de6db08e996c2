"""Where groups of cells run: in this process (``local``) or as Ray tasks (``ray``: one machine or a cluster).

The unit of work is a :class:`benchmarks.grid.Group` (one dataset, backbone and seed with all its methods), so the
inputs its methods share (stage-1 model, teacher maps) are computed once. Artifacts live on the filesystem under
the run's cache directory; on a cluster, point ``--cache-dir`` at a shared filesystem.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

from core.artifacts import ArtifactStore
from benchmarks.config import RunConfig
from benchmarks.grid import Group, run_group
import benchmarks.scores  # noqa: F401  (declares every score)
from core.scores import row
from benchmarks.plugins import load_installed_plugins
from datasets.registry import load_dataset
from methods.registry import load_plugin

log = logging.getLogger(__name__)
Rows = list[dict[str, Any]]


def load_group_data(cfg: RunConfig, dataset: str, device, cache: dict | None = None):
    if cache is not None and dataset in cache:
        return cache[dataset]
    data = load_dataset(dataset, root=cfg.data_root, download=cfg.download, device=device)
    if cfg.limit_train or cfg.limit_test:
        data = data.limit(cfg.limit_train, cfg.limit_test, seed=0)
    if cache is not None:
        cache.clear()  # keep one dataset resident at a time
        cache[dataset] = data
    return data


def run_local(cfg: RunConfig, groups: list[Group], device, on_rows: Callable[[Group, Rows], None]) -> None:
    cache: dict = {}
    for group in groups:
        data = load_group_data(cfg, group.dataset, device, cache)
        # One store per group: its in-memory copies (stage-1 weights, teacher maps: ~300 MB per CIFAR cell) are
        # what the group's methods share, and are dropped with it; the files stay for later runs.
        on_rows(group, run_group(cfg, group, data, ArtifactStore(cfg.artifacts_root())))


def _remote_group(cfg: RunConfig, group: Group, device_name: str) -> Rows:
    import torch


    load_installed_plugins()
    for plugin in cfg.plugins:
        load_plugin(plugin)
    device = torch.device(device_name)
    data = load_group_data(cfg, group.dataset, device)
    return run_group(cfg, group, data, ArtifactStore(cfg.artifacts_root()))


def run_ray(cfg: RunConfig, groups: list[Group], device, on_rows: Callable[[Group, Rows], None]) -> None:
    try:
        import ray
    except ImportError as err:
        raise RuntimeError("--executor ray needs Ray: pip install 'ray[default]' (or pip install -e '.[ray]')") \
            from err
    start_ray(cfg.address)
    gpus = 1 if device.type == "cuda" else 0
    task = ray.remote(num_gpus=gpus, num_cpus=1, max_retries=0)(_remote_group)
    # Each worker picks its own GPU (Ray sets CUDA_VISIBLE_DEVICES), so "cuda" means its assigned one.
    pending = {task.remote(cfg, group, "cuda" if gpus else "cpu"): group for group in groups}
    for ref, group in _as_completed(ray, pending):
        try:
            rows = ray.get(ref)
        except Exception as err:  # noqa: BLE001 - a worker crash becomes error rows for its cells
            error = f"ray task failed: {type(err).__name__}: {str(err)[:200]}"
            rows = [{"method": m, "backbone": group.backbone, "dataset": group.dataset, "seed": group.seed,
                     **row("accuracy", float("nan")), "error": error} for m in group.methods]
        on_rows(group, rows)


def start_ray(address: str | None) -> None:
    """Connect to the Ray cluster at ``address``, or start a local instance that listens on 127.0.0.1 only (GCS,
    raylet, workers, object manager): a local run must not open ports on every interface of the machine."""
    import os

    import ray

    if ray.is_initialized():
        return
    # Workers import the suite from this checkout (PYTHONPATH) so no packaging step is needed on one machine.
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {"env_vars": {"PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}}
    local = {} if address else {"_node_ip_address": "127.0.0.1", "dashboard_host": "127.0.0.1"}
    ray.init(address=address, runtime_env=env, include_dashboard=False, log_to_driver=False,
             ignore_reinit_error=True, **local)


def _as_completed(ray, pending: dict) -> Iterator[tuple[Any, Group]]:
    refs = list(pending)
    while refs:
        done, refs = ray.wait(refs, num_returns=1)
        yield done[0], pending[done[0]]


EXECUTORS = {"local": run_local, "ray": run_ray}
