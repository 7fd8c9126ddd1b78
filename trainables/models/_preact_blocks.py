"""Pre-activation residual blocks (He et al. 2016b, "Identity mappings", Fig. 4e; WRN's block).

When a block changes shape, its 1x1 projection shortcut reads the block's
pre-activated input, as in the authors' code (KaimingHe/resnet-1k-layers) and in
Drop-Activation's WRN (LeungSamWai/Drop-Activation, models/cifar/da_wrn.py).
"""

from __future__ import annotations

from torch import Tensor, nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import conv


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Conv2d | None:
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class PreActBasicBlock(nn.Module):
    """norm-act-conv3x3, norm-act-(dropout)-conv3x3, plus the shortcut (WRN's block)."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        act: ActivationFactory,
        norm: NormFactory,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = norm.make(in_channels, 2)
        self.act1 = act()
        self.conv1 = conv(in_channels, planes, 3, norm, stride)
        self.norm2 = norm.make(planes, 2)
        self.act2 = act()
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv(planes, planes, 3, norm)
        self.projection = _projection(in_channels, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.act1(self.norm1(x))
        out = self.conv1(pre)
        out = self.conv2(self.dropout(self.act2(self.norm2(out))))
        return out + (x if self.projection is None else self.projection(pre))


class PreActBottleneck(nn.Module):
    """norm-act-conv1x1, norm-act-conv3x3(stride), norm-act-conv1x1(4x), plus the shortcut."""

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int, act: ActivationFactory, norm: NormFactory
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.norm1 = norm.make(in_channels, 2)
        self.act1 = act()
        self.conv1 = conv(in_channels, planes, 1, norm)
        self.norm2 = norm.make(planes, 2)
        self.act2 = act()
        self.conv2 = conv(planes, planes, 3, norm, stride)
        self.norm3 = norm.make(planes, 2)
        self.act3 = act()
        self.conv3 = conv(planes, out_channels, 1, norm)
        self.projection = _projection(in_channels, out_channels, stride)

    def forward(self, x: Tensor) -> Tensor:
        pre = self.act1(self.norm1(x))
        out = self.conv1(pre)
        out = self.conv2(self.act2(self.norm2(out)))
        out = self.conv3(self.act3(self.norm3(out)))
        return out + (x if self.projection is None else self.projection(pre))
