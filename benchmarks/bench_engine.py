"""Training throughput of the shared engine vs a bare forward+backward loop on the same resident tensors.

  python benchmarks/bench_engine.py --backbone lenet5 --dataset synthetic --batch-size 64 --repeats 5

Both loops see the same model architecture, optimiser, batch size and device-resident data; the bare loop indexes
pre-normalised float tensors and does nothing else, the engine gathers uint8 images, augments (crop + flip) when
asked, normalises, tracks the loss on the device and runs validation (excluded from its images/s, as the engine
reports train-loop throughput). Reports median images/s over repeats and the ratio engine / bare. The engine runs
two epochs of ``--steps`` steps and its rate is the second epoch's (``FitResult.warm_images_per_s``), so with
``--compile`` the compiled engine (``train.compile``) is measured after compilation, beside the eager one, in the
same run:

  python benchmarks/bench_engine.py --backbone lenet5 --dataset synthetic --batch-size 128 --compile
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from methods.engine import Engine, TrainConfig  # noqa: E402
from benchmarks.environment import device_name, resolve_device  # noqa: E402
from datasets import load_dataset  # noqa: E402
from methods.backbones import create_backbone  # noqa: E402


def bare_loop(model, x, y, batch_size: int, steps: int, lr: float) -> float:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    n = x.shape[0]
    order = torch.randperm(n, device=x.device)
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    seen = 0
    for step in range(steps):
        index = order[(step * batch_size) % (n - batch_size):][:batch_size]
        loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(index)
    float(loss.detach())
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="lenet5")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200, help="training steps per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--augment", action="store_true", help="engine with crop+flip (bare loop has none)")
    parser.add_argument("--compile", action="store_true", help="also time the engine with train.compile=True")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    data = load_dataset(args.dataset, device=device)
    x_float = data.normalize(data.train.images)
    y = data.train.labels
    cfg = TrainConfig(epochs=2, batch_size=args.batch_size, lr=1e-3, val_fraction=0.0, augment=args.augment,
                      max_steps_per_epoch=args.steps)
    results: dict[str, list[float]] = {"bare": [], "engine": [], **({"engine-compiled": []} if args.compile else {})}

    def make() -> torch.nn.Module:
        return create_backbone(args.backbone, data.num_classes, data.image_size, pretrained=False).to(device)

    bare_loop(make(), x_float, y, args.batch_size, 20, 1e-3)  # warm-up outside the timer
    for repeat in range(args.repeats):
        torch.manual_seed(repeat)
        results["bare"].append(bare_loop(make(), x_float, y, args.batch_size, args.steps, 1e-3))
        for name in [n for n in results if n != "bare"]:
            model = make()
            engine = Engine(dataclasses.replace(cfg, compile=name == "engine-compiled"), seed=repeat, progress=False)
            fit = engine.fit(model, lambda b, model=model: (F.cross_entropy(out := model(b.x), b.y), out), data)
            results[name].append(fit.warm_images_per_s)
    med = {k: statistics.median(v) for k, v in results.items()}
    report = {"backbone": args.backbone, "dataset": args.dataset, "batch_size": args.batch_size,
              "augment": args.augment, "steps": args.steps, "repeats": args.repeats, "device": device_name(device),
              "median_images_per_s": med, "ratio_engine_over_bare": med["engine"] / med["bare"], "runs": results}
    if args.compile:
        report["ratio_compiled_over_eager"] = med["engine-compiled"] / med["engine"]
    print(f"{args.backbone} on {args.dataset}, batch {args.batch_size}, augment={args.augment}, "
          f"{device_name(device)}, median of {args.repeats}:")
    print(f"  bare loop : {med['bare']:9.0f} images/s")
    print(f"  engine    : {med['engine']:9.0f} images/s")
    print(f"  ratio     : {report['ratio_engine_over_bare']:.3f}")
    if args.compile:
        ratio = report["ratio_compiled_over_eager"]
        print(f"  compiled  : {med['engine-compiled']:9.0f} images/s ({ratio:.3f}x eager)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
