"""The grid: cells (method x backbone x dataset x seed), grouped so that shared inputs are computed once.

A *group* is one (dataset, backbone, seed): its methods share the stage-1 model and the teacher maps through the
artifact store. Every finished cell's rows are stored as an artifact keyed by everything that determines them, so
a re-run (after a crash, a kill, or with more cells) recomputes nothing finished.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import itertools
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch

from benchmarks import figures as plots
from benchmarks.config import ConfigError, RunConfig
from benchmarks.explanation_quality import explain_and_perturb, rows_from_run
from benchmarks.logs import cell_log
from core.artifacts import ArtifactStore, atomic_write_bytes
from core.progress import set_activity
import benchmarks.scores  # noqa: F401  (declares every score)
from core.scores import code_fingerprint, registry_fingerprint, row
from core.torch_utils import Stopwatch
from datasets.base import DataBundle, fingerprint
from datasets.registry import list_datasets
from methods.backbones import list_backbones
from methods.blocks import scale_maps
from methods.context import BackboneConfig, FitContext
from methods.engine import Engine, predict_logits, validation_split
from methods.registry import create_method, get_method_class, list_methods, unknown_name

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Group:
    dataset: str
    backbone: str
    seed: int
    methods: tuple[str, ...]


def expand(patterns: Iterable[str], valid: list[str], kind: str, allow_unlisted: callable = None) -> list[str]:
    """Comma lists and globs -> names, in the given order; an unknown literal name lists the valid ones."""

    names: list[str] = []
    for pattern in patterns:
        for part in [p.strip() for p in pattern.split(",") if p.strip()]:
            if any(ch in part for ch in "*?["):
                hits = [v for v in valid if fnmatch.fnmatchcase(v, part)]
                if not hits:
                    raise ConfigError(f"{kind} pattern {part!r} matches nothing; valid {kind}s: {', '.join(valid)}")
            elif part in valid or (allow_unlisted and allow_unlisted(part)):
                hits = [part]
            else:
                raise ConfigError(str(unknown_name(kind, part, valid)))
            names += [h for h in hits if h not in names]
    return names


def plan(cfg: RunConfig) -> list[Group]:
    methods = expand(cfg.methods, list_methods(), "method")
    backbones = expand(cfg.backbones, list_backbones(), "backbone", lambda n: n.startswith("timm:"))
    datasets = expand(cfg.datasets, [d for d in list_datasets() if not d.endswith(":")], "dataset",
                      lambda n: n.startswith("imagefolder:"))
    # Methods that reuse the stage-1 model run after the baseline so the artifact is there to reuse.
    return [Group(d, b, s, tuple(methods)) for d in datasets for b in backbones for s in cfg.seeds]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def result_version() -> str:
    """The version of a finished cell's rows, derived from what produces them: the declared scores (names,
    directions, kinds and the code computing them) and the code that turns a fit into rows. A new score or a changed
    row never reuses a cached cell, and nobody has to remember to bump a constant."""
    return ROW_CODE + registry_fingerprint()  # scores are read now: a plugin may declare more after import


def cell_spec(cfg: RunConfig, data: DataBundle, group: Group, method: str, options: dict) -> dict[str, Any]:
    options = {**get_method_class(method).option_defaults(), **options}  # a changed default is a new cell
    return {"version": result_version(), "method": method, "options": options, "stage1_grid": cfg.stage1_grid,
            "backbone": dataclasses.asdict(backbone_config(cfg, group.backbone)), "data": fingerprint(data),
            "train": cfg.train.key_dict(), "teacher": dataclasses.asdict(cfg.teacher), "seed": group.seed,
            "explain_eval": cfg.explain_eval and {"n": cfg.explanation_images, "morf": cfg.morf}}


def backbone_config(cfg: RunConfig, name: str) -> BackboneConfig:
    return BackboneConfig(name, cfg.input_size.get(name), cfg.pretrained, cfg.weights_path)


def cell_config(cfg: RunConfig, group: Group, method: str) -> dict[str, Any]:
    """What determines one cell, as written at the top of its log file."""
    return {"method": method, "backbone": group.backbone, "dataset": group.dataset, "seed": group.seed,
            "options": cfg.method_options.get(method, {}), "method_grid": cfg.method_grid.get(method, {}),
            "train": dataclasses.asdict(cfg.train), "teacher": dataclasses.asdict(cfg.teacher),
            "stage1_grid": cfg.stage1_grid, "backbone_config": dataclasses.asdict(backbone_config(cfg, group.backbone)),
            "limit_train": cfg.limit_train, "limit_test": cfg.limit_test, "explain_eval": cfg.explain_eval,
            "explanation_images": cfg.explanation_images, "morf": cfg.morf, "device": cfg.device}


def run_group(cfg: RunConfig, group: Group, data: DataBundle, artifacts: ArtifactStore) -> list[dict[str, Any]]:
    """Every method of one (dataset, backbone, seed); a failing method becomes an error row, the rest go on.

    Each cell logs to its own file (``logs/<dataset>_<backbone>_seed<k>_<method>.log``: config, progress lines,
    the traceback when it fails); an error row names that file."""

    rows: list[dict[str, Any]] = []
    results: dict[str, dict[str, Any]] = {}
    for method in group.methods:
        where = f"{method} / {group.backbone} / {data.name} / seed {group.seed}"
        set_activity(f"{data.name}/{group.backbone}/seed{group.seed} {method}")
        start = time.perf_counter()
        with cell_log(cfg.out, data.name, group.backbone, group.seed, method,
                      cell_config(cfg, group, method)) as log_name:
            try:
                result = results[method] = _best_candidate(cfg, group, method, data, artifacts)
                accuracy = next((r["value"] for r in result["rows"] if r["metric"] == "accuracy"), float("nan"))
                log.info("cell %s: accuracy %.2f%% (%.1f s)", where, accuracy, time.perf_counter() - start)
            except Exception as err:  # noqa: BLE001 - a failing cell must not stop the grid
                log.debug("traceback of the failure of %s:", where, exc_info=True)
                log.error("cell %s failed: %s (traceback in %s)", where, _short_error(err), log_name)
                result = {"rows": [row("accuracy", float("nan"), error=f"{_short_error(err)} (log: {log_name})")],
                          "per_image": None}
        per_image = result.get("per_image")
        for cell_row in result["rows"]:
            rows.append({"method": method, "backbone": group.backbone, "dataset": data.name, "seed": group.seed,
                         "error": "", **cell_row})
            if cell_row["metric"] == "accuracy" and per_image is not None:
                rows[-1]["per_image"] = "".join("1" if c else "0" for c in per_image)
    set_activity("")
    write_histories(cfg, group, data.name, results)
    for figure_row in write_figures(cfg, group, data.name, results):  # a figure that failed is a row, not silence
        rows.append({"backbone": group.backbone, "dataset": data.name, "seed": group.seed, **figure_row})
    return rows


def _best_candidate(cfg: RunConfig, group: Group, method: str, data: DataBundle,
                    artifacts: ArtifactStore) -> dict[str, Any]:
    """The cell's result; with a method grid (e.g. IMPACTX's lambda), the candidate with the best validation
    accuracy, its chosen values recorded as ``chosen/<option>`` rows. Each candidate is its own artifact."""
    grid = cfg.method_grid.get(method, {})
    names = sorted(grid)
    candidates = list(itertools.product(*(grid[n] for n in names)))
    best: tuple[float, dict[str, Any]] | None = None
    for values in candidates:
        options = {**cfg.method_options.get(method, {}), **dict(zip(names, values))}
        spec = cell_spec(cfg, data, group, method, options)
        result, _ = artifacts.get_or_create(
            "cell", spec, lambda: run_cell(cfg, group, method, data, artifacts, options))
        score = next((r["value"] for r in result["rows"] if r["metric"] == "val_accuracy"), float("-inf"))
        if len(candidates) > 1 and not score >= 0:  # no validation images: -100, or no val_accuracy row at all
            raise ValueError(f"the grid over {', '.join(names)} has no validation accuracy to choose on "
                             "(train.val_fraction=0?)")
        if best is None or score > best[0]:  # ties: the first candidate in grid order
            best = (score, {**result, "rows": result["rows"] + [
                row(f"chosen/{n}", v) for n, v in zip(names, values)]})
    return best[1]


def _short_error(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".replace("\n", " ")
    if isinstance(err, torch.cuda.OutOfMemoryError):
        text = "CUDA out of memory (lower train.batch_size or use a smaller input_size)"
    return text[:300]


def run_cell(cfg: RunConfig, group: Group, method_name: str, data: DataBundle, artifacts: ArtifactStore,
             options: dict[str, Any]) -> dict[str, Any]:

    seed_everything(group.seed)
    engine = Engine(cfg.train, seed=group.seed, progress=cfg.progress, desc=f"{method_name}/{group.backbone}")
    ctx = FitContext(data=data, engine=engine, backbone=backbone_config(cfg, group.backbone), seed=group.seed,
                     teacher=cfg.teacher, artifacts=artifacts, stage1_grid=cfg.stage1_grid)
    method = create_method(method_name, group.backbone, data.num_classes, **options)
    method.to(data.device)
    with Stopwatch(data.device) as fit_time:
        facts = method.fit(ctx) or {}
    with Stopwatch(data.device) as test_time:
        logits = predict_logits(method.predict, data, data.test, cfg.train.eval_batch_size)
    if not torch.isfinite(logits).all():
        raise FloatingPointError("non-finite logits on the test set (diverged training: NaN loss?)")
    correct = (logits.argmax(1) == data.test.labels).cpu()
    rows = [row("accuracy", 100.0 * float(correct.float().mean())), row("fit_seconds", fit_time.seconds),
            row("seconds/test", test_time.seconds)]
    rows += fit_rows({**facts, "stage1_fit": ctx.facts.get("stage1_fit")})
    if "teacher_maps" in ctx.facts:  # what the shared teacher maps cost, whichever cell computed them
        seconds = ctx.facts["teacher_maps"]["compute_seconds"]
        rows += [row("seconds/teacher_maps", seconds),
                 row("ms_per_image/teacher_maps", 1000.0 * seconds / max(1, len(data.train)))]
    for name, value in ctx.facts.get("stage1_chosen", {}).items():
        rows.append(row(f"chosen/stage1.{name}", value))
    figure = None
    if cfg.explain_eval:
        with Stopwatch(data.device) as explain_time:
            constant = constant_control_map(ctx, group)
            explanation, figure = explanation_rows(cfg, method, data, group.seed, constant)
        rows += explanation + [row("seconds/explanations", explain_time.seconds)]
    return {"rows": rows, "per_image": correct.bool(), "facts": _plain(facts), "figure": figure}


def fit_rows(facts: dict[str, Any]) -> list[dict[str, Any]]:
    """``val_accuracy``: the best validation accuracy of the method's final training stage (what grids select
    on), plus ``val_accuracy/<stage>`` for every stage that reports one (e.g. the shared stage-1 model), and
    ``seconds/<stage>``: the wall time of each training stage when it ran (a cached stage-1 model keeps the time
    it took to train), so a method's own cost is not confused with the shared work it reused."""
    rows, last = [], None
    for name, fit in facts.items():
        if isinstance(fit, dict) and "best_val_accuracy" in fit:
            stage = name.removesuffix("_fit")
            rows.append(row(f"val_accuracy/{stage}", 100.0 * fit["best_val_accuracy"]))
            if name != "stage1_fit" or last is None:
                last = rows[-1]["value"]
            if "wall_s" in fit:
                rows.append(row(f"seconds/{stage}", float(fit["wall_s"])))
    if last is not None:
        rows.insert(0, row("val_accuracy", last))
    fits = [fit for fit in facts.values() if isinstance(fit, dict) and "best_val_accuracy" in fit]
    if fits:  # the training budget of the classifier (every stage it depends on)
        rows.append(row("budget/epochs", float(sum(f.get("epochs", len(f.get("history", []))) for f in fits))))
        if all("images_seen" in f for f in fits):
            rows.append(row("budget/images", float(sum(f["images_seen"] for f in fits))))
    for name, value in (facts.get("metrics") or {}).items():
        rows.append(row(name, float(value)))
    return rows


