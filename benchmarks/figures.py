"""Figures (matplotlib, Agg backend: no display needed): mean MoRF curves, and per-example rows like paper Figs 3-5.

- :func:`plot_morf_curves`: one mean curve per method / map source with a band (interquartile range by default,
  or ±1 std), x = fraction of regions replaced (k / L).
- :func:`plot_examples`: one row per example image: the input, each map (e.g. SHAP map, the method's own map;
  red = positive, blue = negative, symmetric colour scale per map), and the MoRF curves of those maps together.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

BANDS = ("iqr", "std", "none")


def _x_axis(steps: int):
    return torch.linspace(0.0, 1.0, steps).numpy()


def plot_morf_curves(curves_by_method: dict[str, torch.Tensor], path: str | Path, *, band: str = "iqr",
                     title: str | None = None, ylabel: str = "probability of the explained class",
                     figsize: tuple[float, float] = (5.5, 4.0)) -> Path:
    """Mean MoRF curve per entry of ``curves_by_method`` (each [B, L+1]) with a band; writes a PNG to ``path``."""
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, got {band!r}")
    if not curves_by_method:
        raise ValueError("no curves to plot")
    fig, ax = plt.subplots(figsize=figsize)
    for name, curves in curves_by_method.items():
        c = curves.detach().float().cpu()
        if c.ndim != 2:
            raise ValueError(f"curves of {name!r} must be [B, L+1], got {tuple(c.shape)}")
        x = _x_axis(c.shape[1])
        mean = c.mean(0)
        (line,) = ax.plot(x, mean.numpy(), label=f"{name} (n={c.shape[0]})", lw=1.8)
        if band == "iqr" and c.shape[0] > 1:
            lo, hi = torch.quantile(c, torch.tensor([0.25, 0.75]), dim=0)
            ax.fill_between(x, lo.numpy(), hi.numpy(), color=line.get_color(), alpha=0.12, lw=0)
        elif band == "std" and c.shape[0] > 1:
            sd = c.std(0)
            ax.fill_between(x, (mean - sd).numpy(), (mean + sd).numpy(), color=line.get_color(), alpha=0.12, lw=0)
    ax.set_xlabel("fraction of regions replaced by noise (MoRF order)")
    ax.set_ylabel(ylabel)
    band_text = {"iqr": "mean, band = interquartile range", "std": "mean ± 1 std", "none": "mean"}[band]
    ax.set_title(title or f"MoRF curves ({band_text})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _image(raw: torch.Tensor) -> torch.Tensor:
    img = raw.detach().cpu()
    img = img.float() / 255.0 if img.dtype == torch.uint8 else img.float()
    return img.clamp(0, 1).permute(1, 2, 0).numpy()


def plot_examples(images_raw: torch.Tensor, maps_by_source: dict[str, torch.Tensor],
                  curves_by_source: dict[str, torch.Tensor], path: str | Path, titles: Sequence[str] | None = None,
                  *, ylabel: str = "score", suptitle: str | None = None) -> Path:
    """One row per image: input | one column per map source | the MoRF curves of all sources (paper Figs 3-5).

    ``images_raw`` [B, 3, H, W] uint8 or float in [0, 1]; ``maps_by_source``: source -> [B, 1|C, H, W] (summed over
    channels for display); ``curves_by_source``: source -> [B, L+1]; ``titles``: one label per row (e.g. the class);
    ``suptitle``: one line above the grid (e.g. method, dataset, backbone, seed).
    """
    n = images_raw.shape[0]
    if titles is not None and len(titles) != n:
        raise ValueError("one title per image")
    sources = list(maps_by_source)
    cols = 2 + len(sources)
    fig, axes = plt.subplots(n, cols, figsize=(2.3 * cols + 0.8, 2.3 * n), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i in range(n):
        ax = axes[i, 0]
        ax.imshow(_image(images_raw[i]), interpolation="nearest")
        ax.set_title(titles[i] if titles is not None else "input", fontsize=9)
        for j, source in enumerate(sources):
            ax = axes[i, 1 + j]
            m = maps_by_source[source][i].detach().float().cpu().sum(0).numpy()
            lim = float(abs(m).max()) or 1.0
            ax.imshow(m, cmap="bwr", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set_title(f"{source} map", fontsize=9)
        for ax in axes[i, :-1]:
            ax.set_xticks([])
            ax.set_yticks([])
        ax = axes[i, -1]
        for j, (source, curves) in enumerate(curves_by_source.items()):
            c = curves[i].detach().float().cpu().numpy()
            ax.plot(_x_axis(c.shape[0]), c, label=source, color=colors[j % len(colors)], lw=1.5)
        ax.set_title("MoRF", fontsize=9)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if i == 0:
            ax.legend(fontsize=7)
        if i == n - 1:
            ax.set_xlabel("fraction replaced", fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def plot_map_fidelity(histories: dict[str, list[dict[str, float]]], path: str | Path, *, title: str = "") -> Path:
    """Per stage-2 epoch, for each method with a decoder: map fidelity on validation teacher maps (left; 0 = no
    better than the per-class mean map) and the share of LEP's gradient from the map term (right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for method, history in histories.items():
        epochs = [h["epoch"] + 1 for h in history]
        left.plot(epochs, [h.get("map_fidelity", float("nan")) for h in history], marker="o", ms=3, label=method)
        right.plot(epochs, [h.get("map_grad_share", float("nan")) for h in history], marker="o", ms=3, label=method)
    left.axhline(0.0, color="grey", lw=0.8, ls="--")
    left.set(xlabel="stage-2 epoch", ylabel="map fidelity (validation) ↑", title="1 − MSE(D) / MSE(class-mean map)")
    right.set(xlabel="stage-2 epoch", ylabel="share of LEP gradient", title="map term's share of ∇LEP")
    left.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


__all__ = ["plot_examples", "plot_morf_curves"]
