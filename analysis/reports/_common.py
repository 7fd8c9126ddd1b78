"""Pieces every report kind shares: the intro, per-cell statistics in the paper's unit, labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..aggregate import SeedStats, per_seed, seed_stats
from ..render import mean_std, unit

PILOT_NOTE = (
    "This is a **pilot** run: smaller models, data and budgets than the paper's, named below by "
    "what ran. Its verdicts are pilot verdicts, counted apart from paper-scale ones; the "
    "paper's numbers are shown beside ours for orientation, never as a target."
)


@dataclass(frozen=True)
class Cell:
    """One table cell: per-seed values in the report's unit, their statistics, and run counts."""

    values: dict[int, float]
    stats: SeedStats
    runs: int
    failed: int
    failed_seeds: tuple[int, ...] = ()

    def text(self, digits: int = 2) -> str:
        shown = mean_std(self.stats.mean, self.stats.std, self.stats.n, digits)
        return shown + (f" ({self.failed} failed)" if self.failed else "")


def metric_column(options: dict[str, Any]) -> str:
    metric = options.get("metric", "test_error")
    return metric if metric.startswith(("metric.", "hp.")) else f"metric.{metric}"


def cell(frame: pd.DataFrame, column: str, convert: Callable[[float], float]) -> Cell:
    if column not in frame.columns:
        frame = frame.assign(**{column: float("nan")})
    values = {seed: convert(v) for seed, v in per_seed(frame, column).items()}
    failed_rows = frame[frame["status"] == "FAILED"] if len(frame) else frame
    failed_seeds = tuple(sorted(int(s) for s in failed_rows["seed"].dropna()))
    return Cell(
        values, seed_stats(list(values.values())), len(frame), len(failed_rows), failed_seeds
    )


def as_text(value: Any) -> str:
    """Param values as MLflow stores them: ``1.0`` and ``"1.0"`` match, so do ``2`` and ``"2"``."""
    return str(value)


def label(value: Any, labels: dict[str, str] | None) -> str:
    return (labels or {}).get(as_text(value), as_text(value))


def units(options: dict[str, Any]) -> tuple[Callable[[float], float], bool, str]:
    return unit(options.get("unit", "error%"), options.get("metric", "test_error"))


def cost(runs: pd.DataFrame, history) -> str:
    """Where the runs ran, the wall time per training and the CPU-hours, from the runs'
    per-epoch ``epoch_time`` (the training loop; resumed runs count each epoch once)."""
    finished = runs[runs["status"] == "FINISHED"] if len(runs) else runs
    if history is None or finished.empty:
        return ""
    times = history(finished["run_id"].tolist(), "epoch_time")
    if times is None or times.empty:
        return ""
    per_run = times.drop_duplicates(["run_id", "step"]).groupby("run_id")["value"].sum()
    recorded = finished.set_index("run_id").get("param.num_threads")
    threads = (
        pd.to_numeric(recorded, errors="coerce").reindex(per_run.index).fillna(1.0)
        if recorded is not None
        else 1.0
    )
    cpu_hours = float((per_run * threads).sum() / 3600)
    spread = per_run.std(ddof=1) if len(per_run) > 1 else 0.0
    unit, size = ("min", 60) if per_run.mean() >= 60 else ("s", 1)
    machines = sorted({str(m) for m in runs.get("machine", pd.Series(dtype=str)).dropna()})
    where = "; ".join(machines) if machines else "not recorded by these runs"
    return (
        f"- Cost: {per_run.mean() / size:.1f} ± {spread / size:.1f} {unit} per training "
        f"(training loop, {len(per_run)} finished runs), "
        f"{cpu_hours:.2f} CPU-hours in all; ran on: {where}."
    )


def intro(meta: dict[str, Any], runs: pd.DataFrame, extra: str = "", history=None) -> str:
    """What was run, where, how much of it finished, what it cost, and how to reproduce it."""
    total = len(runs)
    statuses = runs["status"].value_counts().to_dict() if total else {}
    finished, failed = statuses.get("FINISHED", 0), statuses.get("FAILED", 0)
    others = total - finished - failed
    counts = f"{total} trial runs: {finished} finished, {failed} failed"
    if others:
        counts += f", {others} unfinished (still running, or interrupted)"
    if meta.get("from_ledger"):
        counts += (
            f"; {meta['from_ledger']} of the finished come from this report's run ledger "
            "([runs/](runs/)), the tracking store no longer holding them"
        )
    lines = [
        f"{meta.get('description', '').strip()}",
        "",
        f"- Paper artifact: {meta.get('paper', '?').upper()} {meta.get('artifact', '')}; "
        f"scale **{meta.get('scale')}** ({meta.get('machine', '')}).",
        f"- Runs: {counts}. MLflow experiment `{meta.get('experiment')}` at "
        f"`{meta.get('tracking_uri')}`.",
        f"- Reproduce: `study reproduce {meta.get('recipe')} --scale {meta.get('scale')}`; "
        f"re-render from MLflow alone: `study report {meta.get('recipe')} --scale "
        f"{meta.get('scale')}`.",
    ]
    spent = cost(runs, history)
    if spent:
        lines.insert(4, spent)
    assumptions = meta.get("assumptions") or []
    if assumptions:
        lines += ["", "Assumptions where the paper is silent (the recipe's, shown here):", ""]
        lines += [f"- {a.strip()}" for a in assumptions]
    if meta.get("scale") != "paper":
        lines += ["", PILOT_NOTE]
    if extra:
        lines += ["", extra.strip()]
    return "\n".join(lines)


def with_off_knobs(runs: pd.DataFrame) -> pd.DataFrame:
    """A run records only the knobs of the methods that acted in it; where a method was off,
    its knob reads as its default (the "off" value: ``lrd_p`` 1.0), so arms group cleanly.
    Numeric knobs are also filled in their ``hp.*`` columns, which reports read as numbers."""
    from trainables.methods import knobs

    filled = {}
    for name, (_, knob) in knobs().items():
        for column, value in ((f"param.{name}", str(knob.default)), (f"hp.{name}", knob.default)):
            if column in runs.columns and runs[column].isna().any():
                if column.startswith("hp.") and not isinstance(value, (int, float)):
                    continue
                filled[column] = runs[column].fillna(value)
    return runs.assign(**filled) if filled else runs


def require(runs: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``runs`` with every column in ``columns`` present (missing ones filled with NaN)."""
    missing = {c: float("nan") for c in columns if c not in runs.columns}
    return runs.assign(**missing) if missing else runs
