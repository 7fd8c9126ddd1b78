"""Methods side by side against a baseline, in the paper's table layout, with declared claims.

Options: ``metric``, ``unit``; ``rows`` and ``groups`` (columns whose values make a table row,
e.g. ``sweep.part`` and ``param.optimizer``) with ``row_labels`` (part -> the paper setup it
reproduces or stands in for) and ``group_labels``; ``arm`` (the compared column, e.g.
``param.activation``), ``arms`` (value -> label, in table order) and ``baseline``;
``claims`` (see :mod:`._claims`: ``method``, ``baseline``, ``expect`` and a ``claim`` template
with ``{method}``, ``{baseline}``, ``{row}``, ``{group}``; ``where: {group: [...], row: [...]}``
limits one to some rows or groups); ``table_claims`` (one claim over all rows, a random-effects
estimate); ``convergence`` (epochs to reach an accuracy, :mod:`.convergence`); ``paper``
(paper setup -> [group ->] arm -> the paper's number).

Rows are named by what ran (:mod:`analysis.setups`), with the paper setup beside them.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..plots import grouped_bars, learning_curves
from ..render import Report
from ..setups import row_name, what_ran
from ..verdicts import Draft, across_rows, decide, expected_sign
from . import convergence
from ._claims import compare, draft, paper_text, parse_claims, relation
from ._common import Cell, as_text, cell, intro, label, metric_column, require, units

BEST_COLUMN = "metric.test_error_at_best"


def check(options: dict[str, Any]) -> None:
    """Refuse a report section whose claims lack a direction or name unknown arms."""
    named = options.get("arms") or {}
    arms = {as_text(v) for v in named.values()} | {as_text(k) for k in named}
    for where in ("claims", "table_claims"):
        for spec in parse_claims(options.get(where), f"report.{where}"):
            unknown = {as_text(spec.method), as_text(spec.baseline)} - arms
            if unknown:
                raise ValueError(
                    f"report.{where}: unknown arms {sorted(unknown)}; arms are {sorted(arms)}"
                )
    convergence.check(options.get("convergence"), arms)


def _ordered(values: list[str], order: list[str]) -> list[str]:
    return sorted(set(values), key=lambda v: (order.index(v) if v in order else len(order), v))


def _paper(options: dict[str, Any], setup: str, group: str | None, arm: str) -> float | None:
    entry = (options.get("paper") or {}).get(setup)
    if entry is not None and group is not None:
        entry = entry.get(group)
    value = None if entry is None else entry.get(arm)
    return None if value is None else float(value)


class Table:
    """The report's cells: (row key, group, arm) -> Cell, with row names and run ids."""

    def __init__(self, runs: pd.DataFrame, options: dict[str, Any], scale: str, column: str):
        convert, _, _ = units(options)
        rows, groups, arm = options.get("rows", []), options.get("groups", []), options["arm"]
        self.arms: dict[str, str] = {as_text(k): v for k, v in options["arms"].items()}
        self.cells: dict[tuple[str, str | None, str], Cell] = {}
        self.best: dict[tuple[str, str | None, str], Cell] = {}
        self.run_ids: dict[tuple[str, str | None, str], list[str]] = {}
        self.setup: dict[str, str] = {}
        self.names: dict[str, str] = {}
        for key, frame in runs.groupby([*rows, *groups, arm], dropna=False, sort=False):
            key = key if isinstance(key, tuple) else (key,)
            row = " / ".join(as_text(v) for v in key[: len(rows)]) or "all"
            group = " / ".join(label(v, options.get("group_labels")) for v in key[len(rows) : -1])
            slot = (row, group or None, self.arms[as_text(key[-1])])
            self.cells[slot] = cell(frame, column, convert)
            if BEST_COLUMN in frame.columns:
                self.best[slot] = cell(frame, BEST_COLUMN, convert)
            self.run_ids[slot] = frame["run_id"].tolist()
            paper_setup = label(key[0], options.get("row_labels")) if rows else None
            self.setup.setdefault(row, paper_setup or row)
            self.names.setdefault(row, row_name(what_ran(frame.iloc[0]), paper_setup, scale))
        order = list((options.get("row_labels") or {}).keys())
        self.rows = _ordered([r for r, _, _ in self.cells], order)
        group_order = list((options.get("group_labels") or {}).values())
        self.groups = _ordered([g for _, g, _ in self.cells if g], group_order) or [None]
        self.slots = [
            (r, g)
            for r in self.rows
            for g in self.groups
            if any((r, g, a) in self.cells for a in self.arms.values())
        ]

    def name(self, row: str, group: str | None) -> str:
        return self.names[row] if group is None else f"{self.names[row]} · {group}"


