"""The figures reports use, built from tables (no MLflow, no files): bars, curves, grids, histories.

Every function returns a matplotlib ``Figure``; :mod:`analysis.render` saves it.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def _below_above(mean: float, low: float, high: float) -> tuple[float, float]:
    """Error-bar lengths below and above the mean (an interval cut at 0 is not symmetric)."""
    if math.isnan(low) or math.isnan(high):
        return 0.0, 0.0
    return mean - low, high - mean


def grouped_bars(frame: pd.DataFrame, group: str, arm: str, ylabel: str, title: str = "") -> Figure:
    """Bars of ``mean`` per ``group`` (x) and ``arm`` (colour), with 95% CI error bars."""
    groups = list(dict.fromkeys(frame[group]))
    arms = list(dict.fromkeys(frame[arm]))
    width = 0.8 / max(len(arms), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(groups) * max(len(arms), 1) / 2 + 3), 4))
    for i, name in enumerate(arms):
        part = frame[frame[arm] == name].set_index(group).reindex(groups)
        bars = zip(part["mean"], part["ci_low"], part["ci_high"])
        errors = np.array([_below_above(m, lo, hi) for m, lo, hi in bars]).T
        x = np.arange(len(groups)) + (i - (len(arms) - 1) / 2) * width
        ax.bar(x, part["mean"], width, yerr=errors, capsize=3, label=str(name))
    ax.set_xticks(np.arange(len(groups)), groups, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    values = frame["mean"].dropna()
    if len(values):
        spread = max(values.max() - values.min(), 1e-6)
        ax.set_ylim(max(0.0, values.min() - 1.5 * spread), values.max() + 1.5 * spread)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def curve_with_band(
    frame: pd.DataFrame,
    x: str,
    line: str | None,
    ylabel: str,
    title: str = "",
    mark_best: str = "min",
    reference_x: float | None = None,
    paper: dict | None = None,
) -> Figure:
    """``mean`` against ``x`` (one line per ``line`` value) with a shaded 95% CI; best marked.

    ``paper`` (line value, or None for a single line, -> x -> value) is drawn dashed beside it.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4))
    lines = [None] if line is None else list(dict.fromkeys(frame[line]))
    for name in lines:
        part = frame if name is None else frame[frame[line] == name]
        part = part.sort_values(x)
        xs, ys = part[x].astype(float).to_numpy(), part["mean"].to_numpy()
        low = part["ci_low"].fillna(part["mean"]).to_numpy()
        high = part["ci_high"].fillna(part["mean"]).to_numpy()
        (drawn,) = ax.plot(xs, ys, marker="o", label=None if name is None else str(name))
        ax.fill_between(xs, low, high, alpha=0.2, color=drawn.get_color())
        reference = (paper or {}).get(name)
        if reference:
            px = sorted(float(k) for k in reference)
            ax.plot(
                px,
                [reference[k] for k in px],
                linestyle="--",
                marker="x",
                color=drawn.get_color(),
                alpha=0.7,
                label=f"paper{'' if name is None else f' ({name})'}",
            )
        if len(ys) and not np.all(np.isnan(ys)):
            best = int(np.nanargmin(ys) if mark_best == "min" else np.nanargmax(ys))
            ax.plot(xs[best], ys[best], marker="*", markersize=16, color=drawn.get_color())
            ax.annotate(
                f"best {xs[best]:g}",
                (xs[best], ys[best]),
                textcoords="offset points",
                xytext=(5, 8),
                fontsize=8,
            )
    if reference_x is not None:
        ax.axvline(
            reference_x, linestyle="--", color="grey", alpha=0.7, label=f"paper {reference_x:g}"
        )
    ax.set_xlabel(x.split(".", 1)[-1])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if line is not None or reference_x is not None or paper:
        ax.legend(fontsize=8)
    return fig


def heatmap(
    values: pd.DataFrame, title: str, cbar_label: str, text: pd.DataFrame | None = None
) -> Figure:
    """A row x column grid of numbers (lower = darker), annotated with ``text`` or the values."""
    fig, ax = plt.subplots(figsize=(1.3 * values.shape[1] + 2.5, 0.7 * values.shape[0] + 1.8))
    image = ax.imshow(values.to_numpy(dtype=float), cmap="viridis_r", aspect="auto")
    ax.set_xticks(range(values.shape[1]), values.columns, rotation=30, ha="right")
    ax.set_yticks(range(values.shape[0]), values.index)
    shown = values.round(2).astype(str) if text is None else text
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            ax.text(j, i, shown.iat[i, j], ha="center", va="center", fontsize=7, color="white")
    fig.colorbar(image, ax=ax, label=cbar_label)
    ax.set_title(title)
    return fig


def learning_curves(
    histories: pd.DataFrame, group: str, ylabel: str, title: str = "", panels: str | None = None
) -> Figure:
    """Mean per ``step`` of ``value`` for each ``group`` (over seeds), one panel per ``panels``."""
    names = [None] if panels is None else list(dict.fromkeys(histories[panels]))
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        part = histories if name is None else histories[histories[panels] == name]
        for key, lines in part.groupby(group, sort=False):
            mean = lines.groupby("step")["value"].mean()
            ax.plot(mean.index, mean.to_numpy(), label=str(key))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(str(name) if name is not None else title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if panels is not None and title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
