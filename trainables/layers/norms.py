"""The one normalization factory every model uses; VCL is one of its choices.

``norm_factory(name, **kwargs)`` returns a :class:`NormFactory` whose
``make(num_features, dims)`` builds the layer for a conv feature map
(``dims=2``) or a flat feature vector (``dims=1``). VCL sits exactly where
batchnorm would, so a model is built with either by changing one argument.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from trainables.regularizers import VarianceConstancy


def _bn(num_features: int, dims: int) -> nn.Module:
    return nn.BatchNorm2d(num_features) if dims == 2 else nn.BatchNorm1d(num_features)


def _ln(num_features: int, dims: int) -> nn.Module:
    return nn.GroupNorm(1, num_features) if dims == 2 else nn.LayerNorm(num_features)


def _gn(num_features: int, dims: int, groups: int = 32) -> nn.Module:
    return nn.GroupNorm(math.gcd(groups, num_features), num_features)


def _none(num_features: int, dims: int) -> nn.Module:
    return nn.Identity()


def _vcl(
    num_features: int, dims: int, n: int = 2, beta_init: float = 1.0, per: str = "neuron"
) -> nn.Module:
    return VarianceConstancy(num_features, n=n, beta_init=beta_init, per=per)


NORMS: dict[str, Callable[..., nn.Module]] = {
    "bn": _bn,
    "ln": _ln,
    "gn": _gn,
    "none": _none,
    "vcl": _vcl,
}
_WITHOUT_SHIFT = frozenset({"none", "vcl"})


def list_norms() -> list[str]:
    return sorted(NORMS)


def _lookup(name: str) -> Callable[..., nn.Module]:
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; choose one of {list_norms()}")
    return NORMS[name]


def norm_kwargs(name: str) -> frozenset[str]:
    """The options norm ``name`` accepts (e.g. ``n`` and ``per`` for vcl, ``groups`` for gn)."""
    return frozenset(inspect.signature(_lookup(name)).parameters) - {"num_features", "dims"}


@dataclass(frozen=True)
class NormFactory:
    """Builds one kind of normalization layer.

    ``conv_bias``: whether the conv or linear layer before it needs its own bias.
    """

    name: str
    options: dict = field(default_factory=dict)

    @property
    def conv_bias(self) -> bool:
        return self.name in _WITHOUT_SHIFT

    def make(self, num_features: int, dims: int = 2) -> nn.Module:
        if dims not in (1, 2):
            raise ValueError(f"dims must be 1 (features) or 2 (feature maps), got {dims!r}")
        return NORMS[self.name](num_features, dims, **self.options)


def norm_factory(name: str, **kwargs: object) -> NormFactory:
    """Validate ``name`` and its options and return the factory models call for each layer."""
    _lookup(name)
    unknown = set(kwargs) - norm_kwargs(name)
    if unknown:
        raise ValueError(
            f"norm {name!r} takes {sorted(norm_kwargs(name)) or 'no options'}, "
            f"got {sorted(unknown)}"
        )
    factory = NormFactory(name, dict(kwargs))
    factory.make(8, 2)
    return factory