def build(meta: dict[str, Any], options: dict[str, Any], runs: pd.DataFrame, history) -> Report:
    check(options)
    column = metric_column(options)
    _, lower_is_better, ylabel = units(options)
    arm = options["arm"]
    runs = require(runs, [*options.get("rows", []), *options.get("groups", []), arm, column])
    runs = require(runs, ["seed", "status"])
    runs = runs[runs[arm].map(as_text).isin({as_text(k) for k in options["arms"]})]
    table = Table(runs, options, meta["scale"], column)
    report = Report(
        meta["recipe"], meta["scale"], meta["title"], intro(meta, runs, history=history)
    )
    report.add_table(
        "results",
        _layout(table, table.cells, lower_is_better),
        f"Ours, {ylabel} at the end of training",
        "Mean ± std over seeds; the best of each row in bold. Rows are named by what ran.",
    )
    if table.best:
        chosen = "validation" if _has_validation(runs) else "test (optimistic: chosen on test)"
        report.add_table(
            "results_best",
            _layout(table, table.best, lower_is_better),
            f"Ours, {ylabel} at the best epoch",
            f"The epoch of each run is chosen on its {chosen} error; shown beside the final "
            "epoch, which the verdicts use.",
        )
    report.add_table("vs_paper", _beside_paper(table, options), "Beside the paper")
    drafts, paired = _claims(table, options, lower_is_better, meta)
    drafts += _table_claims(table, options, lower_is_better)
    if history is not None and options.get("convergence"):
        more, frame = convergence.claims(table, options, runs, history, meta["scale"])
        drafts += more
        if len(frame):
            report.add_table(
                "convergence",
                frame,
                "Epochs to reach the paper's accuracy",
                convergence.EXPLANATION,
            )
    report.claims = decide(drafts, meta["recipe"], meta["scale"])
    report.add_table(
        "paired",
        _with_verdicts(paired, report.claims),
        "Method against baseline, seed by seed",
        "Δ = method − baseline in the table's unit; 95% t-interval over paired seeds; p is "
        "one-sided in the claim's direction, Holm-adjusted over the artifact's claims.",
    )
    bars = _bars_frame(table)
    if not bars.empty:
        report.add_figure(
            "comparison",
            grouped_bars(bars, "row", "arm", ylabel, meta["title"]),
            "Means with 95% confidence intervals",
        )
    if history is not None:
        _add_learning_curves(report, history, table, options)
    return report


def _has_validation(runs: pd.DataFrame) -> bool:
    fractions = pd.to_numeric(runs.get("param.val_fraction"), errors="coerce")
    return fractions is not None and bool((fractions.fillna(0.1) > 0).all())


def _layout(table: Table, cells, lower_is_better) -> pd.DataFrame:
    records = []
    for row, group in table.slots:
        present = [cells[(row, group, a)] for a in table.arms.values() if (row, group, a) in cells]
        means = [c.stats.mean for c in present if not math.isnan(c.stats.mean)]
        best = (min(means) if lower_is_better else max(means)) if means else None
        record = {"row": table.names[row]}
        if group is not None:
            record["group"] = group
        for name in table.arms.values():
            c = cells.get((row, group, name))
            text = "" if c is None else c.text()
            record[name] = f"**{text}**" if c is not None and c.stats.mean == best else text
        records.append(record)
    return pd.DataFrame(records)


def _beside_paper(table: Table, options) -> pd.DataFrame:
    records = []
    for row, group in table.slots:
        for name in table.arms.values():
            c = table.cells.get((row, group, name))
            if c is None:
                continue
            paper = _paper(options, table.setup[row], group, name)
            diff = (
                "" if paper is None or math.isnan(c.stats.mean) else f"{c.stats.mean - paper:+.2f}"
            )
            records.append(
                {
                    "row": table.name(row, group),
                    "arm": name,
                    "ours": c.text(),
                    "seeds": c.stats.n,
                    "paper": "" if paper is None else f"{paper:g}",
                    "paper setup": "" if paper is None else table.setup[row],
                    "ours − paper": diff,
                }
            )
    return pd.DataFrame(records)


