"""Wins per normalization per activation over many datasets (VCL Table 4).

Options: ``metric`` (the reported error, e.g. ``test_error_at_best``: test
error at the epoch of best validation error), ``unit``; ``datasets``,
``activations`` (+ ``activation_labels``) and ``norms`` columns, ``norm_order``;
``select`` (``{over: [columns], by: metric}``: per dataset, activation and
norm, keep the config, e.g. the depth, with the best mean ``by``, as the paper
selects its architecture on validation error); ``paper`` (activation label ->
norm -> wins); ``claims``: declared claims (:mod:`._claims`, ``expect: better``
or ``worse``), judged by an exact one-sided sign test over the datasets where the two differ.

A win (as the paper counts them): the norm reaches the lowest error among the
norms for that dataset and activation, unless all of them are equal.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..render import Report
from ..verdicts import Draft, count, decide
from ._claims import parse_claims
from ._common import as_text, cell, intro, label, metric_column, require, units


def _selected(frame: pd.DataFrame, options: dict[str, Any], column: str, convert) -> float:
    select = options.get("select")
    if not select:
        return cell(frame, column, convert).stats.mean
    by = select["by"] if select["by"].startswith("metric.") else f"metric.{select['by']}"
    frame = require(frame, [by, *select["over"]])
    best, best_score = math.nan, math.inf
    for _, option in frame.groupby(select["over"], dropna=False, sort=False):
        score = cell(option, by, lambda v: v).stats.mean
        if not math.isnan(score) and score < best_score:
            best_score, best = score, cell(option, column, convert).stats.mean
    return best


def build(meta: dict[str, Any], options: dict[str, Any], runs: pd.DataFrame, history) -> Report:
    check(options)
    column = metric_column(options)
    convert, lower_is_better, ylabel = units(options)
    datasets, activations, norms = options["datasets"], options["activations"], options["norms"]
    runs = require(runs, [datasets, activations, norms, column, "seed", "status"])
    order = [as_text(n) for n in options.get("norm_order", [])]
    values: dict[tuple[str, str], dict[str, float]] = {}
    for (dataset, activation, norm), frame in runs.groupby(
        [datasets, activations, norms], sort=False
    ):
        slot = (as_text(dataset), label(activation, options.get("activation_labels")))
        values.setdefault(slot, {})[as_text(norm)] = _selected(frame, options, column, convert)
    names = order + sorted({n for per in values.values() for n in per} - set(order))

    per_dataset = []
    wins = {a: dict.fromkeys(names, 0) for a in _activation_order(values, options)}
    for (dataset, activation), per in sorted(values.items()):
        scores = {n: v for n, v in per.items() if not math.isnan(v)}
        best = (min if lower_is_better else max)(scores.values()) if scores else None
        constant = len(set(scores.values())) <= 1
        record = {"dataset": dataset, "activation": activation}
        for name in names:
            v = per.get(name, math.nan)
            won = best is not None and not constant and v == best
            wins[activation][name] += int(won)
            record[name] = "" if math.isnan(v) else (f"**{v:.2f}**" if won else f"{v:.2f}")
        per_dataset.append(record)

    report = Report(
        meta["recipe"], meta["scale"], meta["title"], intro(meta, runs, history=history)
    )
    report.add_table(
        "wins",
        _wins_table(wins, names, options),
        "Wins per normalization",
        "Ours over the datasets run here; the paper's over its 44 UCI sets.",
    )
    report.add_table(
        "per_dataset",
        pd.DataFrame(per_dataset),
        f"Per dataset, {ylabel}",
        "Each cell is the mean over seeds of the selected configuration; wins in bold.",
    )
    report.add_figure("wins", _wins_figure(wins, names), "Wins per normalization and activation")
    report.claims = decide(
        _claims(values, options, lower_is_better, meta), meta["recipe"], meta["scale"]
    )
    return report


def _wins_table(wins, names, options) -> pd.DataFrame:
    paper = options.get("paper") or {}
    records = []
    for name in names:
        record = {"normalization": name}
        for activation, counts in wins.items():
            record[activation] = counts[name]
            if activation in paper:
                record[f"{activation} (paper)"] = paper[activation].get(name, "")
        records.append(record)
    return pd.DataFrame(records)


def _wins_figure(wins, names):
    activations = list(wins)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        x = np.arange(len(activations)) + (i - (len(names) - 1) / 2) * width
        ax.bar(x, [wins[a][name] for a in activations], width, label=name)
    ax.set_xticks(np.arange(len(activations)), activations)
    ax.set_ylabel("datasets won")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def _activation_order(values, options) -> list[str]:
    order = list((options.get("activation_labels") or {}).values())
    present = {a for _, a in values}
    return [a for a in order if a in present] + sorted(present - set(order))


def _claims(values, options, lower_is_better, meta) -> list[Draft]:
    drafts = []
    paper = options.get("paper") or {}
    for spec in parse_claims(options.get("claims"), "report.claims"):
        if spec.expect == "equivalent":
            raise ValueError("report.claims: a wins claim is better or worse")
        method, baseline = as_text(spec.method), as_text(spec.baseline)
        for activation in _activation_order(values, options):
            if not spec.applies(activation=activation):
                continue
            better = worse = 0
            for (_, act), per in values.items():
                m, b = per.get(method, math.nan), per.get(baseline, math.nan)
                if act != activation or math.isnan(m) or math.isnan(b) or m == b:
                    continue
                if (m < b) == lower_is_better:
                    better += 1
                else:
                    worse += 1
            wins, losses = (better, worse) if spec.expect == "better" else (worse, better)
            counts = paper.get(activation, {})
            drafts.append(
                Draft(
                    (spec.claim or "{activation}: {method} against {baseline}").format(
                        activation=activation, method=method, baseline=baseline
                    ),
                    f"wins {counts.get(method, '?')} vs {counts.get(baseline, '?')} (of 44 sets)",
                    f"{method} better on {better}, {baseline} on {worse} datasets",
                    count(wins, losses, "datasets"),
                    counted_in=spec.counted_in or "",
                )
            )
    return drafts


def check(options: dict[str, Any]) -> None:
    for spec in parse_claims(options.get("claims"), "report.claims"):
        if spec.expect == "equivalent":
            raise ValueError("report.claims: a wins claim is better or worse")
