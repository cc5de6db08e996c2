"""Run the benchmark grid: methods x backbones x datasets x seeds -> tidy rows, Table 2, explanation tables.

Installed as the command `impactx-bench` (the same as `python -m benchmarks.run`).

Examples:
  impactx-bench --all --profile smoke                            # every method, embedded data, minutes on CPU
  impactx-bench --profile paper --device cuda --download --data-root /data
  impactx-bench --profile paper --dry-run                        # the plan, what is cached, an estimated time
  impactx-bench --methods 'impactx*,baseline' --datasets cifar10 --seeds 0,1,2 --set train.epochs=50
  impactx-bench --config run.toml --set train.lr=5e-4            # settings from a file, flags override it
  impactx-bench --config results/runs/smoke/resolved.toml --out rerun   # rerun a run from its resolved settings
  impactx-bench --plugin my_pkg.my_method --methods my-method,baseline
  impactx-bench --list                                           # registered methods, backbones, datasets

A finished cell is stored under a content key in the cache directory: re-running the same command after an
interruption recomputes nothing finished; changing one setting recomputes only what depends on it.
Exit codes: 0 all cells ran; 1 some cells failed (error rows, summary at the end); 2 bad input (nothing ran);
130 interrupted (Ctrl-C).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.config import ConfigError, RunConfig, apply_settings
from benchmarks.profiles import PROFILES
from benchmarks.config_file import RUN_KEYS, load_config_file, names, write_resolved
from benchmarks.dry_run import dry_run as plan_only
from benchmarks.environment import environment, resolve_device
from benchmarks.executors import EXECUTORS
from benchmarks.grid import plan
from benchmarks.logs import run_log, say, setup_console
from benchmarks.plugins import load_installed_plugins
from benchmarks.preflight import preflight
from benchmarks.results import write_rows
from benchmarks.run_folder import claim_run_folder, clear_outputs
from benchmarks.summary import write_summaries
from benchmarks.tables import write_all_tables
from core import progress
from datasets.base import DatasetUnavailable
from datasets.registry import dataset_spec, list_datasets
from methods.backbones import PretrainedWeightsUnavailable, backbone_spec, list_backbones
from methods.explainers import list_explainers
from methods.registry import UnknownNameError, get_method_class, list_methods, load_plugin

USER_ERRORS: tuple[type[BaseException], ...] = ()


def package_version() -> str:
    """The installed distribution's version, else the checkout's ``pyproject.toml``'s."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("impactx-bench")
    except PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text())["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def build_parser() -> argparse.ArgumentParser:
    prog = "impactx-bench" if Path(sys.argv[0]).name == "impactx-bench" else "python -m benchmarks.run"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"impactx-bench {package_version()}")
    parser.add_argument("--config", metavar="FILE.toml",
                        help="settings file: the keys of --set and the run keys (profile, methods, seeds, ...), flat "
                             "or as TOML tables; flags override it. Every run writes its own as <out>/resolved.toml")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the planned groups and cells, what is cached, the work left and an estimated "
                             "wall time from a short calibration on this device; write nothing, exit 0")
    parser.add_argument("--all", action="store_true",
                        help="every registered method (ablations and plugins included) on the profile's grid")
    parser.add_argument("--profile", choices=sorted(PROFILES),
                        help="preset grid and settings (default: smoke = embedded data, minutes on CPU)")
    parser.add_argument("--methods", help="comma list / globs of method names, e.g. 'baseline,impactx*'")
    parser.add_argument("--backbones", help="comma list / globs: lenet5, mobilenet, efficientnet_b2, tiny, "
                                            "timm:<any timm model>")
    parser.add_argument("--datasets", help="comma list / globs: cifar10, cifar100, stl10, digits, synthetic, "
                                           "imagefolder:<path>")
    parser.add_argument("--seeds", help="comma list of integer seeds, e.g. 0,1,2")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 or auto (default: cuda if available)")
    parser.add_argument("--out", help="output folder (default: results/runs/<profile>)")
    parser.add_argument("--cache-dir", help="artifact cache (models, maps, finished cells); default <out>/artifacts")
    parser.add_argument("--data-root", help="where torchvision datasets live (default: ./data)")
    parser.add_argument("--download", action="store_true", help="download missing torchvision datasets")
    parser.add_argument("--no-pretrained", action="store_true",
                        help="train timm backbones from scratch (no pretrained weights needed)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. train.epochs=20, method.impactx.lam=0.4, "
                             "teacher.options.max_evals=500 (repeatable; unknown keys are rejected)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import a module that registers extra methods (repeatable); installed packages that "
                             "declare the entry-point group 'impactx_bench.plugins' are loaded without it")
    parser.add_argument("--executor", choices=["local", "ray"],
                        help="run groups in-process (default) or as Ray tasks")
    parser.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    parser.add_argument("--no-explain-eval", action="store_true", help="skip MoRF / ground-truth evaluation")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars or progress lines on the console (the logs still get them)")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("--verbose", "-v", action="store_true",
                           help="DEBUG messages on the console and in run.log (cell logs always have them)")
    verbosity.add_argument("--quiet", "-q", action="store_true",
                           help="errors only, then the final summary (no bars, no progress lines)")
    parser.add_argument("--no-tune", action="store_true",
                        help="skip the profile's grid searches (stage-1 hyper-parameters, IMPACTX lambda)")
    parser.add_argument("--list", action="store_true", help="list registered methods, backbones, datasets, "
                                                            "explainers and exit")
    return parser


