"""What a search space is: constants, and either an Optuna define-by-run function or a paper grid.

A space says only *what to try*. Constants switch the method on (e.g.
``activation: drop_activation``); an Optuna space is a function that calls
``trial.suggest_*`` and returns the constants (define-by-run); a paper grid is
plain data, axis name -> values. Seeds are not part of a space: the study adds
them as an axis of every space (``--repeats K``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

DefineByRun = Callable[[optuna.Trial], dict[str, Any]]


@dataclass(frozen=True)
class SearchSpace:
    """A named space over trial-config keys, for Optuna (``define``) or exhaustive (``grid``)."""

    name: str
    method: str
    description: str
    constants: Mapping[str, Any] = field(default_factory=dict)
    define: DefineByRun | None = None
    grid: Mapping[str, Sequence[Any]] | None = None

    def __post_init__(self) -> None:
        if (self.define is None) == (self.grid is None):
            raise ValueError(f"space {self.name!r} needs exactly one of define= or grid=")

    @property
    def kind(self) -> str:
        return "grid" if self.grid is not None else "optuna"

    def distributions(self) -> dict[str, BaseDistribution]:
        """The Optuna distributions ``define`` can ask for, over all its branches."""
        return {name: dist for name, (dist, _) in self._explore().items()}

    def _explore(self, trials: int = 64) -> dict[str, tuple[BaseDistribution, dict[str, Any]]]:
        """Run ``define`` on seeded random throwaway trials, so conditional branches are seen.

        Returns, per parameter, its distribution and the constants ``define``
        returned in the first trial that asked for it.
        """
        if self.define is None:
            return {}
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        seen: dict[str, tuple[BaseDistribution, dict[str, Any]]] = {}
        for _ in range(trials):
            trial = study.ask()
            returned = self.define(trial) or {}
            for name, dist in trial.distributions.items():
                seen.setdefault(name, (dist, {**returned, **trial.params}))
        return seen

    def grid_points(self) -> list[dict[str, Any]]:
        """Every point of the grid (the Cartesian product of its axes), constants included."""
        if self.grid is None:
            return []
        axes = list(self.grid)
        return [
            {**self.constants, **dict(zip(axes, values))}
            for values in itertools.product(*(self.grid[a] for a in axes))
        ]

    def extreme_points(self) -> list[dict[str, Any]]:
        """Configs at every bound of every axis: what must be legal for the whole space to be."""
        if self.grid is not None:
            return self.grid_points()
        points = []
        for name, (dist, context) in self._explore().items():
            for value in _extremes(dist):
                points.append({**self.constants, **context, name: value})
        return points or [dict(self.constants)]

    def describe(self) -> dict[str, Any]:
        """A plain-data description, logged to MLflow beside the sweep."""
        body: dict[str, Any] = {"name": self.name, "method": self.method, "kind": self.kind}
        body["constants"] = dict(self.constants)
        if self.grid is not None:
            body["grid"] = {k: list(v) for k, v in self.grid.items()}
        else:
            body["distributions"] = {k: repr(d) for k, d in self.distributions().items()}
        return body


def _extremes(dist: BaseDistribution) -> list[Any]:
    if isinstance(dist, (FloatDistribution, IntDistribution)):
        return [dist.low, dist.high]
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    raise TypeError(f"unsupported distribution {dist!r}")
