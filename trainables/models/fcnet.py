"""LRD's MNIST FCNet (Lin et al., section 4.1, Table 1): two hidden layers of 1000 units.

The paper's net has no normalization: build it with ``norm="none"``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import Shape, check_probability, flat_features
from ._registry import register_model
from .mlp import MLP, check_hidden


@register_model
def fcnet(
    num_classes: int,
    in_shape: Shape,
    act: ActivationFactory,
    norm: NormFactory,
    *,
    hidden: Sequence[int] = (1000, 1000),
    dropout: float = 0.0,
) -> nn.Module:
    """Flatten, ``hidden`` linear-norm-act layers with ``dropout`` after each, linear output."""
    widths = check_hidden("fcnet", hidden)
    dropout = check_probability("fcnet", "dropout", dropout)
    return MLP(flat_features(in_shape), widths, num_classes, act, norm, dropout, "all")