N_EXAMPLES = 4  # example rows kept per cell for the paper-style figure


def example_rows(targets: torch.Tensor, k: int = N_EXAMPLES) -> torch.Tensor:
    """Up to ``k`` row indices for the example figure, one class each while classes last (test sets are often sorted
    by class, so the first rows would all show one class), then the next unused rows."""
    first_of_class: dict[int, int] = {}
    for i, t in enumerate(targets.tolist()):
        first_of_class.setdefault(int(t), i)
    picked = sorted(first_of_class.values())[:k]
    picked += [i for i in range(len(targets)) if i not in picked][:k - len(picked)]
    return torch.tensor(sorted(picked), dtype=torch.long)


def constant_control_map(ctx: FitContext, group: Group) -> torch.Tensor | None:
    """The constant-map control of the explanation table: the mean (max-|value|-scaled) teacher map of the training
    portion, the same map for every image. Only for groups whose methods learn from teacher maps (so the maps are
    computed anyway); loaded from the artifact store after the cell's own rows are taken."""

    if not any(get_method_class(m).uses_teacher_maps for m in group.methods):
        return None
    side = dataclasses.replace(ctx, facts={})  # nothing recorded as this cell's facts
    model, key = side.stage1()
    maps = scale_maps(side.teacher_maps(model, key))
    train_idx, _ = validation_split(len(ctx.data.train), ctx.engine.cfg.val_fraction, ctx.engine.seed)
    return maps[train_idx.to(maps.device)].mean(0, keepdim=True)


