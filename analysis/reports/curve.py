"""A metric against one knob (Drop-Activation's p, LRD's p), with a 95% CI band and the optimum.

Options: ``metric``, ``unit``; ``x`` (the knob's column, e.g. ``param.da_p``);
``lines`` (optional column drawing one curve per value, e.g. ``param.optimizer``)
with ``line_labels``; ``paper`` (line label, or ``all``, -> x -> the paper's
number); ``optimum`` (the x the paper finds best, checked per line); and
``comparisons`` (``{line, method_x, baseline_x, claim}``: paired tests between
two x values).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..aggregate import paired_comparison
from ..claims import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    Claim,
    claim_text,
    comparison_verdict,
    paper_direction,
)
from ..plots import curve_with_band
from ..render import Report
from ._common import Cell, as_text, cell, intro, label, metric_column, require, units

ALL = "all"


def _x(value: Any) -> float:
    return float(value)


def build(meta: dict[str, Any], options: dict[str, Any], runs: pd.DataFrame, history) -> Report:
    column = metric_column(options)
    convert, lower_is_better, ylabel = units(options)
    x, lines = options["x"], options.get("lines")
    runs = require(runs, [x, column, "seed", "status", *([lines] if lines else [])])
    runs = runs[runs[x].notna()]
    cells: dict[tuple[str, float], Cell] = {}
    keys = [lines, x] if lines else [x]
    for key, frame in runs.groupby(keys, dropna=False, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        line = label(key[0], options.get("line_labels")) if lines else ALL
        cells[(line, _x(key[-1]))] = cell(frame, column, convert)

    report = Report(meta["recipe"], meta["scale"], meta["title"], intro(meta, runs))
    report.add_table(
        "curve",
        _table(cells, options),
        f"{ylabel} against {x.removeprefix('param.')}",
        "Mean ± std over seeds with the 95% t-interval; the best value per line in bold.",
    )
    frame = pd.DataFrame(
        [
            {
                "line": line,
                "x": xv,
                "mean": c.stats.mean,
                "ci_low": c.stats.ci_low,
                "ci_high": c.stats.ci_high,
            }
            for (line, xv), c in cells.items()
        ]
    )
    if not frame.empty:
        figure = curve_with_band(
            frame.rename(columns={"x": x}),
            x,
            "line" if lines else None,
            ylabel,
            meta["title"],
            "min" if lower_is_better else "max",
            options.get("optimum"),
            paper=_paper_lines(options, lines),
        )
        report.add_figure("curve", figure, "The curve, 95% confidence band, optimum starred")
    report.claims = _optimum_claims(cells, options, lower_is_better, meta)
    report.claims += _comparison_claims(cells, options, lower_is_better, meta)
    return report


def _paper_lines(options: dict[str, Any], lines: str | None) -> dict | None:
    """The paper's values keyed as the figure's lines are (None for a single line)."""
    paper = options.get("paper") or {}
    if not paper:
        return None
    return {(None if lines is None else line): as_float_keys(v) for line, v in paper.items()}


def _best(cells: dict[tuple[str, float], Cell], line: str, lower_is_better: bool):
    points = [(xv, c) for (name, xv), c in cells.items() if name == line and c.stats.n]
    if not points:
        return None
    return (min if lower_is_better else max)(points, key=lambda p: p[1].stats.mean)


def _table(cells: dict[tuple[str, float], Cell], options: dict[str, Any]) -> pd.DataFrame:
    _, lower_is_better, _ = units(options)
    records = []
    for line in dict.fromkeys(name for name, _ in cells):
        best = _best(cells, line, lower_is_better)
        for xv in sorted(xv for name, xv in cells if name == line):
            c = cells[(line, xv)]
            paper = ((options.get("paper") or {}).get(line) or {}).get(xv)
            interval = (
                ""
                if math.isnan(c.stats.ci_low)
                else f"[{c.stats.ci_low:.2f}, {c.stats.ci_high:.2f}]"
            )
            text = c.text()
            records.append(
                {
                    **({} if line == ALL else {"line": line}),
                    "x": f"{xv:g}",
                    "ours": f"**{text}**" if best is not None and best[0] == xv else text,
                    "95% CI": interval,
                    "seeds": c.stats.n,
                    "paper": "" if paper is None else f"{paper:g}",
                }
            )
    return pd.DataFrame(records)


def _optimum_claims(cells, options, lower_is_better, meta) -> list[Claim]:
    optimum = options.get("optimum")
    if optimum is None:
        return []
    claims = []
    for line in dict.fromkeys(name for name, _ in cells):
        best = _best(cells, line, lower_is_better)
        at_paper = cells.get((line, float(optimum)))
        if best is None or at_paper is None:
            continue
        best_x, best_cell = best
        if best_x == float(optimum):
            verdict, reason = SUPPORTED, f"the measured optimum is p = {best_x:g}"
        elif (
            not math.isnan(best_cell.stats.ci_low)
            and best_cell.stats.ci_low <= at_paper.stats.mean <= best_cell.stats.ci_high
        ):
            verdict = INCONCLUSIVE
            reason = (
                f"the measured optimum is p = {best_x:g}, but the mean at p = {optimum:g} "
                f"({at_paper.stats.mean:.2f}) lies inside its 95% CI "
                f"[{best_cell.stats.ci_low:.2f}, {best_cell.stats.ci_high:.2f}]"
            )
        else:
            verdict = NOT_SUPPORTED
            reason = (
                f"the measured optimum is p = {best_x:g} ({best_cell.stats.mean:.2f}); "
                f"p = {optimum:g} ({at_paper.stats.mean:.2f}) lies outside its 95% CI"
            )
        where = "" if line == ALL else f" ({line})"
        claims.append(
            Claim(
                meta["recipe"],
                meta["scale"],
                options.get("optimum_claim", "the best p is {optimum}").format(optimum=optimum)
                + where,
                f"optimum at p = {optimum:g}",
                f"optimum at p = {best_x:g}: {best_cell.text()} "
                f"(p = {optimum:g}: {at_paper.text()})",
                verdict,
                reason,
            )
        )
    return claims


def _comparison_claims(cells, options, lower_is_better, meta) -> list[Claim]:
    claims = []
    for spec in options.get("comparisons", []):
        line = label(spec.get("line", ALL), options.get("line_labels")) if spec.get("line") else ALL
        method = cells.get((line, float(spec["method_x"])))
        base = cells.get((line, float(spec["baseline_x"])))
        if method is None or base is None:
            continue
        comparison = paired_comparison(method.values, base.values)
        paper = (options.get("paper") or {}).get(line) or {}
        p_method, p_base = paper.get(float(spec["method_x"])), paper.get(float(spec["baseline_x"]))
        known = p_method is not None and p_base is not None
        direction = paper_direction(p_method, p_base, lower_is_better) if known else 1
        verdict, reason = comparison_verdict(comparison, lower_is_better, direction)
        claims.append(
            Claim(
                meta["recipe"],
                meta["scale"],
                claim_text(
                    spec["claim"],
                    direction,
                    f"p = {spec['method_x']:g}",
                    f"p = {spec['baseline_x']:g}",
                    "" if line == ALL else f" ({line})",
                ),
                f"{p_method:g} vs {p_base:g}" if known else "method better than baseline",
                f"{method.text()} vs {base.text()} "
                f"(Δ {comparison.mean_diff:+.2f}, n={comparison.n})",
                verdict,
                reason,
            )
        )
    return claims


def as_float_keys(mapping: dict[Any, Any]) -> dict[float, Any]:
    return {float(as_text(k)): v for k, v in mapping.items()}
