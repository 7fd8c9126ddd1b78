"""Drop-Activation's Figure 2 regression net: hidden layers of 1000, 800 and 200 units.

Build it with ``num_classes=1`` (one output) and ``norm="none"`` for the paper's net.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import Shape, flat_features
from ._registry import register_model
from .mlp import MLP, check_hidden


@register_model
def regression_mlp(
    num_classes: int,
    in_shape: Shape,
    act: ActivationFactory,
    norm: NormFactory,
    *,
    hidden: Sequence[int] = (1000, 800, 200),
) -> nn.Module:
    """Flatten, ``hidden`` linear-norm-act layers, a linear output of ``num_classes`` values."""
    widths = check_hidden("regression_mlp", hidden)
    return MLP(flat_features(in_shape), widths, num_classes, act, norm)
