"""A metric against one knob (Drop-Activation's p, LRD's p), with a 95% CI band and the optimum.

Options: ``metric``, ``unit``; ``x`` (the knob's column, e.g. ``param.da_p``);
``lines`` (optional column drawing one curve per value, e.g. ``param.optimizer``)
with ``line_labels``; ``paper`` (line label, or ``all``, -> x -> the paper's
number); ``paper_setup`` (what the paper ran, named beside what ran here);
``optimum`` (the x the paper finds best, checked per line by the bootstrap
arg-min rule); and ``comparisons`` (``{line, method, baseline, expect, claim}``:
declared paired tests between two x values, see :mod:`._claims`).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..plots import curve_with_band
from ..render import Report
from ..setups import row_name, what_ran
from ..verdicts import Draft, decide, optimum
from ._claims import ClaimSpec, compare, draft, paper_text, parse_claims, relation
from ._common import Cell, as_text, cell, intro, label, metric_column, require, units

ALL = "all"


def _x(value: Any) -> float:
    return float(value)


def build(meta: dict[str, Any], options: dict[str, Any], runs: pd.DataFrame, history) -> Report:
    check(options)
    column = metric_column(options)
    convert, lower_is_better, ylabel = units(options)
    x, lines = _numeric_column(options["x"], runs), options.get("lines")
    runs = require(runs, [x, column, "seed", "status", *([lines] if lines else [])])
    runs = runs[runs[x].notna()]
    cells: dict[tuple[str, float], Cell] = {}
    keys = [lines, x] if lines else [x]
    for key, frame in runs.groupby(keys, dropna=False, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        line = label(key[0], options.get("line_labels")) if lines else ALL
        cells[(line, _x(key[-1]))] = cell(frame, column, convert)

    ran = (
        row_name(what_ran(runs.iloc[0]), options.get("paper_setup"), meta["scale"])
        if len(runs)
        else ""
    )
    report = Report(
        meta["recipe"],
        meta["scale"],
        meta["title"],
        intro(meta, runs, f"What ran: {ran}.", history),
    )
    report.add_table(
        "curve",
        _table(cells, options),
        f"{ylabel} against {x.split('.', 1)[-1]}",
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
    drafts, shares = _optimum_claims(cells, options, lower_is_better, meta)
    drafts += _comparison_claims(cells, options, lower_is_better, meta)
    report.claims = decide(drafts, meta["recipe"], meta["scale"])
    if not shares.empty:
        report.add_table(
            "optimum",
            shares,
            "Where the optimum lies: bootstrap over seeds",
            "The share of 10,000 bootstrap resamples of the seeds (joint across grid points) in "
            "which each value has the best mean.",
        )
    return report


def _numeric_column(x: str, runs: pd.DataFrame) -> str:
    """A knob's ``hp.*`` column (numbers, as the run logged them) where the run has it, rather
    than its ``param.*`` text."""
    numeric = f"hp.{x.removeprefix('param.')}"
    return numeric if x.startswith("param.") and numeric in runs.columns else x


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


def _optimum_claims(cells, options, lower_is_better, meta) -> tuple[list[Draft], pd.DataFrame]:
    """Per line: the bootstrap probability that each x is the arg-min, and the verdict on the
    paper's optimum (:func:`analysis.verdicts.optimum`)."""
    optimum_x = options.get("optimum")
    if optimum_x is None:
        return [], pd.DataFrame()
    drafts, records = [], []
    for line in dict.fromkeys(name for name, _ in cells):
        values = {xv: c.values for (name, xv), c in cells.items() if name == line}
        evidence, shares = optimum(values, float(optimum_x), lower_is_better)
        best = _best(cells, line, lower_is_better)
        at_paper = cells.get((line, float(optimum_x)))
        records += [
            {
                **({} if line == ALL else {"line": line}),
                "x": f"{xv:g}",
                "P(arg-min)": f"{share:.0%}",
            }
            for xv, share in sorted(shares.items())
        ]
        where = "" if line == ALL else f" ({line})"
        measured = (
            f"optimum at {best[0]:g}: {best[1].text()} ({optimum_x:g}: {at_paper.text()})"
            if best is not None and at_paper is not None
            else "no runs at the paper's optimum"
        )
        text = options.get("optimum_claim", "the best p is {optimum}").format(optimum=optimum_x)
        drafts.append(Draft(text + where, f"optimum at {optimum_x:g}", measured, evidence, "", ""))
    return drafts, pd.DataFrame(records)


def _comparison_claims(cells, options, lower_is_better, meta) -> list[Draft]:
    drafts = []
    for spec in parse_comparisons(options):
        line = spec.line_label(options)
        method = cells.get((line, float(spec.method)))
        base = cells.get((line, float(spec.baseline)))
        if method is None or base is None:
            continue
        paper = as_float_keys((options.get("paper") or {}).get(line) or {})
        p_method, p_base = paper.get(float(spec.method)), paper.get(float(spec.baseline))
        effect = None if p_method is None or p_base is None else p_method - p_base
        labels = (f"{float(spec.method):g}", f"{float(spec.baseline):g}")
        evidence = compare(spec, method, base, lower_is_better, effect, labels)
        where = "" if line == ALL else f"{line}: "
        text = spec.claim or f"{where}p = {labels[0]} is {relation(spec.expect)} p = {labels[1]}"
        drafts.append(
            draft(
                spec,
                text,
                paper_text(spec, p_method, p_base, None),
                method,
                base,
                evidence,
                f"{meta.get('paper', '')}:{line}:{labels[0]} vs {labels[1]}",
            )
        )
    return drafts


class CurveClaim(ClaimSpec):
    """A comparison between two x values of one line (``line``: a value of the lines column)."""

    line: str | None = None

    def line_label(self, options: dict[str, Any]) -> str:
        return label(self.line, options.get("line_labels")) if self.line else ALL


def parse_comparisons(options: dict[str, Any]) -> list[CurveClaim]:
    return parse_claims(options.get("comparisons"), "report.comparisons", CurveClaim)


def check(options: dict[str, Any]) -> None:
    parse_comparisons(options)
    optimum_x = options.get("optimum")
    if optimum_x is not None and not isinstance(optimum_x, (int, float)):
        raise ValueError(f"report.optimum: a grid value, got {optimum_x!r}")


def as_float_keys(mapping: dict[Any, Any]) -> dict[float, Any]:
    return {float(as_text(k)): v for k, v in mapping.items()}