def explanation_rows(cfg: RunConfig, method, data: DataBundle, seed: int,
                     constant_map: torch.Tensor | None = None) -> tuple[list[dict[str, Any]], dict]:
    """MoRF / ground-truth rows of a trained method, and what the figures need (curves, a few examples)."""

    # The post-hoc maps of a trained method: the teacher explainer, but never compiled (a few hundred images do not
    # repay a compile, and a method's forward may itself run an explainer, e.g. wae-shap, which dynamo cannot trace).
    options = {k: v for k, v in cfg.teacher.options.items() if k != "compile"}
    n_images = cfg.explanation_images
    if method.max_explanation_images is not None:
        n_images = min(n_images, method.max_explanation_images)
    run = explain_and_perturb(method, data, n_images=n_images, seed=seed,
                              explainer=cfg.teacher.explainer if method.post_hoc_explainable else None,
                              explainer_options=options, morf_options=cfg.morf, constant_map=constant_map)
    rows = [{k: v for k, v in r.items() if k in ("metric", "value", "direction")} for r in rows_from_run(run)]
    rows.append(row("explanation_images", len(run.index)))
    # indexing with `pick` copies: a saved slice would otherwise carry its whole parent storage to disk
    pick = example_rows(run.target.cpu())
    figure = {"curves": {k: v.half().cpu() for k, v in run.curves.items()},
              "example_index": pick,
              "images": run.images[pick.to(run.images.device)].cpu(),
              "maps": {k: v[pick.to(v.device)].float().cpu() for k, v in run.maps.items()
                       if k not in ("random", "constant")},
              "titles": [data.classes[int(t)] for t in run.target.cpu()[pick]]}
    return rows, figure


