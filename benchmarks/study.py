"""The LeNet-5 / CIFAR-10 study: is it the explanations? A resumable list of runs, then the findings tables.

  python -m benchmarks.study --data PATH/cifar10.tar.gz --cache-dir ~/.cache/impactx-study       # run what is left
  python -m benchmarks.study --data ... --worker 1/2 &  python -m benchmarks.study --data ... --worker 2/2
  python -m benchmarks.study --list                   # the plan and what is finished
  python -m benchmarks.study --combine-only           # rebuild the findings tables from finished runs

Each *run* is one group (dataset, backbone, seed) of ``python -m benchmarks.run`` with its own settings and
output folder ``<out>/groups/<name>/`` (rows, tables, figures, resolved config, log). A run whose ``rows.csv``
exists without error rows and whose recorded settings match is finished and skipped, so the same command resumes
after an interruption, in this session or a later one (finished run folders are committed; the artifact cache under
``--cache-dir`` makes a run killed midway resume at its last finished stage). Workers (``--worker k/n``) take the
next pending run that no other worker holds and share the cache: artifacts are locked, so shared inputs (the
stage-1 model, teacher-map shards) are computed once, by whichever worker gets there first.

Two tables are combined from the finished runs:

- ``<out>/row/``: the row (``row-seed*``): every method on the same stage-1 model, Table 2, paired tests, explanation
  quality with the constant-map control, map fidelity and training budgets;
- ``<out>/factors.md`` / ``factors.csv``: the factor study (teacher explainer x stage-2 augmentation): IMPACTX
  against shuffled maps, λ = 0 and a baseline trained as long, per seed and paired.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from benchmarks.choices import Choice, choose, decoder_multiply_adds, to_text
from benchmarks.table_frames import mcnemar_p, to_markdown
from benchmarks.tables import write_all_tables
from core.artifacts import ArtifactStore

ROW_METHODS = ("baseline", "baseline-long", "impactx", "impactx-nolambda", "impactx-shuffled", "abn", "wae")
FACTOR_METHODS = ("baseline", "baseline-long", "impactx", "impactx-nolambda", "impactx-shuffled")
STAGE2_METHODS = ("baseline-long", "impactx", "impactx-nolambda", "impactx-shuffled", "wae")
DECODER_METHODS = ("impactx", "impactx-nolambda", "impactx-shuffled")

# Settings of every run: the small independent build's recipe where the paper is silent (Adam 1e-3, batch 128,
# stage 1 20 epochs, stage 2 15 epochs), LeNet-5 on 45k train / 5k validation images, 200 test images for MoRF.
COMMON = {"train.epochs": 20, "train.batch_size": 128, "train.lr": 1e-3, "train.val_fraction": 0.1,
          "train.augment": True, "explanation_images": 200, "teacher.batch_images": 1000}
STAGE2 = {"epochs": 15}
DECODERS = ("paper", "small", "tiny")  # methods.blocks.DECODER_PRESETS; the study's runs use "small"
ROW2000_METHODS = ("baseline", "baseline-long", "impactx", "impactx-nolambda", "impactx-shuffled", "wae")
TEACHERS = {
    # SHAP Partition as in the paper, but 500 evaluations (2000 cost ~1 h per seed on 2 CPU cores)
    "partition500": {"teacher.explainer": "partition", "teacher.options.max_evals": 500,
                     "teacher.options.compile": True},
    "partition2000": {"teacher.explainer": "partition", "teacher.options.max_evals": 2000,
                      "teacher.options.compile": True},
    # captum occlusion on an 8 x 8 grid of 4 x 4-pixel patches (the small build's teacher), 65 evaluations / image
    "occlusion": {"teacher.explainer": "occlusion", "teacher.options.window": 4, "teacher.options.stride": 4},
}


@dataclass(frozen=True)
class Run:
    name: str
    table: str  # "row" | "factors"
    seed: int
    teacher: str
    augment: bool  # stage-2 augmentation (crop + flip of images and maps)
    methods: tuple[str, ...]
    decoder: str = "small"  # FC -> 16 x 8 x 8, two [conv16, conv16, up] blocks: sized for 8 x 8-cell maps

    def settings(self) -> dict:
        out = {**COMMON, **TEACHERS[self.teacher], **({"extra": list(EXTRA)} if EXTRA else {})}
        for m in self.methods:
            if m in STAGE2_METHODS:
                out.update({f"method.{m}.{k}": v for k, v in {**STAGE2, "augment": self.augment}.items()})
            if m in DECODER_METHODS:
                out[f"method.{m}.decoder"] = self.decoder
        return out

    @property
    def variant(self) -> str:
        return (f"{self.teacher}, stage-2 aug {'on' if self.augment else 'off'}"
                + (f", decoder {self.decoder}" if self.decoder != "small" else ""))


def plan() -> list[Run]:
    """In order of importance: each seed of the row interleaved with the factor cells that explain it."""
    runs: list[Run] = []
    for seed in (0, 1, 2):
        runs.append(Run(f"row-seed{seed}", "row", seed, "partition500", True, ROW_METHODS))
        for teacher, augment in (("occlusion", False), ("partition500", False), ("occlusion", True)):
            runs.append(Run(f"factor-{teacher}-aug{'on' if augment else 'off'}-seed{seed}", "factors", seed,
                            teacher, augment, FACTOR_METHODS))
    # the paper's 2000-evaluation teacher maps at seed 0 (ABN uses no maps: its 500-evaluation cell stands)
    runs.append(Run("row2000-seed0", "factors", 0, "partition2000", True, ROW2000_METHODS))
    # the decoder, chosen on validation. Seeds 1 and 2 reuse the row's "small" cells (same stage-1 models); seed 0
    # gets its own "small" cell because its stage-1 model was retrained after the row (see docs/reproduce.md)
    for seed, decoder in ((0, "paper"), (0, "small"), (0, "tiny"), (1, "tiny"), (1, "paper")):
        runs.append(Run(f"decoder-{decoder}-seed{seed}", "decoders", seed, "partition500", True, ("impactx",),
                        decoder))
    return runs


EXTRA: list[str] = []  # --set from the command line


def run_args(run: Run, data: str, out: Path, cache_dir: str) -> list[str]:
    args = ["--methods", ",".join(run.methods), "--backbones", "lenet5", "--datasets", f"imagefolder:{data}",
            "--seeds", str(run.seed), "--profile", "quick", "--no-tune", "--no-progress", "--device", "cpu",
            "--out", str(out / "groups" / run.name), "--cache-dir", cache_dir]
    for key, value in run.settings().items():  # Python literals, as --set parses them
        if key == "extra":
            continue
        args += ["--set", f"{key}={value if isinstance(value, str) else repr(value)}"]
    for extra in EXTRA:
        args += ["--set", extra]
    return args


def is_finished(run: Run, out: Path) -> bool:
    folder = out / "groups" / run.name
    rows, stamp = folder / "rows.csv", folder / "study_run.json"
    if not rows.exists() or not stamp.exists():
        return False
    if json.loads(stamp.read_text()).get("settings") != json.loads(json.dumps(run.settings())):
        return False
    frame = pd.read_csv(rows, keep_default_na=False)
    done = set(frame.loc[frame["error"] == "", "method"])
    return set(run.methods) <= done


def execute(run: Run, data: str, out: Path, cache_dir: str, threads: int) -> int:
    folder = out / "groups" / run.name
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "benchmarks.run", *run_args(run, data, out, cache_dir)]
    start = time.time()
    with open(folder / "run.log", "a") as log:
        log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
        log.flush()
        code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if code == 0:
        portable_paths(folder, {str(Path(data).resolve()): "<data>", data: "<data>",
                                str(Path(cache_dir).resolve()): "<cache>", cache_dir: "<cache>",
                                str(Path.cwd().resolve()) + "/": "", sys.executable: "python"})
        cmd = ["python", *(a.replace(data, "<data>").replace(cache_dir, "<cache>") for a in cmd[1:])]
        (folder / "study_run.json").write_text(json.dumps(
            {"run": run.name, "settings": run.settings(), "seconds": time.time() - start,
             "command": " ".join(cmd)}, indent=1))
    return code


def portable_paths(folder: Path, replacements: dict[str, str]) -> None:
    """Rewrite this machine's absolute paths in a finished run's text records (configs, logs, tables, summaries) as
    placeholders (``<data>``, ``<cache>``, paths relative to the repository), so committed findings name no place
    outside the repository. Longest paths first; binary files (figures) are left alone."""
    ordered = sorted(((k, v) for k, v in replacements.items() if k), key=lambda kv: -len(kv[0]))
    for path in folder.rglob("*"):
        if not path.is_file() or path.suffix.lower() in (".png", ".pdf"):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        new = text
        for old, placeholder in ordered:
            new = new.replace(old, placeholder)
        if new != text:
            path.write_text(new)


# --------------------------------------------------------------------------------------------- combining
def finished_rows(runs: list[Run], out: Path, with_images: bool = True) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    rows, images = [], []
    for run in runs:
        folder = out / "groups" / run.name
        if not is_finished(run, out):
            continue
        frame = pd.read_csv(folder / "rows.csv", keep_default_na=False)
        frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
        rows.append(frame.assign(variant=run.variant, run=run.name))
        if with_images and (folder / "per_image.csv").exists():
            images.append(pd.read_csv(folder / "per_image.csv", keep_default_na=False, dtype={"correct": str})
                          .assign(run=run.name))
    if not rows:
        return pd.DataFrame(), None
    return pd.concat(rows, ignore_index=True), (pd.concat(images, ignore_index=True) if images else None)


def combine_row(runs: list[Run], out: Path) -> list[Path]:
    rows, images = finished_rows([r for r in runs if r.table == "row"], out)
    if rows.empty:
        return []
    folder = out / "row"
    folder.mkdir(parents=True, exist_ok=True)
    rows.drop(columns=["variant", "run"]).to_csv(folder / "rows.csv", index=False)
    if images is not None:
        images.drop(columns=["run"]).to_csv(folder / "per_image.csv", index=False)
    return write_all_tables(folder)


FACTOR_METRICS = ("accuracy", "val_accuracy", "map_fidelity", "map_grad_share", "aopc_vs_constant/own",
                  "budget/epochs")


def factor_table(rows: pd.DataFrame, images: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary per variant x method: mean ± std over seeds of the factor metrics; paired differences per variant:
    IMPACTX − each control, per seed and mean, and an exact McNemar test over the test images pooled over seeds
    when ``images`` (per-image correctness with a ``run`` column) is given)."""
    ok = rows[(rows["error"] == "") & rows["metric"].isin(FACTOR_METRICS)]
    summary = ok.groupby(["variant", "method", "metric"], sort=False)["value"].agg(["mean", "std", "count"])
    summary = summary.reset_index()
    summary["text"] = [f"{m:.2f}" if n <= 1 else f"{m:.2f} ± {s:.2f}" for m, s, n in
                       zip(summary["mean"], summary["std"].fillna(0), summary["count"])]
    summary.loc[summary["metric"].isin(["map_fidelity", "map_grad_share", "aopc_vs_constant/own"]), "text"] = [
        f"{m:.3f}" if n <= 1 else f"{m:.3f} ± {s:.3f}" for m, s, n in zip(
            *(summary.loc[summary["metric"].isin(["map_fidelity", "map_grad_share", "aopc_vs_constant/own"]), c]
              for c in ("mean", "std", "count")))]
    wide = summary.pivot_table(index=["variant", "method"], columns="metric", values="text", aggfunc="first",
                               sort=False).reset_index()
    wide.columns.name = None
    wide = wide.reindex(columns=["variant", "method", *[m for m in FACTOR_METRICS if m in wide.columns]]).fillna("")
    acc = ok[ok["metric"] == "accuracy"].pivot_table(index=["variant", "seed"], columns="method", values="value")
    diffs = []
    for variant, sub in acc.groupby(level=0, sort=False):
        for control in ("impactx-shuffled", "impactx-nolambda", "baseline-long", "baseline"):
            if "impactx" not in sub or control not in sub:
                continue
            d = (sub["impactx"] - sub[control]).dropna()
            record = {"variant": variant, "impactx minus": control, "seeds": len(d),
                      "per seed": ", ".join(f"{v:+.2f}" for v in d),
                      "mean": f"{d.mean():+.2f}", "std": f"{d.std():.2f}" if len(d) > 1 else ""}
            if images is not None:
                record.update(paired_images(rows, images, variant, control))
            diffs.append(record)
    return wide, pd.DataFrame(diffs)


