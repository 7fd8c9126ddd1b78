"""Activation x normalization grid (VCL Table 2): a table and a heatmap per dataset, and verdicts.

Options: ``metric``, ``unit``; ``panels`` (column splitting the grid, e.g.
``sweep.part``) with ``panel_labels``; ``rows`` (e.g. ``param.activation``)
with ``row_labels``; ``columns`` (e.g. ``param.variant.name``) with
``column_order``; ``paper`` (panel label -> row label -> column -> value);
``comparisons``: declared claims between two columns (:mod:`._claims`; ``where:
{activation: [...]}`` limits one to some rows), tested in every panel.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

from ..plots import heatmap
from ..render import Report
from ..setups import row_name, what_ran
from ..verdicts import Draft, decide
from ._claims import compare, draft, paper_text, parse_claims, relation
from ._common import Cell, as_text, cell, intro, label, metric_column, require, units


def build(meta: dict[str, Any], options: dict[str, Any], runs: pd.DataFrame, history) -> Report:
    check(options)
    column = metric_column(options)
    convert, lower_is_better, ylabel = units(options)
    panels, rows, columns = options.get("panels"), options["rows"], options["columns"]
    runs = require(runs, [rows, columns, column, "seed", "status", *([panels] if panels else [])])
    cells: dict[tuple[str, str, str], Cell] = {}
    shown: dict[str, str] = {}
    keys = [k for k in (panels, rows, columns) if k]
    for key, frame in runs.groupby(keys, dropna=False, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        panel = label(key[0], options.get("panel_labels")) if panels else "all"
        shown.setdefault(panel, row_name(what_ran(frame.iloc[0]), panel, meta["scale"]))
        cells[(panel, label(key[-2], options.get("row_labels")), as_text(key[-1]))] = cell(
            frame, column, convert
        )
    order = [as_text(c) for c in options.get("column_order", [])]
    names = order + sorted({c for _, _, c in cells} - set(order))
    report = Report(
        meta["recipe"], meta["scale"], meta["title"], intro(meta, runs, history=history)
    )
    drafts: list[Draft] = []
    for panel in dict.fromkeys(p for p, _, _ in cells):
        table, means = _panel(cells, panel, names, options, lower_is_better)
        slug = re.sub(r"[^a-z0-9]+", "_", panel.lower()).strip("_")
        report.add_table(
            f"grid_{slug}",
            table,
            f"{shown[panel]}: {ylabel}",
            "Ours (mean ± std over seeds; row best in bold), with the paper's value below "
            "each where it reports one.",
        )
        if means.notna().any().any():
            figure = heatmap(means, f"{meta['title']} — {panel}", ylabel)
            report.add_figure(f"grid_{slug}", figure, f"{panel}: heatmap of the means")
        drafts += _claims(cells, panel, shown[panel], options, lower_is_better, meta)
    report.claims = decide(drafts, meta["recipe"], meta["scale"])
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


def _claims(cells, panel, shown, options, lower_is_better, meta) -> list[Draft]:
    drafts = []
    paper = (options.get("paper") or {}).get(panel) or {}
    for spec in parse_claims(options.get("comparisons"), "report.comparisons"):
        method_name, base_name = as_text(spec.method), as_text(spec.baseline)
        for row in dict.fromkeys(r for p, r, _ in cells if p == panel):
            if not spec.applies(activation=row, panel=panel):
                continue
            method, base = cells.get((panel, row, method_name)), cells.get((panel, row, base_name))
            if method is None or base is None:
                continue
            p_method = (paper.get(row) or {}).get(method_name)
            p_base = (paper.get(row) or {}).get(base_name)
            effect = None if p_method is None or p_base is None else p_method - p_base
            labels = (method_name, base_name)
            evidence = compare(spec, method, base, lower_is_better, effect, labels)
            text = (
                spec.claim or "{panel}, {activation}: {method} is {relation} {baseline}"
            ).format(
                activation=row,
                panel=shown,
                method=method_name,
                baseline=base_name,
                relation=relation(spec.expect),
            )
            stand_in = panel if meta["scale"] != "paper" else None
            key = f"{meta.get('paper', '')}:{panel}:{row}:{method_name} vs {base_name}"
            drafts.append(
                draft(
                    spec,
                    text,
                    paper_text(spec, p_method, p_base, stand_in),
                    method,
                    base,
                    evidence,
                    key,
                )
            )
    return drafts


def check(options: dict[str, Any]) -> None:
    parse_claims(options.get("comparisons"), "report.comparisons")