def group_stem(dataset: str, group: Group) -> str:
    return f"{dataset.replace(':', '-').replace('/', '_')}_{group.backbone}_seed{group.seed}"


def write_histories(cfg: RunConfig, group: Group, dataset: str, results: dict[str, dict[str, Any]]) -> Path | None:
    """Per group: every training stage's per-epoch record (train loss, validation accuracy, map fidelity, ...) as
    ``histories/<dataset>_<backbone>_seed<k>.csv``, one row per (method, stage, epoch). With a constant learning
    rate the first E epochs of a run are an E-epoch run, so a stage's length can be chosen on these curves."""
    records = []
    for method, result in results.items():
        for name, fit in ((result.get("facts") or {})).items():
            if isinstance(fit, dict) and fit.get("history"):
                records += [{"method": method, "stage": name.removesuffix("_fit"), **h} for h in fit["history"]]
    if not records:
        return None
    path = Path(cfg.out) / "histories" / f"{group_stem(dataset, group)}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, pd.DataFrame(records).to_csv(index=False).encode())
    return path


def write_figures(cfg: RunConfig, group: Group, dataset: str,
                  results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per group: mean MoRF curves of every method's own map (+ SHAP on the baseline, + random), and per method
    an example grid like the paper's Figs 3-5. Figures are re-drawn from stored results, so resumed runs get them.

    A figure that cannot be drawn costs no result: it is logged as a warning and returned as a ``figure_error``
    row (the file and the error in ``error``) for each method it would have shown; the other figures are drawn."""
    figures = {m: r["figure"] for m, r in results.items() if r.get("figure")}
    if not figures:
        return []
    folder = Path(cfg.out) / "figures"
    stem = group_stem(dataset, group)
    failed: list[dict[str, Any]] = []

    def draw(path: Path, methods: list[str], plot) -> None:
        try:
            plot(path)
        except Exception as err:  # noqa: BLE001 - a figure must never cost the results
            log.warning("could not draw figure %s: %s", path, _short_error(err), exc_info=True)
            failed.extend({"method": m, **row("figure_error", float("nan")),
                           "error": f"figure {path.name}: {_short_error(err)}"} for m in methods)

    curves = {f"{m} (own)": f["curves"]["own"].float() for m, f in figures.items()}
    for source in ("shap", cfg.teacher.explainer, "random"):
        first = next((f["curves"][source] for f in figures.values() if source in f["curves"]), None)
        if first is not None and source != "own":
            curves.setdefault(f"{source} ({next(iter(figures))})", first.float())
    draw(folder / f"morf_{stem}.png", list(figures),
         lambda path: plots.plot_morf_curves(curves, path, title=f"MoRF, {dataset} / {group.backbone}"))
    histories = {m: r["facts"]["stage2_fit"]["history"] for m, r in results.items()
                 if "map_fidelity" in (((r.get("facts") or {}).get("stage2_fit") or {}).get("history") or [{}])[0]}
    if histories:
        draw(folder / f"map_fidelity_{stem}.png", list(histories),
             lambda path: plots.plot_map_fidelity(histories, path, title=f"{dataset} / {group.backbone}, seed "
                                                                         f"{group.seed}"))
    for method, f in figures.items():
        pick = f.get("example_index", torch.arange(len(f["images"])))  # cells stored before: the first rows
        draw(folder / f"examples_{stem}_{method}.png", [method],
             lambda path, f=f, pick=pick, method=method: plots.plot_examples(
                 f["images"], f["maps"], {k: v[pick].float() for k, v in f["curves"].items()}, path,
                 titles=f["titles"], suptitle=f"{method}: {dataset} / {group.backbone}, seed {group.seed}"))
    return failed


def _plain(value: Any) -> Any:
    """Facts reduced to JSON-able values (no tensors) for the stored result."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items() if not isinstance(v, torch.Tensor)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    return value.item() if isinstance(value, np.generic) else str(value)


#: the code that turns a fit into rows, fingerprinted as this module was imported
ROW_CODE = code_fingerprint(run_cell, fit_rows, explanation_rows, rows_from_run, constant_control_map)