def paired_images(rows: pd.DataFrame, images: pd.DataFrame, variant: str, control: str) -> dict[str, str]:
    """Test images IMPACTX gets right and the control wrong (+) and the reverse (−), pooled over the variant's seeds,
    and the exact two-sided McNemar p."""

    runs = set(rows.loc[rows["variant"] == variant, "run"])
    a, b = [], []
    for run in sorted(runs):
        cell = images[images["run"] == run]
        ours, theirs = (cell.loc[cell["method"] == m, "correct"] for m in ("impactx", control))
        if len(ours) and len(theirs):
            a.append(np.frombuffer(ours.iloc[0].encode(), np.uint8) == ord("1"))
            b.append(np.frombuffer(theirs.iloc[0].encode(), np.uint8) == ord("1"))
    if not a:
        return {}
    a, b = np.concatenate(a), np.concatenate(b)
    return {"images +/−": f"+{int((a & ~b).sum())} / −{int((~a & b).sum())}", "p (McNemar)": f"{mcnemar_p(a, b):.3f}"}


def combine_factors(runs: list[Run], out: Path) -> list[Path]:
    # the row's seeds are the (partition500, aug on) factor cell
    rows, images = finished_rows([r for r in runs if r.table != "decoders"], out)
    if rows.empty:
        return []
    rows = rows[rows["method"].isin(FACTOR_METHODS)]
    wide, diffs = factor_table(rows, images)
    wide.to_csv(out / "factors.csv", index=False)
    text = ("# Factor study: which setting lets the explanations help?\n\nLeNet-5, CIFAR-10 (45k train / 5k "
            "validation / 2k test), stage 1 20 epochs, stage 2 15 epochs, batch 128, Adam 1e-3, λ = 1, small decoder. "
            "Accuracy on the test slice (%), mean ± std over seeds; `val_accuracy` on validation; `map_fidelity` "
            "on validation teacher maps; `aopc_vs_constant/own` = AOPC of the own map minus that of the mean "
            "teacher map.\n\n" + to_markdown(wide) + "\n\n## IMPACTX minus each control (test accuracy, paired by "
            "seed)\n\n" + (to_markdown(diffs) if not diffs.empty else "(no finished pairs yet)") + "\n")
    (out / "factors.md").write_text(text)
    plot_factors(rows, out / "factors.png")
    return [out / "factors.csv", out / "factors.md", out / "factors.png"]


