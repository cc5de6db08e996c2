"""One run folder, one consistent result: exclusive use while a run writes it, no outputs of an earlier run left.

A run folder (``--out``) holds the rows, tables and figures of the run that wrote it last. Two runs writing one
folder at once would overwrite each other's ``rows.csv`` (each holds only its own rows), so the second stops at
once (exit 2) and names the first; and a run starts by removing the outputs an earlier run left there, so nothing
of that run can be printed or read as this run's. Finished artifacts live in the cache (``--cache-dir``, default
``<out>/artifacts``) and are never removed here.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO

from benchmarks.config import ConfigError
from benchmarks.tables import TABLE_FILES

LOCK_NAME = ".run.lock"
OUTPUT_FILES = ("rows.csv", "per_image.csv", "run.log", "results.json", "report.html", "resolved.toml")


def claim_run_folder(out: Path) -> IO[str]:
    """Lock ``out`` for this process (released when the returned handle is closed or the process ends).

    Raises :class:`ConfigError` naming the holder when another run has it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    handle = open(path, "a+")
    try:
        import fcntl

        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        holder = path.read_text().strip() or "another process"
        raise ConfigError(f"another run is writing to {out} ({holder}); wait for it to finish or choose another "
                          "--out") from None
    except ImportError:  # pragma: no cover - no fcntl (Windows): no protection
        pass
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(sys.argv)}\n")
    handle.flush()
    return handle


def clear_outputs(out: Path) -> None:
    """Remove the rows, tables and figures an earlier run left in ``out`` (never the artifact cache)."""

    for name in (*OUTPUT_FILES, *TABLE_FILES):
        (out / name).unlink(missing_ok=True)
    figures = out / "figures"
    if figures.is_dir():
        for png in figures.glob("*.png"):
            png.unlink()
    logs = out / "logs"  # the cell logs of an earlier run
    if logs.is_dir():
        for cell_log in logs.glob("*.log"):
            cell_log.unlink()
