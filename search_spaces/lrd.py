"""Learning Rate Dropout's keep probability p and the optimizer it wraps (papers.md, LRD)."""

from __future__ import annotations

from typing import Any

import optuna

from ._base import SearchSpace

P_RANGE = (0.1, 1.0)
OPTIMIZERS = ("sgd", "rmsprop", "adam", "amsgrad", "radam")
TABLE2_GRID = (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    trial.suggest_float("lrd_p", *P_RANGE)
    trial.suggest_categorical("optimizer", OPTIMIZERS)
    return {}


SPACE = SearchSpace(
    name="lrd",
    method="lrd",
    description="p ~ U[0.1, 1.0] and the optimizer among SGDM, RMSprop, Adam, AMSGrad, RAdam",
    define=suggest,
)
GRID = SearchSpace(
    name="lrd_grid",
    method="lrd",
    description="Table 2: p in {0.1, 0.3, 0.5, 0.7, 0.9, 1.0}",
    grid={"lrd_p": TABLE2_GRID},
)
