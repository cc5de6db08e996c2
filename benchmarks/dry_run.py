"""``--dry-run``: what a command will do and cost, before it does anything.

For every group (dataset, backbone, seed) and cell (+ method): whether its stage outputs are already in the cache,
looked up by the same content keys the run uses (stage-1 models: ``FitContext.stage1_spec``; finished cells:
``grid.cell_spec``; teacher-map shards: ``teacher_maps.maps_key``, known once the stage-1 model exists), the work left
(training steps per stage, model evaluations for teacher maps and MoRF curves) and an estimated wall time from a
short calibration on this device: the measured training throughput (forward + backward + optimiser step) of each
backbone at the run's batch size, its forward throughput, the time per image of any explainer other than SHAP
Partition (whose cost is ``max_evals`` forward passes per image), and each method's own training stage (its
``fit`` for a few steps on a small slice in memory: decoders and attention branches included). Nothing is written
and nothing the run would reuse is trained.

The estimate counts model work plus a fixed allowance per cell and per group (loading, figures). Checked on this
2-core CPU (LeNet-5, 2,000 CIFAR-10 images, 2 epochs, Partition 200 evaluations, four methods): estimated 32 s vs
measured 38 s; per stage: stage 1 0.4 vs 0.5 s, teacher maps 16.0 vs 15.8 s, the methods' own training 6.9 vs
7.3 s, explanations 2.7 vs 4.8 s.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from benchmarks.config import RunConfig
from benchmarks.evaluate import MorfConfig, make_config
from benchmarks.executors import load_group_data
from benchmarks.grid import backbone_config, cell_spec
from core.artifacts import ArtifactStore, spec_key
from datasets.base import fingerprint
from methods.context import BackboneConfig, FitContext, TeacherConfig
from methods.engine import Engine, make_optimizer
from methods.explainers import create_explainer
from methods.registry import create_method, get_method_class
from methods.teacher_maps import MAPS_KIND, maps_key
from core.torch_utils import synchronize

CELL_OVERHEAD_S = 1.0  # building the method, predicting, tables: measured ~0.5-2 s per tiny cell on a 2-core CPU
GROUP_OVERHEAD_S = 2.0  # loading data, drawing figures


@dataclass
class Calibration:
    """Measured seconds per image on this device for one backbone at one image size."""

    backbone: str
    train_s_per_image: float  # forward + backward + optimiser step, at the run's batch size
    forward_s_per_image: float  # inference, at a large batch
    explainer_s_per_image: dict[str, float] = field(default_factory=dict)  # explainers other than Partition
    method_s_per_image: dict[str, float] = field(default_factory=dict)  # a method's own training stage


@dataclass
class Work:
    """Work left of one kind, with its estimated seconds."""

    steps: int = 0  # training steps
    images: int = 0  # training images processed (steps x batch)
    evaluations: int = 0  # model evaluations (forward passes of one image) for maps and MoRF curves
    seconds: float = 0.0

    def add(self, other: "Work") -> None:
        self.steps += other.steps
        self.images += other.images
        self.evaluations += other.evaluations
        self.seconds += other.seconds


@dataclass
class Plan:
    lines: list[str] = field(default_factory=list)
    stages: dict[str, Work] = field(default_factory=dict)
    overhead_s: float = 0.0
    cells: int = 0
    cells_cached: int = 0

    def stage(self, name: str) -> Work:
        return self.stages.setdefault(name, Work())

    @property
    def seconds(self) -> float:
        return self.overhead_s + sum(w.seconds for w in self.stages.values())


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def calibrate(cfg: RunConfig, backbone: str, data, device: torch.device, explainers: dict[str, dict[str, Any]],
              budget_s: float = 1.0) -> Calibration:
    """Time a few training steps and forward passes of ``backbone`` (random weights: the same cost as pretrained
    ones) on real images of ``data``, and each non-Partition explainer on a few images."""

    size = cfg.input_size.get(backbone)
    model = BackboneConfig(backbone, size, False).build(data.num_classes, data.image_size).to(device)
    batch = min(cfg.train.batch_size, len(data.train))
    x = data.normalize(data.train.images[:batch]).to(device)
    y = data.train.labels[:batch].to(device)
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg.train)

    def timed(step, minimum: int = 2) -> float:
        step()  # warm-up (allocations, cudnn autotune)
        synchronize(device)
        start, n = time.perf_counter(), 0
        while n < minimum or (time.perf_counter() - start < budget_s and n < 50):
            step()
            n += 1
        synchronize(device)
        return (time.perf_counter() - start) / n

    def train_step() -> None:
        model.train()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    train_s = timed(train_step) / batch
    eval_batch = min(256, len(data.train))
    xe = data.normalize(data.train.images[:eval_batch]).to(device)
    model.eval()

    def forward() -> None:
        with torch.no_grad():
            model(xe)

    forward_s = timed(forward) / eval_batch
    per_explainer = {}
    xs, ys = x[:4], y[:4]
    for name, options in explainers.items():
        explainer = create_explainer(name, **options)
        if hasattr(explainer, "max_evals"):
            continue  # Partition: max_evals forward passes per image
        per_explainer[name] = timed(lambda: explainer.explain(model, xs, ys), minimum=1) / len(xs)
    return Calibration(backbone, train_s, forward_s, per_explainer)


def calibrate_method(cfg: RunConfig, method: str, backbone: str, data, device: torch.device) -> float | None:
    """Seconds per training image of ``method``'s own stage (its decoder, attention branch, ... included): its
    ``fit`` on a small slice for a few steps (in memory, saliency teacher maps), read from the stage's measured
    throughput. None when the method reports none or fails here (the backbone's cost is used instead)."""

    batch = cfg.train.batch_size
    small = data.limit(train=min(len(data.train), 6 * batch), test=min(len(data.test), 8), seed=0)
    small = dataclasses.replace(small, extra={})
    engine = Engine(dataclasses.replace(cfg.train, epochs=2, max_steps_per_epoch=3, val_fraction=0.1), seed=0,
                    progress=False)
    ctx = FitContext(small, engine, backbone_config(cfg, backbone), seed=0,
                     teacher=TeacherConfig("saliency", {}, batch_images=len(small.train)),
                     artifacts=ArtifactStore(None))
    options = {k: v for k, v in cfg.method_options.get(method, {}).items() if k not in ("epochs", "refresh_every")}
    try:
        model = create_method(method, backbone, small.num_classes, **options)
        model.to(device)
        facts = model.fit(ctx) or {}
    except Exception:  # noqa: BLE001 - an estimate must not fail on what the run itself would report
        return None
    rates = [fit.get("images_per_s", 0.0) for name, fit in facts.items()
             if isinstance(fit, dict) and name != "stage1_fit" and fit.get("images_per_s")]
    return 1.0 / min(rates) if rates else None


def explainer_cost(name: str, options: dict[str, Any], n_images: int, cal: Calibration) -> Work:
    """Model evaluations and seconds of explaining ``n_images`` images."""

    explainer = create_explainer(name, **options)
    evals = getattr(explainer, "max_evals", None)
    if evals is not None:
        return Work(evaluations=n_images * evals, seconds=n_images * evals * cal.forward_s_per_image)
    return Work(evaluations=n_images, seconds=n_images * cal.explainer_s_per_image.get(name, 3 * cal.train_s_per_image))


def training(cfg_train, n_train: int, cal: Calibration, s_per_image: float | None = None) -> Work:
    """One training run of the engine: steps, images and time (validation passes included); ``s_per_image``:
    a method's own measured cost (default: the backbone's)."""
    n_val = int(round(n_train * cfg_train.val_fraction))
    steps = math.ceil((n_train - n_val) / cfg_train.batch_size)
    if cfg_train.max_steps_per_epoch:
        steps = min(steps, cfg_train.max_steps_per_epoch)
    images = cfg_train.epochs * steps * cfg_train.batch_size
    seconds = images * (s_per_image or cal.train_s_per_image) + cfg_train.epochs * n_val * cal.forward_s_per_image
    return Work(steps=cfg_train.epochs * steps, images=images, seconds=seconds)


def _exists(artifacts, kind: str, key: str) -> bool:
    path = artifacts.path(kind, key)
    return path is not None and path.exists()


def plan_group(cfg: RunConfig, group, data, artifacts, cal: Calibration, plan: Plan) -> None:
    """Add one group's cache state, work and estimate to ``plan``."""

    n_train, n_test = len(data.train), len(data.test)
    plan.lines.append(f"group {data.name} / {group.backbone} / seed {group.seed}: {n_train} training images "
                      f"({cfg.train.val_fraction:g} for validation), {n_test} test images, {data.image_size} px")
    engine = Engine(cfg.train, seed=group.seed, progress=False)
    ctx = FitContext(data=data, engine=engine, backbone=backbone_config(cfg, group.backbone), seed=group.seed,
                     teacher=cfg.teacher, artifacts=artifacts, stage1_grid=cfg.stage1_grid)
    todo: list[str] = []
    for method in group.methods:
        grid = cfg.method_grid.get(method, {})
        names = sorted(grid)
        candidates = [{**cfg.method_options.get(method, {}), **dict(zip(names, values))}
                      for values in itertools.product(*(grid[n] for n in names))]
        keys = [spec_key("cell", cell_spec(cfg, data, group, method, options)) for options in candidates]
        cached = [_exists(artifacts, "cell", k) for k in keys]
        plan.cells += 1
        plan.cells_cached += all(cached)
        state = "cached" if all(cached) else "to run" if not any(cached) else \
            f"{sum(cached)} of {len(keys)} candidates cached"
        plan.lines.append(f"  cell {method:<18} {state} (cell/{keys[0]}" + (", ..." if len(keys) > 1 else "") + ")")
        todo += [method] * sum(not c for c in cached)
    if not todo:
        return
    plan.overhead_s += GROUP_OVERHEAD_S + CELL_OVERHEAD_S * len(todo)
    classes = {m: get_method_class(m) for m in group.methods}
    teacher_group = any(c.uses_teacher_maps for c in classes.values())
    needs_stage1 = any(classes[m].uses_stage1 or classes[m].uses_teacher_maps for m in todo) or \
        (teacher_group and cfg.explain_eval)
    needs_maps = any(classes[m].uses_teacher_maps for m in todo) or (teacher_group and cfg.explain_eval)

    stage1_ready = True
    if needs_stage1:
        engines = [engine]
        if cfg.stage1_grid:
            grid_names = sorted(cfg.stage1_grid)
            engines = [engine.replace(**dict(zip(grid_names, values)))
                       for values in itertools.product(*(cfg.stage1_grid[n] for n in grid_names))]
        missing = [e for e in engines if not _exists(artifacts, "stage1", spec_key("stage1", ctx.stage1_spec(e)))]
        stage1_ready = not missing
        work = Work()
        for e in missing:
            work.add(training(e.cfg, n_train, cal))
        plan.stage("stage-1 training").add(work)
        plan.lines.append(f"  stage-1 model      {len(engines) - len(missing)} of {len(engines)} training(s) cached"
                          + (f"; {len(missing)} to train: {work.steps} steps, ~{_seconds(work.seconds)}"
                             if missing else ""))
    if needs_maps:
        shards = math.ceil(n_train / max(1, cfg.teacher.batch_images))
        present = _present_shards(ctx, cfg, data) if stage1_ready else None
        left_images = n_train if not present else max(0, n_train - present * cfg.teacher.batch_images)
        work = explainer_cost(cfg.teacher.explainer, cfg.teacher.options, left_images, cal)
        plan.stage("teacher maps").add(work)
        state = "model not trained yet" if present is None else f"{present} of {shards} shard(s) cached"
        plan.lines.append(f"  teacher maps       {cfg.teacher.explainer} on {n_train} images: {state}"
                          + (f"; {work.evaluations:,} model evaluations, ~{_seconds(work.seconds)}"
                             if left_images else ""))
    for method in todo:
        cls, options = classes[method], cfg.method_options.get(method, {})
        own = Work()
        if "epochs" in cls.option_names() or not cls.uses_stage1:
            epochs = options.get("epochs") or cfg.train.epochs
            if method not in cal.method_s_per_image:
                cal.method_s_per_image[method] = calibrate_method(cfg, method, group.backbone, data, data.device)
            own = training(dataclasses.replace(cfg.train, epochs=epochs), n_train, cal, cal.method_s_per_image[method])
            plan.stage("method training").add(own)
            if "refresh_every" in cls.option_names():  # maps of the model being trained, every few epochs
                refreshes = math.ceil(epochs / int(options.get("refresh_every", 5)))
                name = options.get("explainer") or cfg.teacher.explainer
                plan.stage("method maps").add(explainer_cost(name, options.get("explainer_options") or
                                                             (cfg.teacher.options if name == cfg.teacher.explainer
                                                              else {}), refreshes * n_train, cal))
        predict = prediction_cost(cls, options, data.num_classes, cal)
        plan.stage("testing").add(Work(evaluations=n_test * predict.evaluations, seconds=n_test * predict.seconds))
        if cfg.explain_eval:
            plan.stage("explanations").add(_explanation_work(cfg, cls, data, teacher_group, cal, predict))
        if own.steps:
            plan.lines.append(f"  {method:<18} own training: {own.steps} steps, ~{_seconds(own.seconds)}")


def prediction_cost(cls, options: dict[str, Any], num_classes: int, cal: Calibration) -> Work:
    """Model evaluations and seconds of predicting one image: one forward pass, or, for a method that predicts by
    explaining every class (``wae-shap``: no post-hoc maps, a capped explanation budget), an explainer call per
    class."""
    if cls.max_explanation_images is not None and not cls.post_hoc_explainable:
        return explainer_cost(options.get("explainer", "partition"), options.get("explainer_options") or {},
                              num_classes, cal)
    return Work(evaluations=1, seconds=cal.forward_s_per_image)


def _explanation_work(cfg: RunConfig, cls, data, teacher_group: bool, cal: Calibration, predict: Work) -> Work:
    n = min(cfg.explanation_images, len(data.test))
    if cls.max_explanation_images is not None:
        n = min(n, cls.max_explanation_images)
    morf = make_config(MorfConfig(), **cfg.morf)
    region = morf.region_size or max(1, data.image_size // 8)
    steps = morf.steps or (data.image_size // region) ** 2
    sources = 2 + int(cls.post_hoc_explainable) + int(teacher_group) + 1  # own, random, post-hoc, constant, ref.
    evals = n * sources * (steps + 1) * morf.noise_draws  # predictions of perturbed images
    work = Work(evaluations=evals * predict.evaluations, seconds=evals * predict.seconds)
    if cls.post_hoc_explainable:
        explainer_options = {k: v for k, v in cfg.teacher.options.items() if k != "compile"}
        work.add(explainer_cost(cfg.teacher.explainer, explainer_options, n, cal))
    return work


def _present_shards(ctx, cfg: RunConfig, data) -> int | None:
    """Teacher-map shards on disk for the stage-1 model the run would choose (all its trainings are cached)."""
    if ctx.artifacts.root is None:
        return None
    try:
        model, key = ctx.stage1()
    except Exception:  # noqa: BLE001 - an unreadable model: the run rebuilds it, so do the maps
        return 0
    folder = ctx.artifacts.shard_dir(MAPS_KIND, maps_key(model, data.train.images, data.train.labels, cfg.teacher,
                                                        key, fingerprint(data)))
    return len(list(folder.glob("shard_*.pt"))) if folder.is_dir() else 0


def estimate(cfg: RunConfig, groups: list, device: torch.device) -> Plan:
    """The plan of ``groups``: cache state, work left per stage and estimated seconds."""
    plan = Plan()
    explainers = {cfg.teacher.explainer: cfg.teacher.options}
    calibrations: dict[tuple[str, str, int], Calibration] = {}
    cache: dict = {}
    for group in groups:
        data = load_group_data(cfg, group.dataset, device, cache)
        key = (group.backbone, group.dataset, data.image_size)
        if key not in calibrations:
            calibrations[key] = calibrate(cfg, group.backbone, data, device, explainers)
        plan_group(cfg, group, data, ArtifactStore(cfg.artifacts_root()), calibrations[key], plan)
    plan.lines.append(f"calibration on {device} (seconds per image):")
    for (backbone, dataset, size), cal in calibrations.items():
        extra = "".join(f", {n} {s * 1e3:.2f} ms" for n, s in cal.explainer_s_per_image.items())
        extra += "".join(f", {m} training {s * 1e3:.3f} ms" for m, s in cal.method_s_per_image.items() if s)
        plan.lines.append(f"  {backbone} on {dataset} ({size} px): training {cal.train_s_per_image * 1e3:.3f} ms "
                          f"at batch {cfg.train.batch_size}, forward {cal.forward_s_per_image * 1e3:.3f} ms{extra}")
    return plan


def dry_run(cfg: RunConfig, groups: list, device: torch.device) -> str:
    """The text ``--dry-run`` prints."""
    plan = estimate(cfg, groups, device)
    lines = [f"dry run: {len(groups)} group(s), {plan.cells} cell(s) ({plan.cells_cached} cached) on {device}; "
             f"cache {cfg.artifacts_root()}; nothing is written (calibration: a few throw-away steps)",
             *plan.lines, "work left:"]
    for name, work in plan.stages.items():
        if not (work.steps or work.evaluations):
            continue
        parts = [f"{work.steps:,} training steps ({work.images:,} images)" if work.steps else "",
                 f"{work.evaluations:,} model evaluations" if work.evaluations else ""]
        lines.append(f"  {name:<18} " + ", ".join(p for p in parts if p) + f": ~{_seconds(work.seconds)}")
    lines.append(f"  {'fixed overhead':<18} ~{_seconds(plan.overhead_s)}")
    lines.append(f"estimated wall time: ~{_seconds(plan.seconds)}")
    return "\n".join(lines)
