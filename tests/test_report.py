"""report.html: self-contained (no network, images embedded), Table 2 beside the paper with marks, every section;
rendered in headless Chromium when one is installed (issue 13 item 5)."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmarks.report import SECTIONS
from benchmarks.screenshot_report import find_browser, main as screenshot_main
from benchmarks.tables import main as tables_main

RNG = np.random.default_rng(0)


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids, self.images, self.links, self.external = [], [], [], []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag in ("script", "link", "iframe"):
            self.external.append(tag)
        for key in ("src", "href"):
            if re.match(r"(https?:)?//", attrs.get(key) or ""):
                self.external.append(attrs[key])
        if tag == "a":
            self.links.append(attrs.get("href"))


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A run folder as a run leaves it (rows, per-image results, a figure, a failed cell), without training: a
    paper cell (cifar10 / lenet5) so the paper's numbers and the significance marks show."""
    out = tmp_path / "paper-like"
    rows, images = [], []
    for seed in (0, 1, 2):
        for method, acc in (("baseline", 60.0), ("impactx", 75.0)):
            correct = RNG.random(400) < acc / 100
            rows.append(dict(method=method, backbone="lenet5", dataset="cifar10", seed=seed, metric="accuracy",
                             value=100 * correct.mean(), direction="higher", error=""))
            rows.append(dict(method=method, backbone="lenet5", dataset="cifar10", seed=seed, metric="aopc/own",
                             value=0.1 + 0.01 * seed, direction="higher", error=""))
            rows.append(dict(method=method, backbone="lenet5", dataset="cifar10", seed=seed, metric="fit_seconds",
                             value=12.5, direction="info", error=""))
            images.append(dict(method=method, backbone="lenet5", dataset="cifar10", seed=seed,
                               correct="".join("1" if c else "0" for c in correct)))
    rows.append(dict(method="abn", backbone="lenet5", dataset="cifar10", seed=0, metric="accuracy",
                     value=float("nan"), direction="higher",
                     error="FloatingPointError: loss is NaN (log: logs/cifar10_lenet5_seed0_abn.log)"))
    out.mkdir()
    pd.DataFrame(rows).to_csv(out / "rows.csv", index=False)
    pd.DataFrame(images).to_csv(out / "per_image.csv", index=False)
    (out / "config.json").write_text(json.dumps({"config": {"profile": "paper"}, "started": "2026-01-01T00:00:00",
                                                 "environment": {"git_sha": "abc123", "device_name": "GPU X"}}))
    (out / "resolved.toml").write_text('profile = "paper"\n\n[train]\nepochs = 30\n')
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "figures").mkdir()
    for name in ("morf_cifar10_lenet5_seed0.png", "examples_cifar10_lenet5_seed0_impactx.png"):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([0, 1], [1, 0])
        fig.savefig(out / "figures" / name)
        plt.close(fig)
    assert tables_main([str(out)]) == 0
    return out


def test_report_is_self_contained_and_has_every_section(run_dir):
    text = (run_dir / "report.html").read_text()
    page = Page()
    page.feed(text)
    assert page.external == []  # no scripts, stylesheets, frames or network addresses
    assert set(page.ids) >= {key for key, _ in SECTIONS}
    assert len(page.images) == 2 and all(src.startswith("data:image/png;base64,") for src in page.images)
    long = pd.read_csv(run_dir / "table2_long.csv").set_index("method")
    impactx = long.loc["impactx"]
    assert f"{impactx['mean']:.2f} ± {impactx['std']:.2f}" in text
    assert impactx["p_images"] < 0.05 and impactx["p_seeds"] < 0.05
    assert re.search(r'<span class="mark">\*†</span>', text)  # both significance marks on impactx
    assert "two-sided" in text  # the same legend as table2.md
    assert "paper 70.65" in text and f"Δ {impactx['mean'] - 70.65:+.2f}" in text  # beside the paper's number
    assert "paper 67.96" in text
    assert "aopc (↑)" in text and "GPU X" in text and "epochs = 30" in text and "12.5" in text
    assert "logs/cifar10_lenet5_seed0_abn.log" in page.links  # the failed cell links its log


def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    browser = find_browser()
    if browser is None:
        pytest.skip("no headless Chromium / Chrome installed (apt-get install chromium)")
    png = tmp_path / "report.png"
    assert screenshot_main([str(run_dir), "--png", str(png), "--height", "1200"]) == 0
    from PIL import Image

    image = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert image.shape == (1200, 1400)
    assert image.std() > 5  # not a blank page: text and tables were drawn


def test_screenshot_script_skips_with_a_reason_without_a_browser(run_dir, monkeypatch, capsys):
    import benchmarks.screenshot_report as script

    monkeypatch.setattr(script.shutil, "which", lambda name: None)
    assert script.main([str(run_dir)]) == 0
    assert "skipped: no headless browser found" in capsys.readouterr().out
