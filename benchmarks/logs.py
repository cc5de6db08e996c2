"""Where a run's messages go: the console, the run log (``<out>/run.log``) and one log per cell.

* Console (stderr): warnings by default plus progress lines when no bars are drawn (CI, ``nohup``, a pipe), each
  line timestamped; ``--verbose`` adds DEBUG, ``--quiet`` shows errors only (the final summary is printed anyway).
  While bars are drawn, messages are written above them (``tqdm.write``) so bars stay intact.
* ``run.log``: everything the console shows plus INFO (progress lines, cell starts and ends) and Python warnings,
  DEBUG too with ``--verbose``.
* ``logs/<dataset>_<backbone>_seed<k>_<method>.log``: one per cell, always at DEBUG: the cell's resolved config,
  its progress lines (every epoch) and, when it fails, the full traceback. The error row and the end-of-run
  summary name this file.
"""
from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import IO, Any, Iterator

from core import progress

PACKAGES = ("benchmarks", "methods", "datasets", "core")
LOG_DIR = "logs"
RUN_LOG = "run.log"
FILE_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
VERBOSITY = {"quiet": logging.ERROR, "normal": logging.INFO, "verbose": logging.DEBUG}


class ConsoleFormatter(logging.Formatter):
    """``2025-01-31 12:00:00 message`` for INFO and below, ``... WARNING name: message`` above."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = self.formatTime(record, DATE_FORMAT)
        text = record.getMessage()
        if record.levelno >= logging.WARNING or record.levelno < logging.INFO:
            text = f"{record.levelname} {record.name}: {text}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return f"{stamp} {text}"


class ConsoleHandler(logging.StreamHandler):
    """stderr, written above any tqdm bars; drops file-only records, and progress lines while bars show them."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        super().__init__(stream)
        self.addFilter(self._keep)

    @staticmethod
    def _keep(record: logging.LogRecord) -> bool:
        if getattr(record, "file_only", False):
            return False
        return record.name != progress.log.name or progress.console_lines()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if progress.bars_enabled():
                from tqdm import tqdm

                tqdm.write(text, file=self.stream)
            else:
                self.stream.write(text + "\n")
                self.flush()
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


def setup_console(verbosity: str = "normal", stream: IO[str] | None = None) -> logging.Handler:
    """Replace this module's console handler on the root logger (idempotent across ``main`` calls)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, ConsoleHandler):
            root.removeHandler(handler)
    handler = ConsoleHandler(stream or sys.stderr)
    # default: warnings and the progress lines (INFO of core.progress); verbose: DEBUG; quiet: errors only
    handler.setLevel(logging.DEBUG if verbosity == "verbose" else logging.INFO if verbosity == "normal"
                     else logging.ERROR)
    if verbosity == "normal":
        handler.addFilter(lambda r: r.levelno >= logging.WARNING or r.name == progress.log.name)
    handler.setFormatter(ConsoleFormatter())
    root.addHandler(handler)
    enable_package_logging()
    logging.captureWarnings(True)
    return handler


def enable_package_logging() -> None:
    """Let the suite's own loggers emit DEBUG records (handlers decide what to keep); third parties stay at
    their defaults."""
    root = logging.getLogger()
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    for name in PACKAGES:
        logging.getLogger(name).setLevel(logging.DEBUG)


def file_handler(path: Path, level: int) -> logging.FileHandler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(FILE_FORMAT, DATE_FORMAT))
    return handler


@contextlib.contextmanager
def run_log(out: Path, verbose: bool = False) -> Iterator[Path]:
    """``<out>/run.log`` for the duration of the block (INFO, DEBUG with ``--verbose``)."""
    path = Path(out) / RUN_LOG
    handler = file_handler(path, logging.DEBUG if verbose else logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    enable_package_logging()
    logging.captureWarnings(True)
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()


def say(text: str, err: bool = False) -> None:
    """Print ``text`` (stdout, or stderr with ``err``) and keep it in the run log."""
    print(text, file=sys.stderr if err else sys.stdout)
    for line in text.splitlines() or [""]:
        logging.getLogger("benchmarks.run").info(line, extra={"file_only": True})


def cell_log_name(dataset: str, backbone: str, seed: int, method: str) -> str:
    """``logs/<dataset>_<backbone>_seed<k>_<method>.log`` (relative to the run folder; paths made file-safe)."""
    parts = [str(p).replace(":", "-").replace("/", "_").replace("\\", "_").replace(" ", "_")
             for p in (dataset, backbone)]
    return f"{LOG_DIR}/{parts[0]}_{parts[1]}_seed{seed}_{method}.log"


@contextlib.contextmanager
def cell_log(out: str | Path, dataset: str, backbone: str, seed: int, method: str,
             config: dict[str, Any]) -> Iterator[str]:
    """Route every record to the cell's own log file (DEBUG) while the block runs; yields its relative name.
    The file starts with the cell's resolved config."""
    name = cell_log_name(dataset, backbone, seed, method)
    handler = file_handler(Path(out) / name, logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    enable_package_logging()
    cell_logger = logging.getLogger("benchmarks.cell")
    try:
        cell_logger.debug("cell %s / %s / %s / seed %s, resolved config:\n%s", method, backbone, dataset, seed,
                          json.dumps(config, indent=1, sort_keys=True, default=str))
        yield name
    finally:
        root.removeHandler(handler)
        handler.close()
