"""The power table: for each claim, what its seeds can resolve and what the paper's effect needs.

This is how a user decides how many seeds to buy on a cluster: ``study power RECIPE`` reads a
recipe's runs from MLflow (a pilot is enough) and prints, per claim, the paired seeds so far,
the measured difference, the smallest effect those seeds detect at 80% power (one-sided
α = 0.025), the paper's effect, and the seeds an effect of that size needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .verdicts import Claim


def _number(value: float | None, digits: str = ".3g") -> str:
    return "" if value is None else format(value, digits)


def power_table(claims: Sequence[Claim]) -> pd.DataFrame:
    """One row per claim: n, interval, minimum detectable effect, paper's effect, seeds needed."""
    rows = []
    for c in claims:
        needed = c.seeds_needed
        if needed is None and c.paper_effect:
            needed_text = "over 1000" if c.mde is not None else "3+ to estimate"
        else:
            needed_text = "" if needed is None else str(needed)
        rows.append(
            {
                "claim": c.claim,
                "kind": c.kind,
                "n": c.n,
                "interval": (
                    f"[{c.ci_low:+.3g}, {c.ci_high:+.3g}]" if c.ci_low is not None else ""
                ),
                "MDE (80%)": _number(c.mde),
                "paper's effect": _number(c.paper_effect, "+.3g"),
                "seeds for it": needed_text,
                "verdict": c.verdict,
            }
        )
    return pd.DataFrame(rows)
