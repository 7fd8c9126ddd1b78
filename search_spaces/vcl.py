"""VCL's loss weight gamma and subset size n (papers.md, VCL; Table 2 varies n at gamma = 0.01)."""

from __future__ import annotations

from typing import Any

import optuna

from ._base import SearchSpace

GAMMA_RANGE = (1e-4, 1e-1)
N_VALUES = (2, 3, 5, 7, 9)
PAPER_GAMMA = 0.01
CONSTANTS = {"norm": "vcl"}


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    trial.suggest_float("vcl_gamma", *GAMMA_RANGE, log=True)
    trial.suggest_categorical("vcl_n", N_VALUES)
    return dict(CONSTANTS)


SPACE = SearchSpace(
    name="vcl",
    method="vcl",
    description="gamma ~ log-U[1e-4, 1e-1], n in {2, 3, 5, 7, 9}",
    constants=CONSTANTS,
    define=suggest,
)
GRID = SearchSpace(
    name="vcl_grid",
    method="vcl",
    description="Table 2: n in {2, 3, 5, 7, 9} at gamma = 0.01",
    constants={**CONSTANTS, "vcl_gamma": PAPER_GAMMA},
    grid={"vcl_n": N_VALUES},
)
