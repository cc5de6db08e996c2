"""Speed of the batched ``partition`` explainer vs shap's own (``shap-partition``) and vs the compute floor.

For each configuration (backbone, image size): ``partition`` explains ``--images`` images in one call,
``shap-partition`` explains the first ``--shap-images`` of the same images (per-image seconds are compared), and
the *compute floor* is the time of the same number of plain forward passes (images x max_evals, softmax included)
at the same forward batch size. Medians over ``--repeats`` runs; the maps of the shared images are checked for
parity on the way.
Models are randomly initialised (speed does not depend on the weights).

    python -m benchmarks.bench_partition --json runs/bench_partition.json
    python -m benchmarks.bench_partition --images 100 --shap-images 10 --configs lenet5:32 lenet5:96 mobilenet:32:noshap
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from methods.backbones import create_backbone
from methods.explainers import create_explainer


def parse_config(text: str) -> dict:
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "noshap"):
        raise argparse.ArgumentTypeError(f"config must be BACKBONE:SIZE[:noshap], got {text!r}")
    return {"backbone": parts[0], "size": int(parts[1]), "shap": len(parts) == 2}


def timed(fn, repeats: int) -> tuple[list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times, out


def floor_time(model, size: int, n_forward: int, batch: int, device) -> float:
    """Seconds for ``n_forward`` plain forward passes (+ softmax) in batches of ``batch``."""
    xb = torch.randn(min(batch, n_forward), 3, size, size, device=device)
    t0 = time.perf_counter()
    with torch.no_grad():
        done = 0
        while done < n_forward:
            k = min(batch, n_forward - done)
            torch.softmax(model(xb[:k]), dim=1)
            done += k
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def parity(ref: torch.Tensor, new: torch.Tensor) -> dict:
    pearson, rel = [], []
    for r, n in zip(ref.double().flatten(1), new.double().flatten(1)):
        pearson.append(float(np.corrcoef(r.cpu().numpy(), n.cpu().numpy())[0, 1]))
        rel.append(float((r - n).abs().max() / r.abs().max()))
    return {"min_pearson": min(pearson), "max_rel_diff": max(rel)}


def run_config(cfg: dict, args, device) -> dict:
    torch.manual_seed(0)
    model = create_backbone(cfg["backbone"], 10, cfg["size"], pretrained=False).to(device).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.images, 3, cfg["size"], cfg["size"], generator=g).to(device)
    target = (torch.arange(args.images) % 10).to(device)
    batch = args.batch_size or min(1024, max(32, 2_000_000 // x[0].numel()))  # 0: partition's CPU default
    part = create_explainer("partition", max_evals=args.max_evals, batch_size=batch)
    part.explain(model, x[:2], target[:2])  # warm-up: builds the partition tree once per shape
    n_forward = args.images * args.max_evals
    run_shap = cfg["shap"] and args.shap_images > 0
    ns = min(args.shap_images, args.images)
    ref = create_explainer("shap-partition", max_evals=args.max_evals)
    if run_shap:
        create_explainer("shap-partition", max_evals=50).explain(model, x[:1], target[:1])  # numba warm-up
    # the machine may be shared: interleave the three measurements in every repeat so load changes hit all alike
    p_times, f_times, s_times, p_maps, s_maps = [], [], [], None, None
    for r in range(max(args.repeats, args.shap_repeats if run_shap else 0)):
        if r < args.repeats:
            t, p_maps = timed(lambda: part.explain(model, x, target), 1)
            p_times += t
            f_times.append(floor_time(model, cfg["size"], n_forward, batch, device))
        if run_shap and r < args.shap_repeats:
            t, s_maps = timed(lambda: ref.explain(model, x[:ns], target[:ns]), 1)
            s_times += t
    row = {"backbone": cfg["backbone"], "size": cfg["size"], "max_evals": args.max_evals, "images": args.images,
           "forward_batch": batch, "partition_s": p_times, "floor_s": f_times,
           "partition_s_per_image": statistics.median(p_times) / args.images,
           "floor_s_per_image": statistics.median(f_times) / args.images}
    row["partition_over_floor"] = row["partition_s_per_image"] / row["floor_s_per_image"]
    if run_shap:
        row.update({"shap_images": ns, "shap_s": s_times,
                    "shap_s_per_image": statistics.median(s_times) / ns,
                    "parity": parity(s_maps.cpu(), p_maps[:ns].cpu())})
        row["speedup_vs_shap"] = row["shap_s_per_image"] / row["partition_s_per_image"]
    return row


def table(rows: list[dict]) -> str:
    head = ["backbone", "px", "evals", "imgs", "partition s/img", "floor s/img", "part/floor", "shap imgs",
            "shap s/img", "speedup", "parity (min r, max rel diff)"]
    lines = [head]
    for r in rows:
        lines.append([r["backbone"], str(r["size"]), str(r["max_evals"]), str(r["images"]),
                      f"{r['partition_s_per_image']:.4f}", f"{r['floor_s_per_image']:.4f}",
                      f"{r['partition_over_floor']:.2f}", str(r.get("shap_images", "-")),
                      f"{r['shap_s_per_image']:.4f}" if "shap_s_per_image" in r else "-",
                      f"{r['speedup_vs_shap']:.1f}x" if "speedup_vs_shap" in r else "-",
                      (f"{r['parity']['min_pearson']:.6f}, {r['parity']['max_rel_diff']:.1e}"
                       if "parity" in r else "-")])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    fmt = lambda line: " | ".join(c.rjust(w) for c, w in zip(line, widths))  # noqa: E731
    return "\n".join([fmt(lines[0]), "-+-".join("-" * w for w in widths)] + [fmt(line) for line in lines[1:]])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_partition", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", type=parse_config,
                   default=[parse_config(c) for c in ("lenet5:32", "lenet5:96", "mobilenet:32:noshap")],
                   help="BACKBONE:SIZE[:noshap] (default: lenet5:32 lenet5:96 mobilenet:32:noshap)")
    p.add_argument("--images", type=int, default=500, help="images explained by partition per call (default 500)")
    p.add_argument("--shap-images", type=int, default=10, help="images explained by shap-partition (default 10)")
    p.add_argument("--max-evals", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=500,
                   help="forward batch size of partition and of the floor (default 500; 0 = partition's CPU default, "
                        "~2M input values per batch)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of partition and the floor (median)")
    p.add_argument("--shap-repeats", type=int, default=3, help="timed repeats of shap-partition (median)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", default="runs/bench_partition.json", help="where to write the results")
    args = p.parse_args(argv)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    rows = []
    for cfg in args.configs:
        print(f"running {cfg['backbone']} {cfg['size']}px ...", file=sys.stderr, flush=True)
        rows.append(run_config(cfg, args, device))
        print(table(rows[-1:]), file=sys.stderr, flush=True)
    out = {"device": str(device), "cpu_threads": torch.get_num_threads(), "platform": platform.platform(),
           "torch": torch.__version__, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "args": {k: v for k, v in vars(args).items() if k != "configs"}, "rows": rows}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1))
    print(table(rows))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
