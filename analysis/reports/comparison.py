"""Methods side by side against a baseline, in the paper's table layout, with paired statistics.

Options: ``metric``, ``unit``; ``rows`` and ``groups`` (columns whose values
make a table row, e.g. ``sweep.part`` and ``param.optimizer``) with their
``row_labels``/``group_labels``; ``arm`` (the compared column, e.g.
``param.activation``), ``arms`` (value -> label, in table order) and
``baseline`` (a value of ``arm``); ``pairs`` (``[method, baseline]`` arm labels
to compare; default every arm against ``baseline``); ``paper`` (row label ->
[group label ->] arm label -> the paper's number); ``paper_proxy`` (row label ->
the paper row whose numbers stand in for it); ``directions`` (arm label,
or group label -> arm label, -> +1/0/-1: the paper's direction where it gives
no number; +1 by default); ``claim`` (a template with ``{method}``,
``{baseline}``, ``{row}``, ``{group}``).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..aggregate import paired_comparison
from ..claims import Claim, claim_text, comparison_verdict, paper_direction
from ..plots import grouped_bars, learning_curves
from ..render import Report
from ._common import Cell, as_text, cell, intro, label, metric_column, require, units

QUICK_NOTE = (
    "Quick scale trains smaller data for fewer epochs than the paper; the paper's numbers are "
    "shown beside ours for orientation, not as a target. The verdicts test the direction of "
    "each claim at this scale."
)


def _ordered(values: list[str], labels: dict[str, str] | None) -> list[str]:
    order = list((labels or {}).values())
    return sorted(set(values), key=lambda v: (order.index(v) if v in order else len(order), v))


def _paper_row(options: dict[str, Any], row: str) -> str:
    """The paper row whose numbers stand for ``row`` (itself, or its ``paper_proxy``)."""
    paper = options.get("paper") or {}
    return row if row in paper else (options.get("paper_proxy") or {}).get(row, row)


def _paper(options: dict[str, Any], row: str, group: str | None, arm: str) -> float | None:
    entry = (options.get("paper") or {}).get(_paper_row(options, row))
    if entry is None:
        return None
    if group is not None:
        entry = entry.get(group)
        if entry is None:
            return None
    value = entry.get(arm)
    return None if value is None else float(value)


def build(meta: dict[str, Any], options: dict[str, Any], runs: pd.DataFrame, history) -> Report:
    column = metric_column(options)
    convert, lower_is_better, ylabel = units(options)
    rows, groups, arm = (
        list(options.get("rows", [])),
        list(options.get("groups", [])),
        options["arm"],
    )
    arms: dict[str, str] = {as_text(k): v for k, v in options["arms"].items()}
    baseline = as_text(options["baseline"])
    runs = require(runs, [*rows, *groups, arm, column, "seed", "status"])
    runs = runs[runs[arm].map(as_text).isin(arms)]

    cells: dict[tuple[str, str | None, str], Cell] = {}
    run_ids: dict[tuple[str, str | None, str], list[str]] = {}
    for key, frame in runs.groupby([*rows, *groups, arm], dropna=False, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = " / ".join(label(v, options.get("row_labels")) for v in key[: len(rows)]) or "all"
        group = " / ".join(label(v, options.get("group_labels")) for v in key[len(rows) : -1])
        slot = (row, group or None, arms[as_text(key[-1])])
        cells[slot] = cell(frame, column, convert)
        run_ids[slot] = frame["run_id"].tolist()

    row_names = _ordered([r for r, _, _ in cells], options.get("row_labels"))
    group_names = _ordered([g for _, g, _ in cells if g], options.get("group_labels")) or [None]
    slots = [
        (r, g)
        for r in row_names
        for g in group_names
        if any((r, g, a) in cells for a in arms.values())
    ]

    report = Report(
        recipe=meta["recipe"],
        scale=meta["scale"],
        title=meta["title"],
        intro=intro(meta, runs, QUICK_NOTE if meta["scale"] == "quick" else ""),
    )
    report.add_table(
        "results",
        _layout(cells, slots, arms, lower_is_better),
        f"Ours, {ylabel}",
        "Mean ± std over seeds; the best of each row in bold.",
    )
    report.add_table("vs_paper", _beside_paper(cells, slots, arms, options), "Beside the paper")
    paired, claims = _paired(cells, slots, arms, baseline, options, lower_is_better, meta)
    report.add_table(
        "paired",
        paired,
        "Method against baseline, seed by seed",
        "Δ = method − baseline in the table's unit, 95% t-interval over paired seeds; "
        "paired t-test and Wilcoxon signed-rank p-values; d_z = mean Δ / std Δ.",
    )
    report.claims = claims
    bars = _bars_frame(cells, slots)
    if not bars.empty:
        report.add_figure(
            "comparison",
            grouped_bars(bars, "row", "arm", ylabel, meta["title"]),
            "Means with 95% confidence intervals",
        )
    if history is not None:
        _add_learning_curves(report, history, run_ids, options)
    return report


def _slot_label(row: str, group: str | None) -> str:
    return row if group is None else f"{row} · {group}"


def _layout(cells, slots, arms, lower_is_better) -> pd.DataFrame:
    records = []
    for row, group in slots:
        present = [cells[(row, group, a)] for a in arms.values() if (row, group, a) in cells]
        means = [c.stats.mean for c in present if not math.isnan(c.stats.mean)]
        best = (min(means) if lower_is_better else max(means)) if means else None
        record = {"row": row} if group is None else {"row": row, "group": group}
        for name in arms.values():
            c = cells.get((row, group, name))
            text = "" if c is None else c.text()
            record[name] = f"**{text}**" if c is not None and c.stats.mean == best else text
        records.append(record)
    return pd.DataFrame(records)


def _beside_paper(cells, slots, arms, options) -> pd.DataFrame:
    records = []
    for row, group in slots:
        for name in arms.values():
            c = cells.get((row, group, name))
            if c is None:
                continue
            paper = _paper(options, row, group, name)
            diff = (
                "" if paper is None or math.isnan(c.stats.mean) else f"{c.stats.mean - paper:+.2f}"
            )
            records.append(
                {
                    "row": _slot_label(row, group),
                    "arm": name,
                    "ours": c.text(),
                    "seeds": c.stats.n,
                    "paper": "" if paper is None else f"{paper:g}",
                    "paper setup": "" if paper is None else _paper_row(options, row),
                    "ours − paper": diff,
                }
            )
    return pd.DataFrame(records)


def _direction(options, group: str | None, method: str) -> int:
    directions = options.get("directions") or {}
    scoped = directions.get(group) if group is not None else None
    if isinstance(scoped, dict) and method in scoped:
        return int(scoped[method])
    value = directions.get(method)
    return int(value) if isinstance(value, (int, float)) else 1


def _paired(cells, slots, arms, baseline, options, lower_is_better, meta):
    records, claims = [], []
    template = options.get("claim", "{method} beats {baseline} on {row}")
    pairs = options.get("pairs") or [[name, arms[baseline]] for name in arms.values()]
    for row, group in slots:
        for name, base_name in pairs:
            method, base = cells.get((row, group, name)), cells.get((row, group, base_name))
            if name == base_name or method is None or base is None:
                continue
            comparison = paired_comparison(method.values, base.values)
            p_method, p_base = (_paper(options, row, group, n) for n in (name, base_name))
            known = p_method is not None and p_base is not None
            direction = (
                paper_direction(p_method, p_base, lower_is_better)
                if known
                else _direction(options, group, name)
            )
            verdict, reason = comparison_verdict(comparison, lower_is_better, direction)
            interval = (
                f"[{comparison.ci_low:+.2f}, {comparison.ci_high:+.2f}]"
                if not math.isnan(comparison.ci_low)
                else "n/a"
            )
            records.append(
                {
                    "row": _slot_label(row, group),
                    "method": name,
                    "baseline": base_name,
                    "n": comparison.n,
                    "Δ": f"{comparison.mean_diff:+.2f}" if comparison.n else "n/a",
                    "95% CI": interval,
                    "t p": f"{comparison.t_pvalue:.3g}",
                    "Wilcoxon p": f"{comparison.wilcoxon_pvalue:.3g}",
                    "d_z": f"{comparison.effect_size:.2f}",
                    "verdict": verdict,
                }
            )
            expected = {1: "better than", 0: "no different from", -1: "worse than"}[direction]
            proxy = _paper_row(options, row)
            paper_text = (
                f"{p_method:g} vs {p_base:g} ({p_method - p_base:+.2f})"
                + ("" if proxy == row else f" on {proxy}")
                if known
                else f"{name} {expected} {base_name} (no number for this setup)"
            )
            delta = (
                f"Δ {comparison.mean_diff:+.2f}, 95% CI {interval}, n={comparison.n}"
                if comparison.n
                else "no seed finished both"
            )
            measured = f"{method.text()} vs {base.text()} ({delta})"
            if method.stats.n == 0 and method.failed:
                reason = f"every run of {name} failed ({method.failed}): nothing to compare"
            text = claim_text(
                template.format(method=name, baseline=base_name, row=row, group=group or ""),
                direction,
                name,
                base_name,
                f" on {_slot_label(row, group)}",
            )
            claims.append(
                Claim(meta["recipe"], meta["scale"], text, paper_text, measured, verdict, reason)
            )
    return pd.DataFrame(records), claims


def _bars_frame(cells, slots) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "row": _slot_label(row, group),
                "arm": name,
                "mean": c.stats.mean,
                "ci_low": c.stats.ci_low,
                "ci_high": c.stats.ci_high,
            }
            for (row, group, name), c in cells.items()
            if (row, group) in slots
        ]
    )


def _add_learning_curves(report: Report, history, run_ids, options) -> None:
    metric = options.get("curve_metric", options.get("metric", "test_error"))
    frames = []
    for (row, group, name), ids in run_ids.items():
        frame = history(ids, metric)
        if len(frame):
            frames.append(frame.assign(arm=name, panel=_slot_label(row, group)))
    if frames:
        curves = pd.concat(frames, ignore_index=True)
        figure = learning_curves(curves, "arm", metric, panels="panel")
        report.add_figure("learning_curves", figure, "Learning curves (mean over seeds)")
