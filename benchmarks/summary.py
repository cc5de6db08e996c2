"""``results.json``: one machine-readable summary of a run, from which its tables can be regenerated.

Written by every run and by ``python -m benchmarks.tables RUN_DIR`` from the run folder's ``rows.csv``,
``per_image.csv`` and ``config.json``. Keys:

* ``schema``: ``"impactx-bench/results/1"``; ``config``, ``environment``, ``started``, ``finished``: as in
  ``config.json`` (the resolved config, git SHA, package versions, hardware);
* ``table2``: one record per (dataset, backbone, method): ``mean``, ``std``, ``n`` (seeds), ``paper`` (the paper's
  number or null), ``delta_vs_paper``, ``p_seeds`` (paired t-test vs the baseline), ``p_images`` (exact McNemar),
  ``budget_epochs``, ``budget_images`` — the records of ``table2_long.csv``;
* ``explanations``: one record per (dataset, backbone, method, metric) with ``direction`` (higher / lower),
  ``mean``, ``std``, ``n``; ``explanation_images``: test images scored per cell;
* ``timings``: per (dataset, backbone, method) the median seconds of ``fit`` and of each stage (``timings.csv``);
* ``map_fidelity``: per (dataset, backbone, method, metric) mean, std, n of the map-fidelity rows (empty when no
  method has a decoder);
* ``cells``: every cell with its ``error`` ('' when it ran) and its ``log`` file.

Missing numbers are ``null``. :func:`tables_from_results` rebuilds Table 2 and the explanation table from it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from core.artifacts import atomic_write_bytes
from benchmarks.logs import cell_log_name
from benchmarks.report import write_report
from benchmarks.results import RESULTS_FILE, read_per_image, read_rows
from benchmarks.table_frames import (FIDELITY_COLUMNS, explanation_image_counts, explanations_long, explanations_wide,
                                     table2_long, table2_wide, timings_wide)

SCHEMA = "impactx-bench/results/1"
TABLE2_NUMBERS = ("mean", "std", "paper", "delta_vs_paper", "p_seeds", "p_images", "budget_epochs", "budget_images")


def _plain(value: Any) -> Any:
    """JSON-safe: NaN / inf -> None, NumPy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [] if frame is None or frame.empty else _plain(frame.to_dict(orient="records"))


def build_results(out: str | Path) -> dict[str, Any]:
    """The summary of the run in ``out`` (needs ``rows.csv``; ``config.json`` when present)."""

    out = Path(out)
    rows = read_rows(out)
    manifest = json.loads((out / "config.json").read_text()) if (out / "config.json").exists() else {}
    fidelity = rows[(rows["error"] == "") & rows["metric"].isin(FIDELITY_COLUMNS)]
    if fidelity["metric"].eq("map_fidelity").any():
        stats = fidelity.groupby(["dataset", "backbone", "method", "metric"], sort=False)["value"]
        fidelity = stats.agg(mean="mean", std="std", n="count").reset_index()
    else:
        fidelity = pd.DataFrame()
    acc = rows[rows["metric"] == "accuracy"]
    cells = [{"method": r.method, "backbone": r.backbone, "dataset": r.dataset, "seed": int(r.seed),
              "error": r.error, "log": cell_log_name(r.dataset, r.backbone, int(r.seed), r.method)}
             for r in acc.itertuples()]
    return _plain({
        "schema": SCHEMA,
        "config": manifest.get("config"), "environment": manifest.get("environment"),
        "started": manifest.get("started"), "finished": manifest.get("finished"),
        "table2": _records(table2_long(rows, read_per_image(out))),
        "explanations": _records(explanations_long(rows)),
        "explanation_images": _records(explanation_image_counts(rows)),
        "timings": _records(timings_wide(rows)),
        "map_fidelity": _records(fidelity),
        "cells": cells,
    })


def write_results(out: str | Path) -> Path:
    path = Path(out) / RESULTS_FILE
    atomic_write_bytes(path, (json.dumps(build_results(out), indent=1, ensure_ascii=False) + "\n").encode())
    return path


def table2_frame(results: dict[str, Any]) -> pd.DataFrame:
    """``table2_long`` as a frame again (nulls as NaN)."""
    frame = pd.DataFrame(results.get("table2") or [])
    for column in TABLE2_NUMBERS:
        if column in frame:
            frame[column] = frame[column].astype(float)
    return frame


def tables_from_results(results: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Table 2 (the paper's layout), the explanation table and the timings, rebuilt from ``results.json``: the
    same frames ``table2.csv``, ``explanations.csv`` and ``timings.csv`` hold."""

    tables: dict[str, pd.DataFrame] = {}
    long = table2_frame(results)
    if not long.empty:
        tables["table2"] = table2_wide(long)
    explanations = pd.DataFrame(results.get("explanations") or [])
    if not explanations.empty:
        explanations[["mean", "std"]] = explanations[["mean", "std"]].astype(float)
        images = pd.DataFrame(results.get("explanation_images") or [])
        tables["explanations"] = explanations_wide(explanations, images=images)
    if results.get("timings"):
        tables["timings"] = pd.DataFrame(results["timings"])
    return tables


def write_summaries(out: str | Path) -> list[Path]:
    """``results.json`` and ``report.html`` of the run in ``out`` (after its tables are written). A report that
    cannot be drawn never costs the results: its failure is logged."""
    import importlib.util
    import logging

    written = [write_results(out)]
    if importlib.util.find_spec("benchmarks.report") is None:
        return written
    try:

        written.append(write_report(out))
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).warning("could not write report.html", exc_info=True)
    return written
