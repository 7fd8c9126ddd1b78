"""Activation x normalization grid (VCL Table 2): a table and a heatmap per dataset, and verdicts.

Options: ``metric``, ``unit``; ``panels`` (column splitting the grid, e.g.
``sweep.part``) with ``panel_labels``; ``rows`` (e.g. ``param.activation``)
with ``row_labels``; ``columns`` (e.g. ``param.variant.name``) with
``column_order``; ``paper`` (panel label -> row label -> column -> value);
``comparisons``: ``[{method, baseline, claim}]`` between two columns, tested
in every row of every panel.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from ..aggregate import paired_comparison
from ..claims import Claim, claim_text, comparison_verdict, paper_direction
from ..plots import heatmap
from ..render import Report
from ._common import Cell, as_text, cell, intro, label, metric_column, require, units


def build(meta: dict[str, Any], options: dict[str, Any], runs: pd.DataFrame, history) -> Report:
    column = metric_column(options)
    convert, lower_is_better, ylabel = units(options)
    panels, rows, columns = options.get("panels"), options["rows"], options["columns"]
    runs = require(runs, [rows, columns, column, "seed", "status", *([panels] if panels else [])])
    cells: dict[tuple[str, str, str], Cell] = {}
    keys = [k for k in (panels, rows, columns) if k]
    for key, frame in runs.groupby(keys, dropna=False, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        panel = label(key[0], options.get("panel_labels")) if panels else "all"
        cells[(panel, label(key[-2], options.get("row_labels")), as_text(key[-1]))] = cell(
            frame, column, convert
        )
    order = [as_text(c) for c in options.get("column_order", [])]
    names = order + sorted({c for _, _, c in cells} - set(order))
    report = Report(meta["recipe"], meta["scale"], meta["title"], intro(meta, runs))
    for panel in dict.fromkeys(p for p, _, _ in cells):
        table, means = _panel(cells, panel, names, options, lower_is_better)
        slug = re.sub(r"[^a-z0-9]+", "_", panel.lower()).strip("_")
        report.add_table(
            f"grid_{slug}",
            table,
            f"{panel}: {ylabel}",
            "Ours (mean ± std over seeds; row best in bold), with the paper's value below "
            "each where it reports one.",
        )
        if means.notna().any().any():
            figure = heatmap(means, f"{meta['title']} — {panel}", ylabel)
            report.add_figure(f"grid_{slug}", figure, f"{panel}: heatmap of the means")
        report.claims += _claims(cells, panel, options, lower_is_better, meta)
    return report


def _panel(cells, panel, names, options, lower_is_better):
    row_names = list(dict.fromkeys(r for p, r, _ in cells if p == panel))
    paper = (options.get("paper") or {}).get(panel) or {}
    records, means = [], pd.DataFrame(index=row_names, columns=names, dtype=float)
    for row in row_names:
        present = [cells[(panel, row, c)] for c in names if (panel, row, c) in cells]
        values = [c.stats.mean for c in present if not math.isnan(c.stats.mean)]
        best = (min(values) if lower_is_better else max(values)) if values else None
        record = {"activation": row}
        paper_row = {"activation": f"{row} (paper)"}
        for name in names:
            c = cells.get((panel, row, name))
            text = "" if c is None else c.text(3)
            record[name] = f"**{text}**" if c is not None and c.stats.mean == best else text
            if c is not None:
                means.loc[row, name] = c.stats.mean
            value = (paper.get(row) or {}).get(name)
            paper_row[name] = "" if value is None else f"{value:g}"
        records.append(record)
        if any(paper_row[n] for n in names):
            records.append(paper_row)
    return pd.DataFrame(records), means.dropna(axis=1, how="all")


def _claims(cells, panel, options, lower_is_better, meta) -> list[Claim]:
    claims = []
    paper = (options.get("paper") or {}).get(panel) or {}
    for spec in options.get("comparisons", []):
        method_name, base_name = as_text(spec["method"]), as_text(spec["baseline"])
        for row in dict.fromkeys(r for p, r, _ in cells if p == panel):
            method, base = cells.get((panel, row, method_name)), cells.get((panel, row, base_name))
            if method is None or base is None:
                continue
            comparison = paired_comparison(method.values, base.values)
            p_method = (paper.get(row) or {}).get(method_name)
            p_base = (paper.get(row) or {}).get(base_name)
            known = p_method is not None and p_base is not None
            direction = paper_direction(p_method, p_base, lower_is_better) if known else 1
            verdict, reason = comparison_verdict(comparison, lower_is_better, direction)
            claims.append(
                Claim(
                    meta["recipe"],
                    meta["scale"],
                    claim_text(
                        spec["claim"].format(activation=row, panel=panel),
                        direction,
                        method_name,
                        base_name,
                        f" for {row} on {panel}",
                    ),
                    f"{p_method:g} vs {p_base:g}" if known else "method better than baseline",
                    f"{method.text(3)} vs {base.text(3)} (Δ {comparison.mean_diff:+.3f}, "
                    f"n={comparison.n})",
                    verdict,
                    reason,
                )
            )
    return claims
