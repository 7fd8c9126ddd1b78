"""DenseNet-BC for CIFAR (Huang et al. 2017, Table 2): three dense blocks, depth 6n+4.

DenseNet-BC-100-12 (0.8M parameters) and -190-40 (25.6M) are Drop-Activation Table 1's.
"""

from __future__ import annotations

from torch import nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import Shape, check_positive_int, image_shape
from ._densenet import DenseNet
from ._registry import register_model


@register_model
def densenet_bc(
    num_classes: int,
    in_shape: Shape,
    act: ActivationFactory,
    norm: NormFactory,
    *,
    depth: int = 100,
    growth_rate: int = 12,
    compression: float = 0.5,
) -> nn.Module:
    """DenseNet-BC-``depth``-``growth_rate``: (depth - 4) / 6 bottleneck layers per block."""
    channels, _, _ = image_shape(in_shape, "densenet_bc")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(
            f"densenet_bc depth must be 6n+4 with n >= 1 (40, 100, 190, …), got {depth!r}"
        )
    growth_rate = check_positive_int("densenet_bc", "growth_rate", growth_rate)
    if not 0 < compression <= 1:
        raise ValueError(f"densenet_bc compression must be in (0, 1], got {compression!r}")
    n = (depth - 4) // 6
    return DenseNet((n, n, n), growth_rate, compression, channels, num_classes, act, norm)