def _split(text: str | None) -> tuple[str, ...] | None:
    return tuple(p.strip() for p in text.split(",") if p.strip()) if text else None


EXAMPLES = {"methods": "baseline,impactx", "backbones": "lenet5", "datasets": "digits"}


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Preset of the profile < the ``--config`` file < flags (``--set`` last)."""

    run_keys, file_settings = load_config_file(args.config) if args.config else ({}, [])
    load_installed_plugins()
    plugins = tuple(dict.fromkeys([*(names(run_keys.get("plugins")) or ()), *args.plugin]))
    for plugin in plugins:
        load_plugin(plugin)
    profile = args.profile or run_keys.get("profile") or "smoke"
    if profile not in PROFILES:
        raise ConfigError(f"--config {args.config}: unknown profile {profile!r}; valid: {', '.join(PROFILES)}")
    preset = PROFILES[profile]()
    fields: dict[str, Any] = {**preset, "profile": profile}
    for name in ("methods", "backbones", "datasets"):
        if name in run_keys:
            if not names(run_keys[name]):
                raise ConfigError(f"--config {args.config}: {name} names nothing; give a list such as "
                                  f"[{', '.join(repr(n) for n in EXAMPLES[name].split(','))}]")
            fields[name] = names(run_keys[name])
    if args.all:
        fields["methods"] = ("*",)
    for name in ("methods", "backbones", "datasets"):
        text = getattr(args, name)
        if text is not None:
            if not _split(text):
                raise ConfigError(f"--{name} {text!r} names nothing; give a comma list such as {EXAMPLES[name]} "
                                  "(--list shows the valid names)")
            fields[name] = _split(text)
    seeds = args.seeds if args.seeds is not None else run_keys.get("seeds")
    if seeds is not None:
        try:
            fields["seeds"] = tuple(int(s) for s in (names(seeds) or ()))
        except ValueError as err:
            raise ConfigError(f"--seeds expects integers like 0,1,2, got {seeds!r}") from err

    def pick(flag: Any, key: str, default: Any) -> Any:
        return flag if flag is not None else run_keys.get(key, default)

    fields.update(device=pick(args.device, "device", "auto"), out=pick(args.out, "out", f"results/runs/{profile}"),
                  cache_dir=pick(args.cache_dir, "cache_dir", None),
                  data_root=pick(args.data_root, "data_root", "data"),
                  download=args.download or bool(run_keys.get("download", False)),
                  executor=pick(args.executor, "executor", "local"), address=pick(args.address, "address", None),
                  plugins=plugins, progress=not args.no_progress)
    if fields["executor"] not in ("local", "ray"):
        raise ConfigError(f"--config {args.config}: executor must be 'local' or 'ray', got {fields['executor']!r}")
    if args.no_pretrained:
        fields["pretrained"] = False
    elif run_keys.get("pretrained") is not None:
        fields["pretrained"] = run_keys["pretrained"]
    if args.no_tune or run_keys.get("no_tune"):
        fields.update(stage1_grid={}, method_grid={})
    cfg = RunConfig(**fields)
    if file_settings:
        try:
            cfg = apply_settings(cfg, file_settings)
        except ConfigError as err:
            import re


            text = re.sub(r"--set:? ", "", str(err))
            if "unknown key" in text:
                text += "; or a run key: " + ", ".join(RUN_KEYS)
            raise ConfigError(f"--config {args.config}: {text}") from err
    if args.no_explain_eval:
        cfg = dataclasses.replace(cfg, explain_eval=False)
    return apply_settings(cfg, args.set)


def summary_line(obj: object) -> str:
    """The first line of an object's docstring ('' when it has none)."""
    lines = (getattr(obj, "__doc__", None) or "").strip().splitlines()
    return lines[0] if lines else ""


def list_everything() -> str:
    lines = ["methods:"]
    lines += [f"  {m:<18} {summary_line(get_method_class(m))}" for m in list_methods()]
    lines += ["backbones:"] + [f"  {b:<18} {backbone_spec(b).description}" for b in list_backbones()]
    lines += ["  timm:<name>        any other timm model"]
    lines += ["datasets:"] + [f"  {d:<18} {dataset_spec(d).description}" for d in list_datasets()]
    lines += ["explainers:", "  " + ", ".join(list_explainers())]
    lines += ["profiles:"] + [f"  {p:<18} {summary_line(f)}" for p, f in PROFILES.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_console("quiet" if args.quiet else "verbose" if args.verbose else "normal")
    # bars on a terminal; plain timestamped lines otherwise (decided in core.progress)
    quiet_progress = args.quiet or args.no_progress
    progress.configure(bars=False if quiet_progress else None, console_lines=not quiet_progress)
    try:
        if args.list:

            load_installed_plugins()
            for plugin in args.plugin:
                load_plugin(plugin)
            print(list_everything())
            return 0
        return run(config_from_args(args), verbose=args.verbose, dry_run=args.dry_run)
    except user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished stages are kept in the cache; run the same command again to resume",
              file=sys.stderr)
        return 130


