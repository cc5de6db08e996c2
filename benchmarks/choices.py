"""Defaults the paper leaves open, chosen on validation data (never on test images): the grid, the numbers and why.

The rule, fixed before the runs it judges (docs/decisions.md#defaults-chosen-on-validation):

1. the highest mean validation accuracy over the seeds every option was run with;
2. options whose mean is within the noise of the best (the mean over options of their seed standard deviation)
   tie, and among them the highest mean validation map fidelity (D(LEP(x)) against the validation teacher maps)
   decides, with the same tie margin;
3. what still ties goes to the cheapest option (``cost``, e.g. the decoder's multiply-adds per image), then to the
   first in grid order (the current default first, so a full tie keeps it).

Test accuracy is carried in the table for the reader and never looked at by :func:`choose`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from methods.blocks import make_decoder

CRITERIA = (("val_accuracy", "validation accuracy"), ("map_fidelity", "validation map fidelity"))


@dataclass(frozen=True)
class Choice:
    setting: str
    chosen: str
    reason: str
    table: pd.DataFrame  # one row per option: seeds, mean ± std of every criterion, cost, test accuracy, chosen
    cost_label: str = "cost"


def common_seeds(frame: pd.DataFrame) -> list[int]:
    """Seeds every option was run with: options are compared on the same stage-1 models."""
    per_option = [set(sub["seed"]) for _, sub in frame.groupby("option", sort=False)]
    return sorted(set.intersection(*per_option)) if per_option else []


def choose(setting: str, frame: pd.DataFrame, order: list[str], cost_label: str = "cost") -> Choice:
    """``frame``: one row per (option, seed) with ``val_accuracy``, ``map_fidelity``, optional ``cost`` (lower is
    cheaper; ``cost_label`` names its unit) and ``accuracy`` (test; reported only). ``order``: the grid, current
    default first."""
    seeds = common_seeds(frame)
    if not seeds:
        raise ValueError(f"{setting}: no seed was run with every option of {order}")
    frame = frame[frame["seed"].isin(seeds)]
    stats = frame.groupby("option", sort=False).agg(["mean", "std"])
    candidates = [o for o in order if o in stats.index]
    steps = []
    for column, label in CRITERIA:
        means = stats.loc[candidates, (column, "mean")].dropna()
        if means.empty:
            continue
        noise = float(stats.loc[candidates, (column, "std")].dropna().mean()) if len(seeds) > 1 else 0.0
        noise = 0.0 if math.isnan(noise) else noise
        best = float(means.max())
        kept = [o for o in candidates if o in means.index and means[o] >= best - noise]
        steps.append(f"{label}: best {best:.3g} ({means.idxmax()}), within {noise:.2g} of it: {', '.join(kept)}")
        candidates = kept
        if len(candidates) == 1:
            break
    if len(candidates) > 1 and "cost" in stats.columns.get_level_values(0):
        cost = stats.loc[candidates, ("cost", "mean")]
        if cost.notna().all() and cost.nunique() > 1:
            candidates = [str(cost.idxmin())]
            steps.append(f"cheapest of the tie: {candidates[0]}")
    chosen = candidates[0]
    table = pd.DataFrame({"setting": setting, "option": [o for o in order if o in stats.index]})
    table["seeds"] = ", ".join(map(str, seeds))
    for column in [c for c in ("val_accuracy", "map_fidelity", "cost", "accuracy")
                   if c in stats.columns.get_level_values(0)]:
        table[f"{column}_mean"] = [stats.loc[o, (column, "mean")] for o in table["option"]]
        table[f"{column}_std"] = [stats.loc[o, (column, "std")] for o in table["option"]]
    table["chosen"] = table["option"] == chosen
    return Choice(setting, chosen, "; ".join(steps), table, cost_label)


def decoder_multiply_adds(preset: str, channels: int = 3, image_size: int = 32) -> float:
    """Multiply-adds of decoder D for one image (``torch.utils.flop_counter``; FLOPs / 2)."""
    decoder = make_decoder(preset, channels, image_size).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        decoder(torch.zeros(1, 512))
    return counter.get_total_flops() / 2.0


def to_text(choice: Choice) -> pd.DataFrame:
    """The table as a reader sees it: mean ± std, test accuracy labelled as not used, the choice marked."""
    t = choice.table
    out = pd.DataFrame({"option": t["option"], "seeds": t["seeds"]})

    def pm(column: str, digits: int) -> list[str]:
        return [f"{m:.{digits}f}" + ("" if pd.isna(s) else f" ± {s:.{digits}f}")
                for m, s in zip(t[f"{column}_mean"], t[f"{column}_std"])]

    if "val_accuracy_mean" in t:
        out["val accuracy (%)"] = pm("val_accuracy", 2)
    if "map_fidelity_mean" in t:
        out["val map fidelity"] = pm("map_fidelity", 3)
    if "cost_mean" in t:
        out[choice.cost_label] = [f"{v:.3g}" for v in t["cost_mean"]]
    if "accuracy_mean" in t:
        out["test accuracy (%), not used"] = pm("accuracy", 2)
    out["chosen"] = ["✓" if c else "" for c in t["chosen"]]
    return out


__all__ = ["CRITERIA", "Choice", "choose", "common_seeds", "decoder_multiply_adds", "to_text"]
