"""Where the time of one group goes: every stage's throughput beside its floor, measured in the same run.

  python -m benchmarks.bench_pipeline --dataset synthetic --backbone lenet5 --json pipeline.json
  python -m benchmarks.bench_pipeline --dataset imagefolder:PATH/cifar10.tar.gz --limit-train 10000 --epochs 1

Stages (images per second; training stages count training images, maps count explained images):

Training rates leave out the first epoch when ``--epochs`` is 2 or more (it pays compilation under
``--set train.compile=True`` and warm-up); the JSON keeps the rate with it as ``first_epoch_included_images_per_s``.

- ``stage1``: the shared engine training the backbone (its train loop, validation excluded) vs a bare eager
  forward + backward + Adam step of the same backbone on resident, pre-normalised tensors;
- ``teacher_maps``: the run's teacher explainer over the training images vs its forward floor (the backbone's
  plain forward throughput at the explainer's batch size, divided by the model evaluations each map needs);
- ``<method>/stage2`` (or ``<method>/fit``): the engine training the method vs a bare loop calling the method's own
  loss on pre-made batches (exactly the modules it trains, no gathering, augmentation or bookkeeping);
- ``<method>/test``: predicting the test set vs a bare ``method.predict`` over pre-normalised batches.

``stage2_over_stage1`` = stage-1 images/s ÷ the method's stage-2 images/s: how many stage-1 steps one stage-2 step
costs, per image. One job at a time: on a shared CPU every number is meaningless.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from core.artifacts import ArtifactStore
from benchmarks.bench_engine import bare_loop
from benchmarks.config import ConfigError, RunConfig, apply_settings, parse_setting
from methods.context import BackboneConfig, FitContext
from methods.engine import Batch, Engine, predict_logits
from benchmarks.environment import device_name, resolve_device
from datasets.registry import load_dataset
from methods.explainers import create_explainer
from methods.registry import create_method

STAGE2_METHODS = ("impactx", "impactx-nolambda", "impactx-shuffled", "baseline-long", "wae", "abn")


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


@torch.no_grad()
def forward_rate(module: torch.nn.Module, x: torch.Tensor, batch_size: int, device: torch.device,
                 softmax: bool = False) -> float:
    """Images/s of a plain eager forward over ``x`` in batches (warm-up outside the timer)."""
    module.eval()
    module(x[:batch_size])

    def run() -> None:
        for i in range(0, x.shape[0], batch_size):
            out = module(x[i:i + batch_size])
            if softmax:
                torch.softmax(out, 1)

    _, seconds = timed(run, device)
    return x.shape[0] / seconds


def bare_method_loop(method, data, maps: torch.Tensor | None, batch_size: int, steps: int, lr: float) -> float:
    """Images/s of ``method.loss`` + backward + Adam on pre-made, pre-normalised batches."""
    params = [p for p in method.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    x = data.normalize(data.train.images[:batch_size * 8])
    y = data.train.labels[:batch_size * 8]
    extras = {} if maps is None else {"maps": maps[:batch_size * 8]}
    batches = [Batch(x[i:i + batch_size], y[i:i + batch_size], torch.arange(i, i + batch_size),
                     {k: v[i:i + batch_size] for k, v in extras.items()}) for i in range(0, len(x), batch_size)]
    method.train()
    for sub in (getattr(method, name, None) for name in ("m", "stage1")):
        if sub is not None:
            sub.eval()
    def cross_entropy(batch: Batch):  # methods trained with plain cross-entropy on predict (baseline-long)
        logits = method.predict(batch.x)
        return F.cross_entropy(logits, batch.y), logits

    loss_fn = method.loss if hasattr(method, "loss") else cross_entropy

    def run() -> None:
        for step in range(steps):
            loss, _ = loss_fn(batches[step % len(batches)])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    run_steps = min(steps, 5)
    for step in range(run_steps):  # warm-up
        loss, _ = loss_fn(batches[step % len(batches)])
        loss.backward()
    optimizer.zero_grad(set_to_none=True)
    _, seconds = timed(run, data.device)
    method.eval()
    return steps * batch_size / seconds


def training_rate(fit: dict[str, Any]) -> float:
    """Steady training throughput: without the first epoch when there are several (it pays ``torch.compile``'s
    compilation and warm-up), so eager and compiled steps compare on what a long run spends most of its time on."""
    return fit.get("warm_images_per_s") or fit["images_per_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--backbone", default="lenet5")
    parser.add_argument("--methods", default=",".join(STAGE2_METHODS))
    parser.add_argument("--epochs", type=int, default=1, help="epochs of every training stage")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--limit-train", type=int, default=None, help="use this many training images")
    parser.add_argument("--teacher", default="occlusion", help="teacher explainer (default occlusion, 65 evals)")
    parser.add_argument("--max-evals", type=int, default=500, help="evaluations per map for partition")
    parser.add_argument("--decoder", default=None, help="IMPACTX decoder preset (default: the method's)")
    parser.add_argument("--bare-steps", type=int, default=100, help="steps of each bare loop")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", help="write the report here")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="any run setting, in the run's vocabulary and parsed by the same code as "
                             "python -m benchmarks.run --set (train.*, teacher.*, method.<m>.<option>); applied "
                             "after the flags above")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    flags = [("train.epochs", args.epochs), ("train.batch_size", args.batch_size), ("train.lr", 1e-3),
             ("train.val_fraction", 0.1), ("train.augment", True), ("teacher.explainer", args.teacher),
             ("teacher.batch_images", 1000)]
    flags += [("teacher.options.max_evals", args.max_evals)] if args.teacher == "partition" else []
    methods = [m for m in args.methods.split(",") if m]
    flags += [(f"method.{m}.decoder", args.decoder) for m in methods if args.decoder and m.startswith("impactx")]
    try:
        cfg = apply_settings(RunConfig(), flags + args.set)  # the run's settings code and dataclasses; before any work
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    teacher, options = cfg.teacher, cfg.teacher.options
    device = resolve_device(args.device)
    data = load_dataset(args.dataset, root=args.data_root, device=device)
    if args.limit_train:
        data = data.limit(args.limit_train, None, seed=0)
    ctx = FitContext(data, Engine(cfg.train, seed=0, progress=False), BackboneConfig(args.backbone), seed=0,
                     teacher=teacher, artifacts=ArtifactStore(None))
    stages: list[dict[str, Any]] = []

    def add(name: str, rate: float, floor: float, **extra: Any) -> None:
        stages.append({"name": name, "images_per_s": rate, "floor_images_per_s": floor,
                       "ratio_to_floor": rate / floor, **extra})
        print(f"  {name:28s} {rate:10.1f} images/s   floor {floor:10.1f}   ratio {rate / floor:5.2f}", flush=True)

    print(f"{args.backbone} on {data.name} ({len(data.train)} train images), {device_name(device)}, "
          f"{torch.get_num_threads()} threads, batch {cfg.train.batch_size}, {cfg.train.epochs} epoch(s) per stage:")
    x_all = data.normalize(data.train.images)
    stage1, key = ctx.stage1()
    fresh = ctx.build_backbone()
    add("stage1", training_rate(ctx.facts["stage1_fit"]),
        bare_loop(fresh, x_all, data.train.labels, cfg.train.batch_size, args.bare_steps, cfg.train.lr))
    maps, seconds = timed(lambda: ctx.maps_of(stage1, key)[0], device)
    explainer = create_explainer(teacher.explainer, **options)  # its own defaults fill what is unset
    evals = getattr(explainer, "max_evals", None) or (data.image_size // 4) ** 2 + 1  # occlusion: 8x8 grid + 1
    floor = forward_rate(stage1, x_all, 1000, device, softmax=True) / evals
    add("teacher_maps", len(data.train) / seconds, floor, evaluations_per_image=evals)
    for name in methods:
        method = create_method(name, args.backbone, data.num_classes, **cfg.method_options.get(name, {})).to(device)
        facts = method.fit(ctx)
        fit = facts.get("stage2_fit") or facts.get("fit")
        stage = "stage2" if "stage2_fit" in facts else "fit"
        uses_maps = name.startswith("impactx") or name.startswith("wae")
        bare = bare_method_loop(method, data, maps if uses_maps else None, cfg.train.batch_size, args.bare_steps,
                                cfg.train.lr)
        add(f"{name}/{stage}", training_rate(fit), bare,
            stage2_over_stage1=stages[0]["images_per_s"] / training_rate(fit),
            first_epoch_included_images_per_s=fit["images_per_s"])
        _, seconds = timed(lambda: predict_logits(method.predict, data, data.test, 1000), device)
        x_test = data.normalize(data.test.images)
        add(f"{name}/test", len(data.test) / seconds, forward_rate(method.classifier(), x_test, 1000, device))
    report = {"dataset": data.name, "backbone": args.backbone, "device": device_name(device),
              "threads": torch.get_num_threads(), "train_images": len(data.train), "epochs": cfg.train.epochs,
              "batch_size": cfg.train.batch_size, "teacher": {"explainer": teacher.explainer, **options},
              "settings": [f"{k}={v}" for k, v in map(parse_setting, args.set)],
              "stages": stages}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