def impactx_cells(runs: list[Run], out: Path) -> pd.DataFrame:
    """IMPACTX's numbers per finished run: one row per run with seed, decoder, teacher, augmentation and the
    validation / test scores the choices read."""
    records = []
    rows, _ = finished_rows(runs, out, with_images=False)
    if rows.empty:
        return pd.DataFrame()
    by_name = {r.name: r for r in runs}
    cells = rows[(rows["method"] == "impactx") & (rows["error"] == "")]
    for name, sub in cells.groupby("run", sort=False):
        run, values = by_name[name], dict(zip(sub["metric"], sub["value"]))
        records.append({"run": name, "table": run.table, "seed": run.seed, "decoder": run.decoder,
                        "teacher": run.teacher, "augment": run.augment,
                        **{k: values.get(k) for k in ("val_accuracy", "map_fidelity", "accuracy")}})
    return pd.DataFrame(records)


def study_choices(runs: list[Run], out: Path) -> list[Choice]:
    """The open defaults decided on validation: IMPACTX's decoder (the decoder runs, plus the row's "small" cells
    of seeds whose decoder runs share their stage-1 model) and stage-2 augmentation (partition teacher, small
    decoder: the row against the partition500 aug-off factor runs)."""
    cells = impactx_cells(runs, out)
    if cells.empty:
        return []
    choices = []
    partition = cells[cells["teacher"] == "partition500"]
    decoder_runs = partition[partition["table"] == "decoders"]
    own_small = set(decoder_runs.loc[decoder_runs["decoder"] == "small", "seed"])
    row_small = partition[(partition["table"] == "row") & ~partition["seed"].isin(own_small)]
    decoders = pd.concat([decoder_runs, row_small], ignore_index=True)
    if decoders["decoder"].nunique() > 1:
        cost = {d: decoder_multiply_adds(d) / 1e6 for d in set(decoders["decoder"])}
        frame = decoders.assign(option=decoders["decoder"], cost=decoders["decoder"].map(cost))
        frame = frame[["option", "seed", "val_accuracy", "map_fidelity", "cost", "accuracy"]]
        choices.append(choose("method.impactx.decoder", frame, [d for d in DECODERS if d in set(frame["option"])],
                              "decoder M multiply-adds / image"))
    lengths = length_frame(runs, out)
    if not lengths.empty:
        choices.append(choose("method.<stage 2>.epochs", lengths, [str(n) for n in STAGE2_LENGTHS], "stage-2 epochs"))
    augment = partition[(partition["decoder"] == "small") & (partition["table"] != "decoders")]
    if augment["augment"].nunique() > 1:
        frame = augment.assign(option=["on" if a else "off" for a in augment["augment"]])
        frame = frame[["option", "seed", "val_accuracy", "map_fidelity", "accuracy"]]
        choices.append(choose("method.impactx.augment (stage 2)", frame, ["on", "off"]))
    return choices


