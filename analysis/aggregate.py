"""Statistics over seeds: runs grouped by config (without seed), mean ± 95% t-interval.

Works on the table :mod:`analysis.query` returns and knows nothing of MLflow.
Failed and diverged runs are never dropped silently: every group reports how
many of its runs finished, failed or were stopped early, and only finished
runs enter the statistics.

``scipy.stats`` is imported where an interval or a test is computed, not with the module: a
sweep's driver imports this module before its first trial and needs the statistics only after
its last (0.4-0.5 s of imports off the path to the first training step; `study.warmup` imports
them while the trials train).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

CONFIDENCE = 0.95
# The values a metric can take: an interval is cut to them (an error rate's lower bound is 0).
METRIC_RANGE = {"error": (0.0, 1.0), "loss": (0.0, math.inf)}
IGNORED_PARAMS = ("param.seed", "param.data_dir", "param.num_threads", "param.device")


@dataclass(frozen=True)
class SeedStats:
    """n, mean, std (ddof 1), standard error and the two-sided t-interval of one config's values."""

    n: int
    mean: float
    std: float
    sem: float
    ci_low: float
    ci_high: float

    @property
    def ci_half_width(self) -> float:
        return (self.ci_high - self.ci_low) / 2


def seed_stats(values: Sequence[float], confidence: float = CONFIDENCE) -> SeedStats:
    """Statistics of per-seed values; std and the interval are NaN below two values."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return SeedStats(0, math.nan, math.nan, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return SeedStats(1, mean, math.nan, math.nan, math.nan, math.nan)
    std = 0.0 if np.ptp(x) == 0 else float(x.std(ddof=1))
    sem = std / math.sqrt(n)
    if sem == 0:
        return SeedStats(n, mean, std, sem, mean, mean)
    from scipy import stats

    low, high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
    return SeedStats(n, mean, std, sem, float(low), float(high))


def metric_range(metric: str) -> tuple[float, float]:
    """``(low, high)`` a metric's values lie in, from its kind (``val_error``: [0, 1])."""
    kind = metric.removeprefix("metric.").rsplit("_", 1)[-1]
    if metric.endswith("error_at_best"):
        kind = "error"
    return METRIC_RANGE.get(kind, (-math.inf, math.inf))


def config_columns(frame: pd.DataFrame) -> list[str]:
    """The param columns that vary between configs (what tells configs apart in a table)."""
    params = [c for c in frame.columns if c.startswith("param.") and c not in IGNORED_PARAMS]
    return [c for c in params if frame[c].astype(str).nunique(dropna=False) > 1]


def summarize(
    table: pa.Table | pd.DataFrame,
    metric: str,
    mode: str = "min",
    by: Sequence[str] = ("config_id",),
) -> pd.DataFrame:
    """One row per config: its varying params, run counts and the seed statistics of ``metric``
    (the t-interval cut to the values the metric can take: :func:`metric_range`).

    ``metric`` is a metric name (``val_error``) or a column (``metric.val_error``).
    Rows are sorted best first by the mean under ``mode``.
    """
    frame = table.to_pandas() if isinstance(table, pa.Table) else table.copy()
    column = metric if metric.startswith(("metric.", "hp.")) else f"metric.{metric}"
    if frame.empty:
        return pd.DataFrame()
    if column not in frame.columns:
        known = sorted(c.removeprefix("metric.") for c in frame.columns if c.startswith("metric."))
        raise KeyError(f"no metric {metric!r} in these runs; metrics present: {known}")
    varying = config_columns(frame)
    rows = []
    for key, group in frame.groupby(list(by), dropna=False, sort=False):
        finished = group[group["status"] == "FINISHED"]
        summary = seed_stats(finished[column].tolist())
        low, high = metric_range(metric)
        first = group.iloc[0]
        row = {name: value for name, value in zip(by, key if isinstance(key, tuple) else (key,))}
        row.update({c.removeprefix("param."): first[c] for c in varying})
        row.update(
            runs=len(group),
            finished=len(finished),
            failed=int((group["status"] == "FAILED").sum()),
            stopped_early=int(group.get("stopped_early", pd.Series(False)).sum()),
            seeds=sorted(int(s) for s in group["seed"].dropna()),
            n=summary.n,
            mean=summary.mean,
            std=summary.std,
            sem=summary.sem,
            ci_low=max(summary.ci_low, low) if math.isfinite(summary.ci_low) else summary.ci_low,
            ci_high=min(summary.ci_high, high) if math.isfinite(summary.ci_high) else math.nan,
        )
        rows.append(row)
    result = pd.DataFrame(rows)
    ranked = result.sort_values(
        ["mean", *by], ascending=[mode == "min", True], na_position="last", kind="mergesort"
    )
    return ranked.reset_index(drop=True)


@dataclass(frozen=True)
class PairedComparison:
    """Method minus baseline over the seeds both finished: mean difference with its 95% t-interval,
    paired t-test and Wilcoxon signed-rank p-values, and Cohen's d_z (mean / std of differences)."""

    n: int
    mean_diff: float
    ci_low: float
    ci_high: float
    t_pvalue: float
    wilcoxon_pvalue: float
    effect_size: float


def paired_comparison(
    method: dict[int, float], baseline: dict[int, float], confidence: float = CONFIDENCE
) -> PairedComparison:
    """Compare per-seed values of a method with its baseline on the seeds they share."""
    seeds = sorted(
        s
        for s in set(method) & set(baseline)
        if math.isfinite(method[s]) and math.isfinite(baseline[s])
    )
    diffs = np.array([method[s] - baseline[s] for s in seeds], dtype=float)
    n = len(diffs)
    if n == 0:
        return PairedComparison(0, *(math.nan,) * 6)
    summary = seed_stats(diffs.tolist(), confidence)
    if n < 2:
        return PairedComparison(n, summary.mean, math.nan, math.nan, math.nan, math.nan, math.nan)
    from scipy import stats

    std = diffs.std(ddof=1)
    t_p = float(stats.ttest_rel([method[s] for s in seeds], [baseline[s] for s in seeds]).pvalue)
    nonzero = diffs[diffs != 0]
    wilcoxon_p = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) else 1.0
    effect = (
        summary.mean / std
        if std > 0
        else (0.0 if summary.mean == 0 else math.copysign(math.inf, summary.mean))
    )
    if std == 0:
        t_p = 1.0 if summary.mean == 0 else 0.0
    return PairedComparison(
        n, summary.mean, summary.ci_low, summary.ci_high, t_p, wilcoxon_p, float(effect)
    )


def per_seed(frame: pd.DataFrame, column: str) -> dict[int, float]:
    """``{seed: value}`` of finished runs in ``frame`` (one config)."""
    finished = frame[(frame["status"] == "FINISHED") & frame[column].notna()]
    return {int(s): float(v) for s, v in zip(finished["seed"], finished[column])}
