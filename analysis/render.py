"""Writing a report: Markdown with its tables and figures, CSV + Parquet per table, PNG per figure.

A :class:`Report` is data (tables as DataFrames, figures as matplotlib
figures, claims); :func:`write_report` is the only code here that touches the
filesystem, so reports are testable as data and as files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from .verdicts import Claim

# How a stored error fraction is shown: conversion, whether lower is better, axis label.
UNITS: dict[str, tuple[Callable[[float], float], bool, str]] = {
    "error%": (lambda v: 100.0 * v, True, "{error} (%)"),
    "accuracy%": (lambda v: 100.0 * (1.0 - v), False, "{accuracy} (%)"),
    "error": (lambda v: v, True, "{error}"),
}
METRIC_NAMES = {
    "val_error": ("validation error", "validation accuracy"),
    "test_error": ("test error", "test accuracy"),
    "best_val_error": ("best validation error", "best validation accuracy"),
    "test_error_at_best": ("test error at the best epoch", "test accuracy at the best epoch"),
}


def unit(name: str, metric: str = "test_error") -> tuple[Callable[[float], float], bool, str]:
    """``(convert, lower_is_better, label)`` for showing ``metric`` in unit ``name``."""
    if name not in UNITS:
        raise ValueError(f"unknown unit {name!r}; choose one of {sorted(UNITS)}")
    convert, lower_is_better, template = UNITS[name]
    error, accuracy = METRIC_NAMES.get(metric.removeprefix("metric."), (metric, metric))
    return convert, lower_is_better, template.format(error=error, accuracy=accuracy)


def mean_std(mean: float, std: float, n: int, digits: int = 2) -> str:
    """``"6.38 ± 0.12"``; a single seed shows its value alone, nothing shows ``n/a``."""
    if n == 0 or math.isnan(mean):
        return "n/a"
    if n < 2 or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``frame`` (values as they are; NaN shown as empty)."""
    if frame.empty:
        return "_no rows_"
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = [
        "| " + " | ".join("" if _missing(v) else str(v) for v in row) + " |"
        for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *body])


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass
class Section:
    heading: str
    text: str = ""
    table: str | None = None
    figure: str | None = None


@dataclass
class Report:
    """A rendered recipe: what was run, what it found, and the evidence."""

    recipe: str
    scale: str
    title: str
    intro: str
    sections: list[Section] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)

    def add_table(self, name: str, frame: pd.DataFrame, heading: str, text: str = "") -> None:
        self.tables[name] = frame
        self.sections.append(Section(heading, text, table=name))

    def add_figure(self, name: str, figure: Figure, heading: str, text: str = "") -> None:
        self.figures[name] = figure
        self.sections.append(Section(heading, text, figure=name))


def _p(value: float | None) -> str:
    return "" if value is None else f"{value:.2g}"


def claims_table(claims: Sequence[Claim]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "claim": c.claim,
                "kind": c.kind,
                "paper": c.paper,
                "measured": c.measured,
                "n": c.n,
                "p (Holm)": f"{_p(c.p)} ({_p(c.p_adjusted)})" if c.p is not None else "",
                "verdict": f"**{c.verdict}**"
                + (f" (counted in {c.counted_in})" if c.counted_in else ""),
                "why": c.reason,
            }
            for c in claims
        ]
    )


def to_markdown(report: Report) -> str:
    lines = [f"# {report.title}", "", report.intro.strip(), ""]
    if report.claims:
        lines += ["## Verdicts", "", markdown_table(claims_table(report.claims)), ""]
    for section in report.sections:
        lines += [f"## {section.heading}", ""]
        if section.text:
            lines += [section.text.strip(), ""]
        if section.table is not None:
            lines += [markdown_table(report.tables[section.table]), ""]
            lines += [f"([CSV]({section.table}.csv), [Parquet]({section.table}.parquet))", ""]
        if section.figure is not None:
            lines += [f"![{section.heading}]({section.figure}.png)", ""]
    return "\n".join(lines).rstrip() + "\n"


def write_report(report: Report, out_dir: str | Path) -> list[Path]:
    """Write ``README.md``, ``claims.json``, a CSV and a Parquet per table and a PNG per figure."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in report.tables.items():
        plain = frame.map(lambda v: v.replace("**", "") if isinstance(v, str) else v)
        plain.to_csv(out / f"{name}.csv", index=False)
        plain.astype({c: str for c in plain.columns if plain[c].dtype == object}).to_parquet(
            out / f"{name}.parquet", index=False
        )
        written += [out / f"{name}.csv", out / f"{name}.parquet"]
    for name, figure in report.figures.items():
        figure.savefig(out / f"{name}.png", dpi=120, bbox_inches="tight")
        plt.close(figure)
        written.append(out / f"{name}.png")
    (out / "claims.json").write_text(json.dumps([c.to_dict() for c in report.claims], indent=2))
    (out / "README.md").write_text(to_markdown(report))
    return [*written, out / "claims.json", out / "README.md"]
