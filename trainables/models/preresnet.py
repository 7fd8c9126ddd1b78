"""Pre-activation CIFAR ResNets (He et al. 2016b, "Identity mappings"): PreResNet-110 and -164.

PreResNet-164 (bottleneck, 1.7M parameters) is Drop-Activation Table 1's.
"""

from __future__ import annotations

from torch import nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import Shape, image_shape
from ._preact_blocks import PreActBasicBlock, PreActBottleneck
from ._preact_net import PreActNet
from ._registry import register_model
from .resnet import BASIC_DEPTHS, BOTTLENECK_DEPTHS


@register_model
def preresnet(
    num_classes: int,
    in_shape: Shape,
    act: ActivationFactory,
    norm: NormFactory,
    *,
    depth: int = 164,
) -> nn.Module:
    """PreResNet-``depth``: basic blocks for 6n+2 depths, bottleneck blocks for 164 and 1001."""
    channels, _, _ = image_shape(in_shape, "preresnet")
    if depth in BASIC_DEPTHS:
        block, blocks = PreActBasicBlock, (depth - 2) // 6
    elif depth in BOTTLENECK_DEPTHS:
        block, blocks = PreActBottleneck, (depth - 2) // 9
    else:
        raise ValueError(
            f"preresnet depth must be one of {list(BASIC_DEPTHS)} (basic) or "
            f"{list(BOTTLENECK_DEPTHS)} (bottleneck), got {depth!r}"
        )
    return PreActNet(block, blocks, 16, (16, 32, 64), channels, num_classes, act, norm)
