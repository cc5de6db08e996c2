"""Render a run's ``report.html`` in headless Chromium (from the OS packages) and save a screenshot.

  python -m benchmarks.screenshot_report results/runs/smoke            # -> results/runs/smoke/report.png

Exits 0 with "skipped: ..." when no Chromium / Chrome is installed (``apt-get install chromium``), 1 when the
browser fails, 2 when the run folder has no report. The browser runs offline in a throw-away profile.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def screenshot(report: Path, png: Path, browser: str, width: int = 1400, height: int = 2000,
               timeout: float = 120.0) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``report`` (a file URL: no server, no network) and write ``png``."""
    with tempfile.TemporaryDirectory(prefix="impactx-chromium-") as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
                   f"--user-data-dir={profile}", f"--screenshot={png.resolve()}",
                   f"--window-size={width},{height}", report.resolve().as_uri()]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.screenshot_report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run folder holding report.html")
    parser.add_argument("--png", help="where to write the screenshot (default: RUN/report.png)")
    parser.add_argument("--height", type=int, default=2000, help="window height in pixels (default 2000)")
    args = parser.parse_args(argv)
    report = Path(args.run) / "report.html"
    if not report.exists():
        print(f"error: {report} not found; run python -m benchmarks.tables {args.run} first", file=sys.stderr)
        return 2
    browser = find_browser()
    if browser is None:
        print(f"skipped: no headless browser found (tried {', '.join(BROWSERS)}); apt-get install chromium")
        return 0
    png = Path(args.png) if args.png else Path(args.run) / "report.png"
    result = screenshot(report, png, browser, height=args.height)
    if result.returncode != 0 or not png.exists():
        print(f"error: {browser} failed ({result.returncode}): {result.stderr.strip()[-500:]}", file=sys.stderr)
        return 1
    print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
