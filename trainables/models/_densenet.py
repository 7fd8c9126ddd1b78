"""DenseNet-BC body for 32x32 inputs (Huang et al. 2017, section 3): dense blocks and transitions.

Each bottleneck layer is norm-act-conv1x1(4k)-norm-act-conv3x3(k) and its output
is concatenated to its input; a transition is norm-act-conv1x1(compression)-avgpool2.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import ClassifierHead, conv, init_he_fan_out, norm_act


class DenseLayer(nn.Module):
    """One bottleneck layer; returns its input with ``growth_rate`` new channels appended."""

    def __init__(
        self, in_channels: int, growth_rate: int, act: ActivationFactory, norm: NormFactory
    ) -> None:
        super().__init__()
        inner = 4 * growth_rate
        self.norm1 = norm.make(in_channels, 2)
        self.act1 = act()
        self.conv1 = conv(in_channels, inner, 1, norm)
        self.norm2 = norm.make(inner, 2)
        self.act2 = act()
        self.conv2 = conv(inner, growth_rate, 3, norm)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.act1(self.norm1(x)))
        out = self.conv2(self.act2(self.norm2(out)))
        return torch.cat([x, out], dim=1)


class Transition(nn.Sequential):
    """norm-act-conv1x1-avgpool2: compresses the channels and halves the resolution."""

    def __init__(
        self, in_channels: int, out_channels: int, act: ActivationFactory, norm: NormFactory
    ) -> None:
        super().__init__(
            norm.make(in_channels, 2),
            act(),
            conv(in_channels, out_channels, 1, norm),
            nn.AvgPool2d(2, ceil_mode=True),
        )


class DenseNet(nn.Module):
    """3x3 stem of 2k channels, a stage per dense block (with its transition), norm-act, head."""

    def __init__(
        self,
        block_config: Sequence[int],
        growth_rate: int,
        compression: float,
        in_channels: int,
        num_classes: int,
        act: ActivationFactory,
        norm: NormFactory,
    ) -> None:
        super().__init__()
        channels = 2 * growth_rate
        self.stem = conv(in_channels, channels, 3, norm)
        stages = []
        for i, layers in enumerate(block_config):
            stage = nn.Sequential()
            for _ in range(layers):
                stage.append(DenseLayer(channels, growth_rate, act, norm))
                channels += growth_rate
            if i < len(block_config) - 1:
                reduced = math.floor(compression * channels)
                stage.add_module("transition", Transition(channels, reduced, act, norm))
                channels = reduced
            else:
                stage.add_module("post_activation", norm_act(channels, norm, act))
            stages.append(stage)
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(channels, num_classes)
        self.stage_names = [f"stages.{i}" for i in range(len(stages))]
        init_he_fan_out(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)))
