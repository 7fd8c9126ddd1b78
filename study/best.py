"""``study best``: the best configs of a study, read from MLflow, with mean ± 95% CI over seeds."""

from __future__ import annotations

import json
import math

import pandas as pd

from analysis.aggregate import summarize
from analysis.query import trial_runs


def best_configs(
    tracking_uri: str, experiment: str, metric: str, mode: str = "min"
) -> pd.DataFrame:
    """Every config of ``experiment``, best first, with seed statistics of ``metric``."""
    return summarize(trial_runs(tracking_uri, experiment), metric, mode)


def _cell(mean: float, half: float, n: int) -> str:
    if math.isnan(mean):
        return "n/a"
    if n < 2 or math.isnan(half):
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {half:.4f}"


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
        0,
        f"{metric} (95% CI)",
        [
            _cell(m, (hi - lo) / 2, n)
            for m, lo, hi, n in zip(frame["mean"], frame["ci_low"], frame["ci_high"], frame["n"])
        ],
    )
    shown.insert(0, "rank", range(1, len(frame) + 1))
    return shown.to_string(index=False)