STAGE2_LENGTHS = (15, 10, 5)  # the study's length first; shorter ones are the first epochs of the same runs


def length_frame(runs: list[Run], out: Path) -> pd.DataFrame:
    """Stage-2 length options read off IMPACTX's per-epoch validation curves (partition500, augmentation on, small
    decoder). The learning rate is constant, so the first E epochs of a 15-epoch run are an E-epoch run; an option's
    score is what best-on-validation selection over those E epochs keeps (accuracy and that epoch's map fidelity).
    A seed's own decoder run is preferred over the row's, as for the decoder choice."""
    records: dict[tuple[int, str], dict] = {}
    for run in sorted(runs, key=lambda r: r.table != "decoders"):  # decoder runs first: they win a seed
        if (run.teacher, run.augment, run.decoder) != ("partition500", True, "small") or "impactx" not in run.methods:
            continue
        folder = out / "groups" / run.name / "histories"
        if not is_finished(run, out) or not folder.is_dir():
            continue
        curves = pd.concat([pd.read_csv(p) for p in sorted(folder.glob("*.csv"))], ignore_index=True)
        curve = curves[(curves["method"] == "impactx") & (curves["stage"] == "stage2")].sort_values("epoch")
        for n in STAGE2_LENGTHS:
            first = curve[curve["epoch"] < n]
            if len(first) < n or (run.seed, str(n)) in records:
                continue
            best = first.loc[first["val_accuracy"].idxmax()]
            records[(run.seed, str(n))] = {"option": str(n), "seed": run.seed,
                                           "val_accuracy": 100.0 * best["val_accuracy"],
                                           "map_fidelity": best.get("map_fidelity"), "cost": float(n)}
    return pd.DataFrame(list(records.values()))


