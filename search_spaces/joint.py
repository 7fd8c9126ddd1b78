"""All three methods' knobs at once, each switchable: do they compose? (No paper asked.)

The switches are knobs of the search, not of a trial, so they live under ``search/``: Ray
turns them into ``config["search"]``, which trials ignore. Each method's own part of the space
is its record's (:mod:`trainables.methods`).
"""

from __future__ import annotations

from typing import Any

import optuna

from trainables.methods import get_method

from ._base import SearchSpace

METHODS = ("drop_activation", "vcl", "lrd")


def suggest(trial: optuna.Trial) -> dict[str, Any]:
    constants: dict[str, Any] = {}
    for name in METHODS:
        if trial.suggest_categorical(f"search/use_{name}", (True, False)):
            constants.update(_part(name, trial))
    return constants


def _part(name: str, trial: optuna.Trial) -> dict[str, Any]:
    """A method's own space; LRD's without its optimizer axis (the joint space fixes one)."""
    if name == "lrd":
        trial.suggest_float("lrd_p", 0.1, 1.0)
        return {}
    return get_method(name).space(trial)


def _default(name: str, knob: str) -> Any:
    return next(k.default for k in get_method(name).knobs if k.name == knob)


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
    constants={
        "da_p": _default("drop_activation", "da_p"),
        "vcl_gamma": _default("vcl", "vcl_gamma"),
        "vcl_n": _default("vcl", "vcl_n"),
    },
)
