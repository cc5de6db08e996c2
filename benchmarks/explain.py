"""Precompute (or resume) the teacher maps of one cell: ``python -m benchmarks.explain --help``.

The stage-1 model is obtained exactly as the benchmark does (``FitContext.stage1()``: trained once and stored, or
loaded from the artifacts root), then its maps on a split are computed in resumable float16 shards under
``<out>/maps/<key>/`` (see :mod:`methods.teacher_maps`). Re-running the same command computes nothing that
is already stored; an interrupted run resumes at the first missing shard.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from benchmarks.config import RunConfig, apply_settings, parse_setting
from benchmarks.logs import setup_console
from core import progress
from core.artifacts import ArtifactStore
from datasets import DatasetUnavailable, load_dataset
from methods.backbones import PretrainedWeightsUnavailable, backbone_spec
from methods.context import BackboneConfig, FitContext, TeacherConfig
from methods.engine import Engine
from methods.explainers import create_explainer, list_explainers
from methods.registry import UnknownNameError
from methods.teacher_maps import MAPS_KIND, split_maps

EXAMPLES = """examples:
  python -m benchmarks.explain --dataset digits --backbone lenet5 --explainer partition
  python -m benchmarks.explain --dataset cifar10 --backbone lenet5 --seed 1 --set max_evals=2000
  python -m benchmarks.explain --dataset digits --backbone tiny --explainer integrated-gradients --set n_steps=32 \\
      --train epochs=2 --limit-train 300 --out /tmp/artifacts

exit codes: 0 done, 2 bad arguments (unknown dataset/backbone/explainer, bad option), 1 other errors."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.explain", description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="digits", help="dataset name (e.g. digits, synthetic, cifar10, "
                                                       "imagefolder:<path>); default: %(default)s")
    p.add_argument("--data-root", default="data", help="where torchvision datasets live (default: %(default)s)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of generated datasets (default: %(default)s)")
    p.add_argument("--download", action="store_true", help="download a torchvision dataset if missing")
    p.add_argument("--backbone", default="lenet5", help="backbone name (lenet5, tiny, mobilenet, efficientnet_b2, "
                                                        "timm:<name>); default: %(default)s")
    p.add_argument("--input-size", type=int, default=None, help="resolution the backbone runs at (default: its own)")
    pre = p.add_mutually_exclusive_group()
    pre.add_argument("--pretrained", dest="pretrained", action="store_true", default=None,
                     help="start from pretrained weights (the default for mobilenet / efficientnet_b2)")
    pre.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                     help="train from scratch (offline machines)")
    p.add_argument("--weights-path", default=None, help="local pretrained weights file")
    p.add_argument("--seed", type=int, default=0, help="cell seed (stage-1 init and training); default: %(default)s")
    p.add_argument("--explainer", default="partition",
                   help=f"teacher explainer, one of: {', '.join(list_explainers())}; default: %(default)s")
    p.add_argument("--set", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="explainer option (repeatable), e.g. max_evals=2000, output=logit, masker='blur(128,128)'; "
                        "values are parsed like the run's --set (numbers, true/false, lists; else strings); "
                        "unset options keep the explainer's defaults (partition: max_evals=2000)")
    p.add_argument("--batch-images", type=int, default=500,
                   help="images per shard (and per explainer call); default: %(default)s")
    p.add_argument("--split", default="train", choices=["train", "test"], help="split to explain (default: train)")
    p.add_argument("--train", dest="train", action="append", default=[], metavar="KEY=VALUE",
                   help="stage-1 TrainConfig field (repeatable), e.g. epochs=10, batch_size=64, lr=1e-3")
    p.add_argument("--limit-train", type=int, default=None, help="use a seeded subset of N training images (smoke)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default: %(default)s)")
    p.add_argument("--out", default="runs/artifacts", help="artifacts root (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")
    return p


class UsageError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_console("normal")  # warnings, and timestamped progress lines when stderr is not a terminal
    progress.configure(bars=False if args.quiet else None, console_lines=not args.quiet)
    try:
        return run(args)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def run(args: argparse.Namespace) -> int:
    import torch

    try:
        # the run's vocabulary and code: --set k=v is teacher.options.k, --train k=v is train.k (benchmarks.config)
        cfg = apply_settings(RunConfig(teacher=TeacherConfig(args.explainer, {}, args.batch_images)),
                             [("teacher.options." + k, v) for k, v in map(parse_setting, args.options)]
                             + [("train." + k, v) for k, v in map(parse_setting, args.train)])
        options, train_cfg = cfg.teacher.options, cfg.train  # unset options: the explainer's defaults
        explainer = create_explainer(args.explainer, **options)  # validates the option values
        backbone_spec(args.backbone)
        if args.batch_images < 1:
            raise UsageError("--batch-images must be positive")
    except (UnknownNameError, TypeError, ValueError) as err:  # ConfigError is a ValueError
        raise UsageError(str(err)) from err

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: CUDA is not available on this machine")
    try:
        data = load_dataset(args.dataset, root=args.data_root, download=args.download, device=device,
                            seed=args.data_seed)
    except UnknownNameError as err:
        raise UsageError(str(err)) from err
    except DatasetUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.limit_train:
        data = data.limit(train=args.limit_train, seed=args.seed)
        data.extra = {}  # a subset is a different dataset: do not inherit the full set's fingerprint

    teacher = TeacherConfig(explainer=args.explainer, options=options, batch_images=args.batch_images)
    ctx = FitContext(data=data, engine=Engine(train_cfg, seed=args.seed, progress=not args.quiet),
                     backbone=BackboneConfig(args.backbone, args.input_size, args.pretrained, args.weights_path),
                     seed=args.seed, teacher=teacher, artifacts=ArtifactStore(args.out))
    t0 = time.perf_counter()
    try:
        model, model_key = ctx.stage1()
    except PretrainedWeightsUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    t1 = time.perf_counter()

    stats: dict = {}
    maps, key = split_maps(model, data, args.split, teacher, model_key, ctx.artifacts, progress=not args.quiet,
                           stats=stats)
    t2 = time.perf_counter()
    n = len(getattr(data, args.split))
    print(json.dumps({
        "dataset": args.dataset, "backbone": args.backbone, "seed": args.seed, "split": args.split, "images": n,
        "explainer": explainer.config(), "stage1_key": model_key,
        "stage1_val_accuracy": ctx.facts.get("stage1_fit", {}).get("best_val_accuracy"),
        "maps_dir": str(ctx.artifacts.root / MAPS_KIND / key), "maps_shape": list(maps.shape),
        "shards_computed": stats["shards_computed"], "stage1_s": round(t1 - t0, 2), "maps_s": round(t2 - t1, 2),
        "seconds_per_image": round((t2 - t1) / max(1, n), 5) if stats["shards_computed"] else None,
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
