"""A method record: everything regstudy knows about one regularizer (or baseline), in one place.

A record names its knobs (the flat config keys a user sets, a sweep varies and MLflow logs),
when it acts, where it plugs into a trial, and what a search explores. Config validation, the
trainer, model building, search spaces, progress and tracking all read records; nothing else
names a method's knobs.

Where a record plugs in is the hooks it sets:

- ``module``: it *is* a choice of activation (``module(**args)``) or normalization
  (``module(num_features, dims, **args)``), chosen by ``activation=``/``norm=`` its name;
- ``model``: it transforms the built model (``model(net, **args) -> net``);
- ``wrap``: it wraps the optimizer (``wrap(optimizer, **args)``), innermost first by ``order``;
- ``penalty``: it adds ``weight · penalty(model)`` to the loss and logs ``<name>_penalty``;
- ``gradients``: it transforms the gradients after backward (``gradients(model, **args)``);
- ``labels``: it transforms the training labels (``labels(y, num_classes, **args)``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._constraints import Constraint

SLOTS = ("activation", "norm", "additive")
HOOKS = ("module", "model", "wrap", "penalty", "gradients", "labels")


@dataclass(frozen=True)
class Knob:
    """One setting of a method: its config key, default, constraint and the argument it feeds."""

    name: str
    default: Any
    constraint: Constraint
    argument: str | None = None
    help: str = ""

    def check(self, value: Any, config: Any) -> str | None:
        return self.constraint.message(self.name, value, config)


@dataclass(frozen=True)
class Grid:
    """A paper's grid over knobs: axis -> values, with the constants that switch the method on."""

    description: str
    axes: Mapping[str, Sequence[Any]]
    constants: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    """A regularizer or baseline, as regstudy uses it.

    ``slot`` is ``activation`` or ``norm`` for a method chosen by name (``activation=
    "drop_activation"``), else ``additive``: it acts when ``active(knobs)`` says so (LRD when
    ``lrd_p < 1``). ``space`` is an Optuna define-by-run function over its knobs (it only calls
    ``trial.suggest_*`` and returns the constants that switch the method on); ``grids`` are the
    papers' grids.
    """

    name: str
    slot: str
    summary: str
    knobs: tuple[Knob, ...] = ()
    active: Callable[[Mapping[str, Any]], bool] | None = None
    module: Callable[..., Any] | None = None
    model: Callable[..., Any] | None = None
    wrap: Callable[..., Any] | None = None
    order: int = 0
    penalty: Callable[..., Any] | None = None
    weight: str | None = None
    gradients: Callable[..., Any] | None = None
    labels: Callable[..., Any] | None = None
    full_batches: bool = False
    conv_bias: bool = False
    space: Callable[[Any], dict[str, Any]] | None = None
    space_description: str = ""
    grids: Mapping[str, Grid] = field(default_factory=dict)
    paper: str = ""

    def __post_init__(self) -> None:
        if self.slot not in SLOTS:
            raise ValueError(f"method {self.name!r}: slot must be one of {list(SLOTS)}")
        if self.slot == "additive" and self.active is None:
            raise ValueError(f"method {self.name!r}: an additive method needs active=")
        if self.slot != "additive" and self.module is None:
            raise ValueError(f"method {self.name!r}: an {self.slot} needs module=")
        if self.penalty is not None and self.weight not in {k.name for k in self.knobs}:
            raise ValueError(f"method {self.name!r}: penalty= needs weight= one of its knobs")

    @property
    def hooks(self) -> tuple[str, ...]:
        """Where it plugs in: the hooks it sets."""
        return tuple(h for h in HOOKS if getattr(self, h) is not None)

    @property
    def switch(self) -> dict[str, Any]:
        """The config that chooses it (``{"activation": name}``), empty for additive methods."""
        return {} if self.slot == "additive" else {self.slot: self.name}

    def is_active(self, config: Any) -> bool:
        if self.slot == "additive":
            assert self.active is not None
            return bool(self.active({k.name: getattr(config, k.name) for k in self.knobs}))
        return getattr(config, self.slot) == self.name

    def arguments(self, config: Any) -> dict[str, Any]:
        """The knobs' values under their hook's argument names (``da_p`` -> ``p``)."""
        return {k.argument: getattr(config, k.name) for k in self.knobs if k.argument}
