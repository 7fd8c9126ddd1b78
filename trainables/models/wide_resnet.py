"""Wide ResNets (Zagoruyko & Komodakis 2016): WRN-``depth``-``widen_factor``, dropout in blocks.

Depth 6n+4, stages of 16k/32k/64k planes after a 16-channel stem. WRN-28-10
(36.5M parameters, dropout 0.3) is Drop-Activation Table 1's, WRN-16-8 its Table 2's.
"""

from __future__ import annotations

from torch import nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import Shape, check_positive_int, check_probability, image_shape
from ._preact_blocks import PreActBasicBlock
from ._preact_net import PreActNet
from ._registry import register_model


@register_model
def wide_resnet(
    num_classes: int,
    in_shape: Shape,
    act: ActivationFactory,
    norm: NormFactory,
    *,
    depth: int = 28,
    widen_factor: int = 10,
    dropout: float = 0.3,
) -> nn.Module:
    """WRN-``depth``-``widen_factor``; ``dropout`` between a block's convs (DA Table 6: 0.3)."""
    channels, _, _ = image_shape(in_shape, "wide_resnet")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(
            f"wide_resnet depth must be 6n+4 with n >= 1 (10, 16, 22, 28, …), got {depth!r}"
        )
    k = check_positive_int("wide_resnet", "widen_factor", widen_factor)
    dropout = check_probability("wide_resnet", "dropout", dropout)
    return PreActNet(
        PreActBasicBlock,
        (depth - 4) // 6,
        16,
        (16 * k, 32 * k, 64 * k),
        channels,
        num_classes,
        act,
        norm,
        dropout=dropout,
    )
