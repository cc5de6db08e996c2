"""Progress that reads well everywhere: the one place that decides between bars and plain lines.

On a terminal (``sys.stderr.isatty()``) every level gets one tqdm bar: the grid (cells, naming the running group and
method), the running stage (steps or images, with ETA) and, for SHAP Partition, the evaluations of the current
shard. Every bar also emits plain progress lines through the ``core.progress`` logger, at most one per
``LINE_INTERVAL`` seconds (and one when it closes): without a terminal (CI, ``nohup``, a pipe) those lines are what
the console shows — timestamped by the log format, no carriage returns, no escape codes — and in every mode they go
to the run log and the running cell's log. :func:`configure` (called by the CLI) says whether bars are drawn.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any

log = logging.getLogger("core.progress")
LINE_INTERVAL = 30.0  # seconds between two progress lines of one bar

_state: dict[str, Any] = {"bars": None, "stream": None, "lines": True, "activity": "", "top": None}


def configure(bars: bool | None = None, stream: IO[str] | None = None, console_lines: bool = True) -> None:
    """Draw tqdm bars on ``stream`` (default stderr) or not; ``bars=None``: bars exactly when it is a terminal.
    ``console_lines=False``: progress lines go to the log files only, never to the console."""
    _state["bars"], _state["stream"], _state["lines"] = bars, stream, console_lines


def console_lines() -> bool:
    """Does the console show progress lines? (only when no bars show the progress and they are not switched off)"""
    return bool(_state["lines"]) and not bars_enabled()


def bars_enabled() -> bool:
    """Are bars drawn? (``configure``'s choice; by default: is the stream a terminal)"""
    if _state["bars"] is not None:
        return bool(_state["bars"])
    return is_terminal(_state["stream"] or sys.stderr)


def is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a file
        return False


def set_activity(text: str) -> None:
    """Name what runs now (e.g. ``digits/tiny/seed0 impactx``): shown on the grid bar and in every progress line."""
    _state["activity"] = text
    top = _state["top"]
    if top is not None:
        top.set_postfix_str(f"running {text}" if text else "")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """A tqdm-like counter (``update``, ``set_postfix``, ``set_postfix_str``, ``set_description``, ``close``) that
    draws a bar when bars are enabled and always logs plain, throttled progress lines."""

    def __init__(self, total: int | None, desc: str, enabled: bool = True, *, unit: str = "it", initial: int = 0,
                 level: int = 1, interval: float | None = None, close_line: bool = True,
                 unit_scale: bool = False) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.level, self.close_line = level, close_line
        self.interval = LINE_INTERVAL if interval is None else interval
        self.postfix = ""
        self.start = self.last_line = time.monotonic()
        self.lined_n: int | None = None  # the count of the last line written
        self.closed = False
        self.bar = None
        if enabled and bars_enabled():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=level == 0,
                            dynamic_ncols=True, mininterval=0.5, unit_scale=unit_scale,
                            file=_state["stream"] or sys.stderr)
        if level == 0:
            _state["top"] = self

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        self._maybe_line()

    def set_postfix(self, values: dict[str, Any] | None = None, **kwargs: Any) -> None:
        values = {**(values or {}), **kwargs}
        self.set_postfix_str(", ".join(f"{k}={v}" for k, v in values.items()))

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def set_description(self, text: str) -> None:
        self.desc = text
        if self.bar is not None:
            self.bar.set_description(text)

    def line(self, final: bool = False) -> str:
        """The plain progress line (no timestamp: the log format adds it)."""
        elapsed = time.monotonic() - self.start
        where = f"[{_state['activity']}] " if _state["activity"] and self.level > 0 else ""
        if self.total:
            text = f"{where}{self.desc}: {self.n}/{self.total} {self.unit} ({100.0 * self.n / self.total:.0f}%)"
        else:
            text = f"{where}{self.desc}: {self.n} {self.unit}"
        text += f", {_duration(elapsed)} elapsed"
        if final:
            rate = self.n / elapsed if elapsed > 0 else 0.0
            text += f", done ({rate:.3g} {self.unit}/s)"
        elif self.total and 0 < self.n < self.total:
            text += f", ETA {_duration(elapsed / self.n * (self.total - self.n))}"
        return text + (f", {self.postfix}" if self.postfix else "")

    def _maybe_line(self) -> None:
        now = time.monotonic()
        finished = self.total is not None and self.n >= self.total  # the closing line says it
        if now - self.last_line >= self.interval and not (finished and self.close_line):
            self.last_line, self.lined_n = now, self.n
            log.info(self.line())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        if self.close_line and self.lined_n != self.n:  # not when the last line already said it all
            log.info(self.line(final=True))
        if _state["top"] is self:
            _state["top"] = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(total: int | None, desc: str, enabled: bool = True, **options: Any) -> Progress:
    """A progress counter for one level: ``level`` 0 = the grid, 1 = a stage (default), 2 = inside a stage.
    ``enabled=False`` draws no bar (progress lines still reach the log files)."""
    return Progress(total, desc, enabled, **options)
