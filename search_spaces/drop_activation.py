"""Drop-Activation's retain probability p (papers.md, Drop-Activation; Figure 5 is the p-grid)."""

from __future__ import annotations

from typing import Any

import optuna

from ._base import SearchSpace

P_RANGE = (0.6, 1.0)
FIGURE5_GRID = tuple(round(0.60 + 0.05 * k, 2) for k in range(9))
CONSTANTS = {"activation": "drop_activation"}


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    trial.suggest_float("da_p", *P_RANGE)
    return dict(CONSTANTS)


SPACE = SearchSpace(
    name="drop_activation",
    method="drop_activation",
    description="p ~ U[0.6, 1.0] for Optuna (TPE)",
    constants=CONSTANTS,
    define=suggest,
)
GRID = SearchSpace(
    name="drop_activation_grid",
    method="drop_activation",
    description="Figure 5: p = 0.60, 0.65, ..., 1.00",
    constants=CONSTANTS,
    grid={"da_p": FIGURE5_GRID},
)
