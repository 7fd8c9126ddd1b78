"""All three methods' knobs at once, each switchable: do they compose? (No paper asked.)

The switches are knobs of the search, not of a trial, so they live under
``search/``: Ray turns them into ``config["search"]``, which trials ignore.
"""

from __future__ import annotations

from typing import Any

import optuna

from . import drop_activation, lrd, vcl
from ._base import SearchSpace


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    constants: dict[str, Any] = {}
    if trial.suggest_categorical("search/use_drop_activation", (True, False)):
        trial.suggest_float("da_p", *drop_activation.P_RANGE)
        constants.update(drop_activation.CONSTANTS)
    if trial.suggest_categorical("search/use_vcl", (True, False)):
        trial.suggest_float("vcl_gamma", *vcl.GAMMA_RANGE, log=True)
        trial.suggest_categorical("vcl_n", vcl.N_VALUES)
        constants.update(vcl.CONSTANTS)
    if trial.suggest_categorical("search/use_lrd", (True, False)):
        trial.suggest_float("lrd_p", *lrd.P_RANGE)
    return constants


SPACE = SearchSpace(
    name="joint",
    method="joint",
    description="Drop-Activation p, VCL gamma and n, LRD p, each method switched on or off",
    define=suggest,
)
GRID = SearchSpace(
    name="joint_grid",
    method="joint",
    description="each method alone and all three together, at the papers' defaults",
    grid={
        "activation": ("relu", "drop_activation"),
        "norm": ("bn", "vcl"),
        "lrd_p": (1.0, 0.5),
    },
    constants={"da_p": 0.95, "vcl_gamma": vcl.PAPER_GAMMA, "vcl_n": 2},
)
