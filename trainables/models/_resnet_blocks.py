"""Post-activation residual blocks (He et al. 2016, "Deep residual learning", Fig. 2 and Fig. 5).

Shared by the CIFAR ResNets and the ImageNet-layout ResNets; the norm and every
activation come from the factories, one fresh activation module per place.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import conv


class ZeroPadShortcut(nn.Module):
    """Option A shortcut (He et al. 2016, section 4.2): subsample, then append zero channels."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, 0, self.extra_channels))


def projection(
    in_channels: int, out_channels: int, stride: int, norm: NormFactory
) -> nn.Sequential:
    """Option B shortcut: a strided 1x1 conv and a norm."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=norm.conv_bias),
        norm.make(out_channels, 2),
    )


def shortcut(
    in_channels: int, out_channels: int, stride: int, norm: NormFactory, zero_pad: bool = False
) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if zero_pad:
        return ZeroPadShortcut(in_channels, out_channels, stride)
    return projection(in_channels, out_channels, stride, norm)


class BasicBlock(nn.Module):
    """conv3x3-norm-act-conv3x3-norm, plus the shortcut, then act."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        act: ActivationFactory,
        norm: NormFactory,
        zero_pad_shortcut: bool = False,
    ) -> None:
        super().__init__()
        self.conv1 = conv(in_channels, planes, 3, norm, stride)
        self.norm1 = norm.make(planes, 2)
        self.act1 = act()
        self.conv2 = conv(planes, planes, 3, norm)
        self.norm2 = norm.make(planes, 2)
        self.shortcut = shortcut(in_channels, planes, stride, norm, zero_pad_shortcut)
        self.act2 = act()

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act2(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """conv1x1-norm-act, conv3x3(stride)-norm-act, conv1x1(4x)-norm, plus the shortcut, then act.

    Its shortcut always projects when shapes change, as in He et al.'s code for ResNet-164.
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int,
        act: ActivationFactory,
        norm: NormFactory,
    ) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = conv(in_channels, planes, 1, norm)
        self.norm1 = norm.make(planes, 2)
        self.act1 = act()
        self.conv2 = conv(planes, planes, 3, norm, stride)
        self.norm2 = norm.make(planes, 2)
        self.act2 = act()
        self.conv3 = conv(planes, out_channels, 1, norm)
        self.norm3 = norm.make(out_channels, 2)
        self.shortcut = shortcut(in_channels, out_channels, stride, norm)
        self.act3 = act()

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.norm1(self.conv1(x)))
        out = self.act2(self.norm2(self.conv2(out)))
        out = self.norm3(self.conv3(out))
        return self.act3(out + self.shortcut(x))


def make_stage(
    block: type[BasicBlock] | type[Bottleneck],
    in_channels: int,
    planes: int,
    blocks: int,
    stride: int,
    act: ActivationFactory,
    norm: NormFactory,
    **block_options: bool,
) -> tuple[nn.Sequential, int]:
    """``blocks`` blocks, the first strided; returns the stage and its output channels."""
    layers = []
    for i in range(blocks):
        layers.append(
            block(in_channels, planes, stride if i == 0 else 1, act, norm, **block_options)
        )
        in_channels = planes * block.expansion
    return nn.Sequential(*layers), in_channels
