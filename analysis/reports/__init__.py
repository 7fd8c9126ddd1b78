"""Report kinds: how a recipe's runs become tables, figures and verdicts.

``build_report(meta, options, runs, history)`` dispatches on ``options["kind"]``
to one module per kind; a new kind is one module plus one line in ``_KINDS``.
Builders get plain data (the runs table from :mod:`analysis.query`, and a
``history(run_ids, metric)`` function for learning curves) and return a
:class:`analysis.render.Report`; they never read MLflow or write files.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

import pandas as pd

from ..render import Report
from ._common import with_off_knobs

History = Callable[[list[str], str], pd.DataFrame]

_KINDS = {
    "comparison": "comparison",
    "curve": "curve",
    "norm_grid": "norm_grid",
    "wins": "wins",
}


def list_report_kinds() -> list[str]:
    return sorted(_KINDS)


def build_report(
    meta: dict[str, Any],
    options: dict[str, Any],
    runs: pd.DataFrame,
    history: History | None = None,
) -> Report:
    """The report of kind ``options["kind"]`` for ``runs``; unknown kinds list the known ones."""
    return _module(options).build(meta, options, with_off_knobs(runs), history)


def check_report(options: dict[str, Any]) -> None:
    """Refuse a recipe's report section that a build would fail on: an unknown kind, a claim
    without a direction, an equivalence claim without its margin, unknown arms."""
    _module(options).check(options)


def _module(options: dict[str, Any]):
    kind = options.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown report kind {kind!r}; choose one of {list_report_kinds()}")
    return import_module(f"{__name__}.{_KINDS[kind]}")
