"""The one activation factory every model uses (timm's ``get_act_layer`` habit).

A model asks ``activation_factory(name, **kwargs)`` once and calls the result
for each activation it places, so every activation is a module that
``replace_activations`` can find, and swapping one is a single argument.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial

from torch import nn

from trainables.regularizers import DropActivation

ActivationFactory = Callable[[], nn.Module]


def _relu() -> nn.Module:
    return nn.ReLU()


def _leaky_relu(slope: float = 0.01) -> nn.Module:
    return nn.LeakyReLU(negative_slope=slope)


def _elu(alpha: float = 1.0) -> nn.Module:
    return nn.ELU(alpha=alpha)


def _selu() -> nn.Module:
    return nn.SELU()


def _rrelu(lower: float = 1 / 8, upper: float = 1 / 3) -> nn.Module:
    return nn.RReLU(lower=lower, upper=upper)


def _drop_activation(p: float = 0.95) -> nn.Module:
    return DropActivation(p=p)


ACTIVATIONS: dict[str, Callable[..., nn.Module]] = {
    "relu": _relu,
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "selu": _selu,
    "rrelu": _rrelu,
    "drop_activation": _drop_activation,
}


def list_activations() -> list[str]:
    return sorted(ACTIVATIONS)


def activation_kwargs(name: str) -> frozenset[str]:
    """The keyword arguments activation ``name`` accepts (e.g. ``slope``, ``p``)."""
    return frozenset(inspect.signature(_lookup(name)).parameters)


def _lookup(name: str) -> Callable[..., nn.Module]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {list_activations()}")
    return ACTIVATIONS[name]


def activation_factory(name: str, **kwargs: float) -> ActivationFactory:
    """A zero-argument callable that builds a fresh ``name`` activation module each call."""
    builder = _lookup(name)
    unknown = set(kwargs) - activation_kwargs(name)
    if unknown:
        raise ValueError(
            f"activation {name!r} takes {sorted(activation_kwargs(name)) or 'no options'}, "
            f"got {sorted(unknown)}"
        )
    factory = partial(builder, **kwargs)
    factory()
    return factory
