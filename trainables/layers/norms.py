"""The normalizations every model can use, as method records, and the one factory models call.

``norm_factory(name, **options)`` returns a :class:`NormFactory` whose ``make(num_features,
dims)`` builds the layer for a conv feature map (``dims=2``) or a flat feature vector
(``dims=1``). VCL sits exactly where batchnorm would, so a model is built with either by
changing one argument; its record lives beside its code (trainables/regularizers/vcl.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import nn

from trainables.methods import Interval, Knob, Method, get_method, list_methods


def _bn(num_features: int, dims: int) -> nn.Module:
    return nn.BatchNorm2d(num_features) if dims == 2 else nn.BatchNorm1d(num_features)


def _ln(num_features: int, dims: int) -> nn.Module:
    return nn.GroupNorm(1, num_features) if dims == 2 else nn.LayerNorm(num_features)


def _gn(num_features: int, dims: int, groups: int = 32) -> nn.Module:
    return nn.GroupNorm(math.gcd(groups, num_features), num_features)


def _none(num_features: int, dims: int) -> nn.Module:
    return nn.Identity()


BN = Method("bn", "norm", "batch normalization", module=_bn, full_batches=True)
LN = Method("ln", "norm", "layer normalization (GroupNorm(1) on feature maps)", module=_ln)
GN = Method(
    "gn",
    "norm",
    "group normalization",
    knobs=(Knob("gn_groups", 32, Interval(1, None, integer=True), argument="groups"),),
    module=_gn,
)
NONE = Method("none", "norm", "no normalization", module=_none, conv_bias=True)


def list_norms() -> list[str]:
    return list_methods("norm")


@dataclass(frozen=True)
class NormFactory:
    """Builds one kind of normalization layer.

    ``conv_bias``: whether the conv or linear layer before it needs its own bias.
    """

    name: str
    options: dict = field(default_factory=dict)

    @property
    def conv_bias(self) -> bool:
        return get_method(self.name).conv_bias

    def make(self, num_features: int, dims: int = 2) -> nn.Module:
        if dims not in (1, 2):
            raise ValueError(f"dims must be 1 (features) or 2 (feature maps), got {dims!r}")
        return get_method(self.name).module(num_features, dims, **self.options)


def norm_factory(name: str, **options: object) -> NormFactory:
    """The factory models call for each normalization layer; ``options`` are the layer's own
    arguments (``n`` and ``per`` for VCL), checked by building one layer here."""
    if name not in list_norms():
        raise ValueError(f"unknown norm {name!r}; choose one of {list_norms()}")
    accepted = {k.argument for k in get_method(name).knobs if k.argument}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"norm {name!r} takes {sorted(accepted) or 'no options'}, got {unknown}")
    factory = NormFactory(name, dict(options))
    factory.make(8, 2)
    return factory
