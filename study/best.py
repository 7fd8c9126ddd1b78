"""``study best``: the best configs of a study, read from MLflow, with mean ± 95% CI over seeds."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from analysis.aggregate import summarize
from analysis.query import trial_runs


def best_configs(
    tracking_uri: str,
    experiment: str,
    metric: str,
    mode: str = "min",
    sweep_run_id: str | None = None,
) -> pd.DataFrame:
    """Every config of ``experiment`` (of one sweep, given its parent run), best first, with
    seed statistics of ``metric`` and its rank (configs with equal means share one)."""
    frame = summarize(trial_runs(tracking_uri, experiment, sweep_run_id), metric, mode)
    frame.insert(0, "rank", shared_ranks(frame["mean"].tolist()))
    return frame


def shared_ranks(means: list[float]) -> list[int]:
    """Competition ranks of values already sorted best first: ``[.1, .2, .2, .3]`` ranks
    ``[1, 2, 2, 4]``; equal means are a tie, whatever order the sort left them in."""
    ranks: list[int] = []
    for i, mean in enumerate(means):
        tied = i > 0 and (mean == means[i - 1] or (math.isnan(mean) and math.isnan(means[i - 1])))
        ranks.append(ranks[-1] if tied else i + 1)
    return ranks


def _cell(mean: float, low: float, high: float, n: int) -> str:
    """``0.0046 [0.0000, 0.0146]``: the mean and its interval (cut to the metric's range)."""
    if math.isnan(mean):
        return "n/a"
    if n < 2 or math.isnan(low) or math.isnan(high):
        return f"{mean:.4f}"
    return f"{mean:.4f} [{low:.4f}, {high:.4f}]"


def render(frame: pd.DataFrame, metric: str, fmt: str = "table") -> str:
    """``frame`` from :func:`best_configs` as an aligned table, CSV or JSON."""
    if frame.empty:
        return "no trial runs recorded yet"
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return json.dumps(json.loads(frame.to_json(orient="records")), indent=2)
    shown = frame.drop(columns=["sem", "ci_low", "ci_high", "std", "mean", "config_id"])
    shown.insert(
        1,
        f"{metric} (95% CI)",
        [
            _cell(m, lo, hi, n)
            for m, lo, hi, n in zip(frame["mean"], frame["ci_low"], frame["ci_high"], frame["n"])
        ],
    )
    return shown.to_string(index=False)


STATS = {"rank", "config_id", "runs", "finished", "failed", "stopped_early", "seeds", "n"}
STATS |= {"mean", "std", "sem", "ci_low", "ci_high"}


def curve_knob(frame: pd.DataFrame) -> str | None:
    """The one numeric knob a sweep's configs differ in (a 1-D grid, like the p-grid), else None."""
    knobs = [c for c in frame.columns if c not in STATS]
    if len(knobs) != 1 or frame.empty:
        return None
    values = pd.to_numeric(frame[knobs[0]], errors="coerce")
    return knobs[0] if values.notna().all() and values.nunique() > 1 else None


def render_curve(frame: pd.DataFrame, knob: str, metric: str) -> str:
    """``metric`` against ``knob`` in the knob's order, the mean and its 95% interval."""
    rows = frame.assign(_x=pd.to_numeric(frame[knob])).sort_values("_x")
    seeds = int(rows["n"].max())
    lines = [f"{metric} against {knob} (mean [95% CI] over up to {seeds} seeds):"]
    for _, row in rows.iterrows():
        cell = _cell(row["mean"], row["ci_low"], row["ci_high"], row["n"])
        lines.append(f"  {knob}={row['_x']:<6g} {cell}")
    return "\n".join(lines)


def save_curve(frame: pd.DataFrame, knob: str, metric: str, mode: str, path: Path) -> Path:
    """The curve as a PNG (the reports' own figure: shaded interval, best marked)."""
    from analysis.plots import curve_with_band

    rows = frame.assign(**{knob: pd.to_numeric(frame[knob])})
    figure = curve_with_band(
        rows, knob, None, metric, title=f"{metric} against {knob}", mark_best=mode
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    return path
