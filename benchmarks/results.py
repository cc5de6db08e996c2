"""Tidy result files: ``rows.csv`` (one row per method, backbone, dataset, seed, metric) and ``per_image.csv``
(per-test-image correctness of each cell, for paired tests over images)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from core.artifacts import atomic_write_bytes

ROW_COLUMNS = ["method", "backbone", "dataset", "seed", "metric", "value", "direction", "error", "profile",
               "git_sha", "device"]
ID = ["method", "backbone", "dataset", "seed"]
RESULTS_FILE = "results.json"  # the run's summary (benchmarks.summary writes it)


def write_rows(rows: list[dict[str, Any]], out: str | Path) -> None:
    out = Path(out)
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=ROW_COLUMNS)
    per_image = frame.pop("per_image") if "per_image" in frame else None
    frame = frame.reindex(columns=ROW_COLUMNS + [c for c in frame.columns if c not in ROW_COLUMNS])
    frame["error"] = frame["error"].fillna("")
    atomic_write_bytes(out / "rows.csv", frame.to_csv(index=False).encode())
    keep = per_image.notna() if per_image is not None else None
    if keep is not None and keep.any():
        images = frame.loc[keep, ID].assign(correct=per_image[keep])
        atomic_write_bytes(out / "per_image.csv", images.to_csv(index=False).encode())
    else:  # no cell of this run has per-image results: an older file must not pass as this run's
        (out / "per_image.csv").unlink(missing_ok=True)


def read_rows(out: str | Path) -> pd.DataFrame:
    path = Path(out) / "rows.csv" if Path(out).is_dir() else Path(out)
    frame = pd.read_csv(path, dtype={"error": str})
    frame["error"] = frame["error"].fillna("")
    return frame


def read_per_image(out: str | Path) -> pd.DataFrame | None:
    path = Path(out) / "per_image.csv"
    if not path.exists():
        return None
    return pd.read_csv(path, dtype={"correct": str})


def read_results(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    return json.loads((path / RESULTS_FILE if path.is_dir() else path).read_text())
