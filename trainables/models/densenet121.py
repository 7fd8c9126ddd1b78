"""DenseNet-121 for 32x32 inputs as in kuangliu/pytorch-cifar (LRD's CIFAR-100 net, LRD Table 1).

Blocks of 6-12-24-16 bottleneck layers, growth rate 32, a 3x3 stem of 64
channels and no max-pool: the ImageNet block layout on CIFAR resolution.
"""

from __future__ import annotations

from torch import nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import Shape, check_positive_int, image_shape
from ._densenet import DenseNet
from ._registry import register_model

BLOCK_CONFIG = (6, 12, 24, 16)


@register_model
def densenet121(
    num_classes: int,
    in_shape: Shape,
    act: ActivationFactory,
    norm: NormFactory,
    *,
    growth_rate: int = 32,
) -> nn.Module:
    """DenseNet-121 with compression 0.5; ``growth_rate`` other than 32 only for quick runs."""
    channels, _, _ = image_shape(in_shape, "densenet121")
    growth_rate = check_positive_int("densenet121", "growth_rate", growth_rate)
    return DenseNet(BLOCK_CONFIG, growth_rate, 0.5, channels, num_classes, act, norm)