def _claims(table: Table, options, lower_is_better, meta) -> tuple[list[Draft], pd.DataFrame]:
    drafts, records = [], []
    template = "{method} is {relation} {baseline} on {row}"
    for spec in parse_claims(options.get("claims"), "report.claims"):
        method_name = table.arms.get(as_text(spec.method), as_text(spec.method))
        base_name = table.arms.get(as_text(spec.baseline), as_text(spec.baseline))
        for row, group in table.slots:
            if not spec.applies(group=group, row=table.setup[row]):
                continue
            method = table.cells.get((row, group, method_name))
            base = table.cells.get((row, group, base_name))
            if method is None or base is None:
                continue
            setup = table.setup[row]
            p_method = _paper(options, setup, group, method_name)
            p_base = _paper(options, setup, group, base_name)
            effect = None if p_method is None or p_base is None else p_method - p_base
            evidence = compare(
                spec, method, base, lower_is_better, effect, (method_name, base_name)
            )
            text = (spec.claim or template).format(
                method=method_name,
                baseline=base_name,
                row=table.name(row, None),
                group=group or "",
                relation=relation(spec.expect),
            )
            stand_in = setup if meta["scale"] != "paper" and setup != row else None
            paper = paper_text(spec, p_method, p_base, stand_in)
            key = f"{meta.get('paper', '')}:{setup}:{group or ''}:{method_name} vs {base_name}"
            drafts.append(draft(spec, text, paper, method, base, evidence, key))
            records.append(_paired_record(table.name(row, group), method_name, base_name, evidence))
    return drafts, pd.DataFrame(records)


def _paired_record(where: str, method: str, baseline: str, evidence) -> dict[str, Any]:
    interval = (
        f"[{evidence.ci_low:+.2f}, {evidence.ci_high:+.2f}]"
        if math.isfinite(evidence.ci_low)
        else "n/a"
    )
    return {
        "row": where,
        "method": method,
        "baseline": baseline,
        "n": evidence.n,
        "Δ": f"{evidence.estimate:+.2f}" if evidence.n else "n/a",
        "CI": interval,
        "p": f"{evidence.p:.3g}" if evidence.testable else "n/a",
    }


def _with_verdicts(paired: pd.DataFrame, claims) -> pd.DataFrame:
    pairwise = [c for c in claims if c.kind in ("directional", "equivalence")]
    if paired.empty or len(pairwise) < len(paired):
        return paired
    pairwise = pairwise[: len(paired)]
    return paired.assign(
        **{
            "Holm p": [
                f"{c.p_adjusted:.3g}" if c.p_adjusted is not None else "n/a" for c in pairwise
            ],
            "MDE": [f"{c.mde:.2g}" if c.mde is not None else "n/a" for c in pairwise],
            "seeds for paper's effect": [c.seeds_needed or "" for c in pairwise],
            "verdict": [c.verdict for c in pairwise],
        }
    )


def _table_claims(table: Table, options, lower_is_better) -> list[Draft]:
    drafts = []
    for spec in parse_claims(options.get("table_claims"), "report.table_claims"):
        if spec.expect == "equivalent":
            raise ValueError("report.table_claims: a table-level claim is better or worse")
        method_name = table.arms.get(as_text(spec.method), as_text(spec.method))
        base_name = table.arms.get(as_text(spec.baseline), as_text(spec.baseline))
        rows = {
            table.name(row, group): (
                table.cells[(row, group, method_name)].values,
                table.cells[(row, group, base_name)].values,
            )
            for row, group in table.slots
            if spec.applies(group=group, row=table.setup[row])
            and (row, group, method_name) in table.cells
            and (row, group, base_name) in table.cells
        }
        evidence = across_rows(rows, expected_sign(spec.expect, lower_is_better))
        text = spec.claim or f"{method_name} is {relation(spec.expect)} {base_name} across the rows"
        measured = (
            f"pooled Δ {evidence.estimate:+.2f} over {evidence.n} rows"
            if evidence.testable
            else f"{len(rows)} rows measured"
        )
        paper = f"{method_name} {relation(spec.expect)} {base_name} in the paper's table"
        drafts.append(Draft(text, paper, measured, evidence, "", spec.counted_in or ""))
    return drafts


def _bars_frame(table: Table) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "row": table.name(row, group),
                "arm": name,
                "mean": c.stats.mean,
                "ci_low": c.stats.ci_low,
                "ci_high": c.stats.ci_high,
            }
            for (row, group, name), c in table.cells.items()
            if (row, group) in table.slots
        ]
    )


def _add_learning_curves(report: Report, history, table: Table, options) -> None:
    metric = options.get("curve_metric", options.get("metric", "test_error"))
    frames = []
    for (row, group, name), ids in table.run_ids.items():
        frame = history(ids, metric)
        if len(frame):
            frames.append(frame.assign(arm=name, panel=table.name(row, group)))
    if frames:
        curves = pd.concat(frames, ignore_index=True)
        figure = learning_curves(curves, "arm", metric, panels="panel")
        report.add_figure("learning_curves", figure, "Learning curves (mean over seeds)")