def combine_choices(runs: list[Run], out: Path) -> list[Path]:
    choices = study_choices(runs, out)
    if not choices:
        return []
    pd.concat([c.table for c in choices], ignore_index=True).to_csv(out / "choices.csv", index=False)
    parts = ["# Defaults chosen on validation\n\nIMPACTX on LeNet-5 / CIFAR-10, partition teacher maps at 500 "
             "evaluations, the study's settings. Only the seeds every option ran with count (same stage-1 models). "
             "The rule (fixed before these runs): highest mean validation accuracy; options within the noise of the "
             "best (mean seed std) tie and the highest validation map fidelity decides among them (same margin); "
             "a remaining tie goes to the cheapest option. Test accuracy is shown, not used.\n"]
    for c in choices:
        parts.append(f"\n## `{c.setting}` → **{c.chosen}**\n\n{to_markdown(to_text(c))}\n\nWhy: {c.reason}.\n")
    (out / "choices.md").write_text("".join(parts))
    return [out / "choices.csv", out / "choices.md"]


def plot_factors(rows: pd.DataFrame, path: Path) -> None:
    """Test accuracy of every method in every variant, one dot per seed (mean as a bar), and validation map fidelity:
    the factor study at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = rows[rows["error"] == ""]
    variants = list(dict.fromkeys(ok["variant"]))
    methods = [m for m in FACTOR_METHODS if m in set(ok["method"])]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / max(1, len(variants))
    for panel, metric, label in ((axes[0], "accuracy", "test accuracy (%)"),
                                 (axes[1], "map_fidelity", "map fidelity, validation (↑; 0 = class-mean map)")):
        shown = [m for m in methods if ((ok["method"] == m) & (ok["metric"] == metric)).any()]
        for i, variant in enumerate(variants):
            for j, method in enumerate(shown):
                values = ok[(ok["variant"] == variant) & (ok["method"] == method) & (ok["metric"] == metric)]["value"]
                if values.empty:
                    continue
                x = j + (i - (len(variants) - 1) / 2) * width
                panel.bar(x, values.mean(), width * 0.9, color=f"C{i}", alpha=0.35,
                          label=variant if j == 0 else None)
                panel.plot([x] * len(values), values, "o", color=f"C{i}", ms=4)
        panel.set_xticks(range(len(shown)), shown, rotation=20, ha="right")
        panel.set_ylabel(label)
        if metric == "accuracy" and not ok[ok["metric"] == "accuracy"].empty:
            acc = ok[ok["metric"] == "accuracy"]["value"]
            panel.set_ylim(acc.min() - 2, acc.max() + 1)
        else:
            panel.axhline(0, color="grey", lw=0.8, ls="--")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle("LeNet-5 / CIFAR-10: IMPACTX against its controls (bars: mean, dots: seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="CIFAR-10 as an image folder or its .tar.gz (train/<class>, test/<class>)")
    parser.add_argument("--out", default="results/findings", help="findings folder (default: results/findings)")
    parser.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/impactx-study"),
                        help="artifact cache shared by the runs (default: ~/.cache/impactx-study)")
    parser.add_argument("--only", default="*", help="glob over run names, e.g. 'row-*' or '*seed0'")
    parser.add_argument("--worker", default="1/1",
                        help="k/n: this is worker k of n sharing --cache-dir; each takes the next pending run that no "
                             "other worker holds (sets the default --threads to cores / n)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per run (default: cores / n)")
    parser.add_argument("--list", action="store_true", help="print the plan and what is finished, then exit")
    parser.add_argument("--combine-only", action="store_true", help="only rebuild the findings tables")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra benchmarks.run setting for every run (e.g. limit_train=500 to try the driver); "
                             "recorded with each run")
    args = parser.parse_args(argv)
    import fnmatch

    out = Path(args.out)
    EXTRA[:] = args.set
    runs = [r for r in plan() if fnmatch.fnmatchcase(r.name, args.only)]
    try:
        k, n = (int(v) for v in args.worker.split("/"))
        assert 1 <= k <= n
    except (ValueError, AssertionError):
        print(f"error: --worker must be k/n with 1 <= k <= n, got {args.worker!r}", file=sys.stderr)
        return 2
    if args.list:
        for r in runs:
            print(f"{'done' if is_finished(r, out) else 'todo'}  {r.name:40s} {r.variant:35s} {','.join(r.methods)}")
        return 0
    if not args.combine_only:
        if not args.data or not Path(args.data).exists():
            print("error: --data must name CIFAR-10 as an image folder or .tar.gz (train/<class>/*, "
                  f"test/<class>/*); got {args.data!r}", file=sys.stderr)
            return 2

        threads = args.threads or max(1, (os.cpu_count() or 1) // n)
        store = ArtifactStore(args.cache_dir)
        tried: set[str] = set()
        while True:  # the first pending run that no other worker holds, in the plan's order of importance
            pending = [r for r in runs if not is_finished(r, out) and r.name not in tried]
            print(f"[study] {time.strftime('%H:%M:%S')} {len(runs) - len(pending)} of {len(runs)} runs finished "
                  f"or tried; left: {', '.join(r.name for r in pending) or 'nothing'}", flush=True)
            ran = False
            for r in pending:
                with store.lock(f"study-{out.resolve().as_posix()}-{r.name}", blocking=False) as mine:
                    if not mine or is_finished(r, out):
                        continue
                    t0 = time.time()
                    print(f"[study] {time.strftime('%H:%M:%S')} worker {k}/{n} starts {r.name} ({r.variant})",
                          flush=True)
                    code = execute(r, args.data, out, args.cache_dir, threads)
                    tried.add(r.name)
                    print(f"[study] {time.strftime('%H:%M:%S')} {r.name} exit {code} after {time.time() - t0:.0f} s",
                          flush=True)
                    combine_row(plan(), out)
                    combine_factors(plan(), out)
                    combine_choices(plan(), out)
                    ran = True
                    break
            if not ran:
                break
    written = combine_row(plan(), out) + combine_factors(plan(), out) + combine_choices(plan(), out)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
