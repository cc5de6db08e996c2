"""MoRF throughput of the suite vs its forward bound and vs Quantus RegionPerturbation, in one run.

  python benchmarks/bench_morf.py --backbone lenet5 --n-images 256 --repeats 3 --json /tmp/bench_morf.json

All contenders see the same model (LeNet-5 by default; weights do not change the cost), the same ``--n-images``
test images of ``--dataset`` at their own size and the same random maps, with L = every region (64 by default):

- ``suite (uniform)``: :func:`benchmarks.evaluate.morf_curves` with its defaults (per-pixel U(0, 1) noise, seeded
  per image, softmax probability);
- ``suite (constant)``: the same with a constant baseline (the mode that matches Quantus);
- forward bounds: plain ``softmax(model(x))`` over N·(L+1) pre-normalised images in exactly the batch sizes the
  suite uses, divided by (L+1): what MoRF would cost if building the perturbed images were free. Two of them:
  ``bound (NCHW)`` with ordinary contiguous tensors and ``bound (ch-last)`` with channels-last tensors, the layout
  the suite builds its perturbed batch in on CPU (oneDNN convolves it faster). The 0.8x target is checked against
  the bound of the suite's own layout (the stricter one on CPU);
- ``quantus``: ``quantus.RegionPerturbation`` (constant baseline, ``regions_evaluation=L``, same patch size) on the
  same inputs, one call over all images (``--quantus-batch-size``, default all of them: its fastest setting).

Images/s = images whose whole curve was computed per second; medians over ``--repeats`` (one warm-up each, outside
the timer). Targets: suite ≥ 0.8× the forward bound and ≥ 2× Quantus.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.environment import device_name, resolve_device  # noqa: E402
from benchmarks.evaluate import MorfConfig, morf_curves, region_grid  # noqa: E402
from datasets import load_dataset  # noqa: E402
from methods.backbones import create_backbone  # noqa: E402
from core.torch_utils import synchronize  # noqa: E402


def _timed(fn, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


class _RawInput(nn.Module):
    def __init__(self, model: nn.Module, data) -> None:
        super().__init__()
        self.model, self.data = model, data

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.model(self.data.normalize(raw))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="lenet5")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--n-images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=None, help="suite chunk size (default: its own)")
    parser.add_argument("--region-size", type=int, default=None, help="default H // 8 (64 regions)")
    parser.add_argument("--quantus-batch-size", type=int, default=None, help="default: all images in one batch")
    parser.add_argument("--no-quantus", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    device = resolve_device(args.device)
    data = load_dataset(args.dataset, device=device)
    n = min(args.n_images, len(data.test))
    raw = data.test.images[:n]
    y = data.test.labels[:n]
    maps = torch.randn(n, 1, *raw.shape[-2:], generator=torch.Generator().manual_seed(0)).to(device)
    torch.manual_seed(0)
    model = create_backbone(args.backbone, data.num_classes, data.image_size, pretrained=False).to(device).eval()
    cfg = MorfConfig(region_size=args.region_size, chunk_size=args.chunk_size)
    size = cfg.resolve_region_size(raw.shape[-1])
    _, regions = region_grid(raw.shape[-2], raw.shape[-1], size)
    steps = regions + 1
    chunk = cfg.resolve_chunk_size(device)
    per_chunk = max(1, chunk // steps)
    # The exact forward batch sizes morf_curves uses: per image chunk, b·(L+1) images split into <= chunk.
    sizes = []
    for start in range(0, n, per_chunk):
        total = min(per_chunk, n - start) * steps
        sizes += [min(chunk, total - i) for i in range(0, total, chunk)]
    x = data.normalize(raw)
    pool = x[torch.arange(max(sizes)) % n]
    pool_cl = pool.contiguous(memory_format=torch.channels_last)
    layout = "channels-last" if cfg.resolve_channels_last(device) else "contiguous"

    def forward_all(inputs: torch.Tensor) -> None:
        with torch.inference_mode():
            for s in sizes:
                torch.softmax(model(inputs[:s]), 1)

    def suite(baseline) -> None:
        morf_curves(model, raw, y, maps, normalize=data, config=cfg, baseline=baseline)

    contenders = {
        "suite (uniform)": lambda: suite("uniform"),
        "suite (constant)": lambda: suite(0.0),
        "bound (NCHW)": lambda: forward_all(pool),
        "bound (ch-last)": lambda: forward_all(pool_cl),
    }
    if not args.no_quantus:
        import numpy as np
        import quantus

        raw_np = (raw.float() / 255.0).cpu().numpy()
        y_np, maps_np = y.cpu().numpy(), maps.cpu().numpy()
        wrapped = _RawInput(model, data).eval()
        metric = quantus.RegionPerturbation(patch_size=size, regions_evaluation=regions, order="morf", abs=False,
                                            normalise=False, perturb_baseline=0.0, disable_warnings=True,
                                            display_progressbar=False)
        qdevice = "cuda" if device.type == "cuda" else "cpu"

        def run_quantus() -> None:
            out = metric(wrapped, raw_np, y_np, a_batch=maps_np, softmax=True, device=qdevice,
                         batch_size=args.quantus_batch_size or n)
            np.asarray(out)

        contenders["quantus"] = run_quantus

    seconds: dict[str, list[float]] = {k: [] for k in contenders}
    for name, fn in contenders.items():
        fn()  # warm-up outside the timer
    for _ in range(args.repeats):
        for name, fn in contenders.items():  # interleaved, so a busy moment on the machine hits all of them
            seconds[name].append(_timed(fn, device))
    med = {k: n / statistics.median(v) for k, v in seconds.items()}  # images (whole curves) per second
    same = "bound (ch-last)" if layout == "channels-last" else "bound (NCHW)"
    report = {
        "backbone": args.backbone, "dataset": args.dataset, "image_size": int(raw.shape[-1]), "n_images": n,
        "regions": regions, "region_size": size, "chunk_size": chunk, "repeats": args.repeats,
        "device": device_name(device), "torch_threads": torch.get_num_threads(),
        "suite_layout": layout, "median_images_per_s": med,
        "ratio_suite_over_bound_same_layout": med["suite (uniform)"] / med[same],
        "ratio_suite_over_bound_nchw": med["suite (uniform)"] / med["bound (NCHW)"],
        "ratio_suite_constant_over_bound_same_layout": med["suite (constant)"] / med[same],
        "seconds": seconds,
        "note": "shared machine: other workers may run at the same time; medians over interleaved repeats",
    }
    if "quantus" in med:
        report["ratio_suite_over_quantus"] = med["suite (uniform)"] / med["quantus"]
        report["ratio_suite_constant_over_quantus"] = med["suite (constant)"] / med["quantus"]
    print(f"MoRF, {args.backbone} on {args.dataset} ({raw.shape[-1]} px), {n} images, L = {regions} regions "
          f"({size}x{size}), chunk {chunk}, {device_name(device)}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats} (shared machine)")
    print(f"  {'contender':<18} {'images/s':>10} {'s/run':>8}   (images/s = whole curves per second)")
    for name in contenders:
        print(f"  {name:<18} {med[name]:10.1f} {statistics.median(seconds[name]):8.3f}")
    print(f"  suite (uniform) / {same:<16}: {report['ratio_suite_over_bound_same_layout']:.3f}   (target >= 0.8; "
          f"the suite's own input layout, {layout})")
    print(f"  suite (uniform) / {'bound (NCHW)':<16}: {report['ratio_suite_over_bound_nchw']:.3f}   "
          "(plain contiguous forward)")
    print(f"  suite (constant) / {same:<15}: {report['ratio_suite_constant_over_bound_same_layout']:.3f}")
    if "quantus" in med:
        print(f"  suite (uniform) / quantus         : {report['ratio_suite_over_quantus']:.2f}   (target >= 2)")
        print(f"  suite (constant) / quantus        : {report['ratio_suite_constant_over_quantus']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