def user_errors() -> tuple[type[BaseException], ...]:
    return (ConfigError, UnknownNameError, DatasetUnavailable, PretrainedWeightsUnavailable, ImportError)


def run(cfg: RunConfig, verbose: bool = False, dry_run: bool = False) -> int:
    """Run the grid of ``cfg`` into ``cfg.out`` (or, with ``dry_run``, print its plan and estimated cost)."""

    try:
        device = resolve_device(cfg.device)
    except RuntimeError as err:
        raise ConfigError(str(err)) from err
    groups = plan(cfg)
    preflight(cfg, groups, device)
    if dry_run:

        print(plan_only(cfg, groups, device))
        return 0
    out = Path(cfg.out)
    folder_lock = claim_run_folder(out)  # a second run into the same --out stops here (exit 2)
    try:
        clear_outputs(out)
        write_resolved(out, cfg, list(groups[0].methods) if groups else [],
                       list(dict.fromkeys(g.backbone for g in groups)), list(dict.fromkeys(g.dataset for g in groups)),
                       str(device))
        with run_log(out, verbose):
            return _run_groups(cfg, groups, device, out)
    finally:
        folder_lock.close()


def _run_groups(cfg: RunConfig, groups: list, device: Any, out: Path) -> int:
    log = logging.getLogger("benchmarks.run")
    env = environment(device)
    manifest: dict[str, Any] = {"config": cfg.to_dict(), "environment": env, "started": time.strftime("%FT%T%z"),
                                "groups": [dataclasses.asdict(g) for g in groups]}
    (out / "config.json").write_text(json.dumps(manifest, indent=2, default=str))
    all_rows: list[dict[str, Any]] = []
    n_cells = sum(len(g.methods) for g in groups)
    log.info("run into %s: %d group(s), %d cell(s) on %s (git %s)", out, len(groups), n_cells,
             env.get("device_name", device), env.get("git_sha"))
    bar = progress.progress(n_cells, "grid", cfg.progress, unit="cell", level=0, interval=0.0)

    def on_rows(group, rows) -> None:
        for row in rows:
            row.update(profile=cfg.profile, git_sha=env["git_sha"], device=env["device_name"])
        all_rows.extend(rows)
        write_rows(all_rows, out)
        failed = {r["method"] for r in rows if r.get("error")}
        bar.set_postfix_str(f"finished {group.dataset}/{group.backbone}/seed{group.seed}" +
                            (f" FAILED: {','.join(sorted(failed))}" if failed else ""))
        bar.update(len(group.methods))

    # cells write their logs and figures under the run folder: an absolute path holds in any worker's cwd (Ray)
    EXECUTORS[cfg.executor](dataclasses.replace(cfg, out=str(out.resolve())), groups, device, on_rows)
    bar.close()
    write_rows(all_rows, out)
    tables = write_all_tables(out)
    failures = sorted({(r["method"], r["backbone"], r["dataset"], r["seed"], r["error"])
                       for r in all_rows if r.get("error") and r.get("metric") != "figure_error"})
    figure_errors = sorted({(r["method"], r["dataset"], r["seed"], r["error"])
                            for r in all_rows if r.get("error") and r.get("metric") == "figure_error"})
    manifest.update(finished=time.strftime("%FT%T%z"), failed_cells=[list(f) for f in failures])
    (out / "config.json").write_text(json.dumps(manifest, indent=2, default=str))
    summaries = write_summaries(out)  # results.json, report.html (after config.json: they quote it)
    say(f"\n{len(all_rows)} rows -> {out / 'rows.csv'}")
    for path in tables:
        say(f"table -> {path}")
    for path in summaries:
        say(f"summary -> {path}")
    say(f"log -> {out / 'run.log'} (one per cell under {out / 'logs'})")
    if (out / "table2.md").exists():
        say("\n" + (out / "table2.md").read_text())
    if figure_errors:  # the cells' results stand; only a picture is missing
        say(f"\nwarning: {len(figure_errors)} figure(s) could not be drawn (figure_error rows):", err=True)
        for method, dataset, seed, error in figure_errors:
            say(f"  {method} / {dataset} / seed {seed}: {error}", err=True)
    if failures:
        say(f"\n{len(failures)} cell(s) failed (the full tracebacks are in the cell logs):", err=True)
        for method, backbone, dataset, seed, error in failures:
            say(f"  {method} / {backbone} / {dataset} / seed {seed}: {error}", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
