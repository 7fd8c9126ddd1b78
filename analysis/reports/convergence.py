"""Convergence-speed claims: epochs each run needs to reach an accuracy, method against baseline.

Option ``convergence``: ``{method, baseline, expect, threshold, claim}``. ``threshold`` is a
number in the report's unit, or ``paper_baseline`` (the paper's number for the baseline arm of
that row and group: "LRD reaches SGDM's final paper accuracy sooner"). A run reaches the
threshold at the first epoch whose value is at least as good; a run that never does counts as
epochs + 1 (censored), and is named as such. Epochs are compared seed by seed, fewer is better;
a seed whose two runs both never get there is a tie, and a claim whose every paired seed is such
a tie is untestable (the threshold is out of reach of the protocol, not a matter of seeds).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..aggregate import seed_stats
from ..render import mean_std
from ..verdicts import DIRECTIONAL, Draft, Evidence
from ._claims import ClaimSpec, compare, relation
from ._common import Cell, as_text, units

EXPLANATION = (
    "The first epoch at which each run's test value is at least as good as the threshold; a run "
    "that never gets there counts as epochs + 1 (censored). Mean ± std over seeds."
)


def check(options: dict[str, Any] | None, arms: set[str]) -> None:
    if not options:
        return
    spec = _spec(options)
    unknown = {as_text(spec.method), as_text(spec.baseline)} - arms
    if unknown:
        raise ValueError(f"report.convergence: unknown arms {sorted(unknown)}")
    threshold = options.get("threshold")
    if threshold != "paper_baseline" and not isinstance(threshold, (int, float)):
        raise ValueError("report.convergence.threshold: a number, or paper_baseline")


def _spec(options: dict[str, Any]) -> ClaimSpec:
    values = {k: v for k, v in options.items() if k not in ("threshold", "metric")}
    spec = ClaimSpec.model_validate(values)
    if spec.expect == "equivalent":
        raise ValueError("report.convergence: expect better or worse")
    return spec


def epochs_to_reach(curve: pd.DataFrame, threshold: float, higher: bool, epochs: int) -> int:
    """The first step of ``curve`` (step, value) at or past ``threshold``; epochs + 1 if none."""
    hit = curve[curve["value"] >= threshold] if higher else curve[curve["value"] <= threshold]
    return int(hit["step"].min()) if len(hit) else epochs + 1


def claims(table, options: dict[str, Any], runs: pd.DataFrame, history, scale: str):
    """Drafts (one per row and group) and the table of epochs to reach the threshold."""
    from .comparison import _paper

    settings = options["convergence"]
    spec = _spec(settings)
    convert, lower_is_better, _ = units(options)
    metric = settings.get("metric", options.get("metric", "test_error"))
    method_name = table.arms.get(as_text(spec.method), as_text(spec.method))
    base_name = table.arms.get(as_text(spec.baseline), as_text(spec.baseline))
    seeds = dict(zip(runs["run_id"], runs["seed"]))
    statuses = dict(zip(runs["run_id"], runs["status"]))
    budget = dict(zip(runs["run_id"], pd.to_numeric(runs.get("param.epochs"), errors="coerce")))
    drafts, records = [], []
    for row, group in table.slots:
        if not spec.applies(group=group, row=table.setup[row]):
            continue
        threshold = settings["threshold"]
        if threshold == "paper_baseline":
            threshold = _paper(options, table.setup[row], group, base_name)
            if threshold is None:
                continue
        cells, never = {}, {}
        for name in (method_name, base_name):
            ids = table.run_ids.get((row, group, name), [])
            curves = (
                history(ids, metric) if ids else pd.DataFrame(columns=["run_id", "step", "value"])
            )
            values, censored = {}, []
            for run_id, curve in curves.groupby("run_id"):
                if statuses.get(run_id) != "FINISHED":
                    continue
                epochs = int(budget.get(run_id) or curve["step"].max())
                curve = curve.assign(value=curve["value"].map(convert))
                reached = epochs_to_reach(curve, threshold, not lower_is_better, epochs)
                values[int(seeds[run_id])] = float(reached)
                if reached > epochs:
                    censored.append(int(seeds[run_id]))
            stats = seed_stats(list(values.values()))
            cells[name] = Cell(values, stats, len(ids), 0)
            never[name] = set(censored)
            records.append(
                {
                    "row": table.name(row, group),
                    "arm": name,
                    "threshold": f"{threshold:g}",
                    "epochs to reach": mean_std(stats.mean, stats.std, stats.n, 1),
                    "never reached (seeds)": ", ".join(map(str, sorted(censored))),
                }
            )
        # Epochs: fewer is better, whatever the metric's own direction.
        evidence = compare(
            spec, cells[method_name], cells[base_name], True, None, (method_name, base_name)
        )
        paired = set(cells[method_name].values) & set(cells[base_name].values)
        if paired and paired <= never[method_name] & never[base_name]:
            evidence = _out_of_reach(evidence, threshold, len(paired))
        text = (
            spec.claim or "{method} reaches {threshold} in fewer epochs than {baseline} on {row}"
        ).format(
            method=method_name,
            baseline=base_name,
            row=table.name(row, None),
            group=group or "",
            threshold=f"{threshold:g}",
            relation=relation(spec.expect),
        )
        measured = f"{cells[method_name].text(1)} vs {cells[base_name].text(1)} epochs" + (
            f" (Δ {evidence.estimate:+.1f}, n={evidence.n})" if evidence.n else ""
        )
        paper = "the paper's learning curves (no number given)"
        drafts.append(Draft(text, paper, measured, evidence, "", spec.counted_in or ""))
    return drafts, pd.DataFrame(records)


def _out_of_reach(evidence: Evidence, threshold: float, n: int) -> Evidence:
    """No paired seed reached the threshold in either arm: nothing to compare, whatever n is."""
    why = f"neither arm reaches {threshold:g} within its epochs in any of the {n} paired seeds"
    return Evidence(
        DIRECTIONAL, evidence.n, evidence.estimate, untestable=why, missing=evidence.missing
    )
