"""Speed of the batched ``partition`` explainer vs shap's own (``shap-partition``) and vs the compute floor.

For each configuration (backbone, image size): ``partition`` explains ``--images`` images in one call, in two
variants (``eager`` and ``compiled``: its ``compile`` option), ``shap-partition`` explains the first
``--shap-images`` of the same images (per-image seconds are compared), and each variant's *compute floor* is the
time of the same number of plain forward passes (images x max_evals, softmax included) at the same forward batch
size, layout and compilation. Medians over ``--repeats`` runs, all contenders interleaved in every repeat; the maps
of the shared images are checked for parity on the way. Models are randomly initialised (speed does not depend on
the weights); shap is warmed up (numba) outside the timer.

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
from methods.fast_forward import BatchForward, compile_model, prefers_channels_last


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


def floor_time(forward, size: int, n_forward: int, batch: int, device) -> float:
    """Seconds for ``n_forward`` plain forward passes (+ softmax) in batches of ``batch`` through ``forward`` (a
    :class:`methods.fast_forward.BatchForward`: the layout, and the compilation if any, that partition uses)."""
    xb = torch.randn(min(batch, n_forward), 3, size, size, device=device)
    t0 = time.perf_counter()
    with torch.no_grad():
        done = 0
        while done < n_forward:
            k = min(batch, n_forward - done)
            torch.softmax(forward(xb[:k]), dim=1)
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


VARIANTS = {"eager": False, "compiled": True}  # partition's ``compile`` option


def run_config(cfg: dict, args, device) -> dict:
    torch.manual_seed(0)
    model = create_backbone(cfg["backbone"], 10, cfg["size"], pretrained=False).to(device).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.images, 3, cfg["size"], cfg["size"], generator=g).to(device)
    target = (torch.arange(args.images) % 10).to(device)
    batch = args.batch_size or min(1024, max(32, 2_000_000 // x[0].numel()))  # 0: partition's CPU default
    variants = {v: c for v, c in VARIANTS.items() if v in args.variants}
    explainers = {v: create_explainer("partition", max_evals=args.max_evals, batch_size=batch, compile=c)
                  for v, c in variants.items()}
    compiled = compile_model(model) if variants.get("compiled") else None
    floors = {v: BatchForward(model, batch, prefers_channels_last(device), compiled if c else None)
              for v, c in variants.items()}
    n_forward = args.images * args.max_evals
    for v in variants:  # warm-up outside the timer: partition trees, compilation
        explainers[v].explain(model, x[:2], target[:2])
        floor_time(floors[v], cfg["size"], 2 * batch, batch, device)
    run_shap = cfg["shap"] and args.shap_images > 0
    ns = min(args.shap_images, args.images)
    ref = create_explainer("shap-partition", max_evals=args.max_evals)
    if run_shap:
        create_explainer("shap-partition", max_evals=50).explain(model, x[:1], target[:1])  # numba warm-up
    # the machine may be shared: interleave all measurements in every repeat so load changes hit all alike
    times: dict[str, list[float]] = {k: [] for v in variants for k in (v, f"floor {v}")}
    times["shap"] = []
    maps: dict[str, torch.Tensor] = {}
    for r in range(max(args.repeats, args.shap_repeats if run_shap else 0)):
        if r < args.repeats:
            for v in variants:
                t, maps[v] = timed(lambda: explainers[v].explain(model, x, target), 1)
                times[v] += t
                times[f"floor {v}"].append(floor_time(floors[v], cfg["size"], n_forward, batch, device))
        if run_shap and r < args.shap_repeats:
            t, maps["shap"] = timed(lambda: ref.explain(model, x[:ns], target[:ns]), 1)
            times["shap"] += t
    row = {"backbone": cfg["backbone"], "size": cfg["size"], "max_evals": args.max_evals, "images": args.images,
           "shap_images": ns if run_shap else 0, "forward_batch": batch, "seconds": times, "per_image": {}}
    for name, ts in times.items():
        if ts:
            row["per_image"][name] = statistics.median(ts) / (ns if name == "shap" else args.images)
    for v in variants:
        row[f"{v}_over_floor"] = row["per_image"][v] / row["per_image"][f"floor {v}"]
        if run_shap:
            row[f"{v}_speedup_vs_shap"] = row["per_image"]["shap"] / row["per_image"][v]
            row[f"{v}_parity"] = parity(maps["shap"].cpu(), maps[v][:ns].cpu())
    return row


def table(rows: list[dict]) -> str:
    head = ["backbone", "px", "evals", "imgs", "variant", "s/img", "floor s/img", "/floor", "shap s/img",
            "speedup vs shap", "parity (min r, max rel diff)"]
    lines = [head]
    for r in rows:
        for v in VARIANTS:
            if v not in r["per_image"]:
                continue
            shap = r["per_image"].get("shap")
            par = r.get(f"{v}_parity")
            lines.append([r["backbone"], str(r["size"]), str(r["max_evals"]), str(r["images"]), v,
                          f"{r['per_image'][v]:.4f}", f"{r['per_image'][f'floor {v}']:.4f}",
                          f"{r[f'{v}_over_floor']:.2f}", f"{shap:.4f}" if shap else "-",
                          f"{r[f'{v}_speedup_vs_shap']:.1f}x" if shap else "-",
                          f"{par['min_pearson']:.6f}, {par['max_rel_diff']:.1e}" if par else "-"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]

    def fmt(line: list[str]) -> str:
        return " | ".join(c.rjust(w) for c, w in zip(line, widths))

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
    p.add_argument("--batch-size", type=int, default=0,
                   help="forward batch size of partition and of the floor (default 0 = partition's CPU default, "
                        "~2M input values per batch: 651 images at 32 px, 72 at 96 px)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of partition and the floor (median)")
    p.add_argument("--shap-repeats", type=int, default=3, help="timed repeats of shap-partition (median)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                   help="partition variants to time (default: eager and compiled)")
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
