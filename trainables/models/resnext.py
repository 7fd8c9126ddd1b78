"""ResNeXt for CIFAR (Xie et al. 2017, section 5.3): ResNeXt-29, cardinality C, width d ("C×dd").

Three stages of bottleneck blocks with grouped 3x3 convs of C·d·2^i channels and
outputs of 64·widen_factor·2^i (256/512/1024 by default). ResNeXt-29 8×64d
(34.4M parameters) is Drop-Activation Table 1's; 16×64d has 68.1M.
"""

from __future__ import annotations

from torch import Tensor, nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import (
    ClassifierHead,
    Shape,
    check_positive_int,
    conv,
    conv_norm_act,
    image_shape,
    init_he_fan_out,
)
from ._registry import register_model
from ._resnet_blocks import shortcut


class ResNeXtBlock(nn.Module):
    """conv1x1-norm-act, grouped conv3x3(stride)-norm-act, conv1x1-norm, plus shortcut, then act."""

    def __init__(
        self,
        in_channels: int,
        group_width: int,
        out_channels: int,
        stride: int,
        cardinality: int,
        act: ActivationFactory,
        norm: NormFactory,
    ) -> None:
        super().__init__()
        self.conv_reduce = conv(in_channels, group_width, 1, norm)
        self.norm_reduce = norm.make(group_width, 2)
        self.act_reduce = act()
        self.conv_grouped = conv(group_width, group_width, 3, norm, stride, groups=cardinality)
        self.norm_grouped = norm.make(group_width, 2)
        self.act_grouped = act()
        self.conv_expand = conv(group_width, out_channels, 1, norm)
        self.norm_expand = norm.make(out_channels, 2)
        self.shortcut = shortcut(in_channels, out_channels, stride, norm)
        self.act_out = act()

    def forward(self, x: Tensor) -> Tensor:
        out = self.act_reduce(self.norm_reduce(self.conv_reduce(x)))
        out = self.act_grouped(self.norm_grouped(self.conv_grouped(out)))
        out = self.norm_expand(self.conv_expand(out))
        return self.act_out(out + self.shortcut(x))


class ResNeXt(nn.Module):
    """3x3 stem of 64, three stages of ResNeXt blocks (the 2nd and 3rd strided), linear head."""

    def __init__(
        self,
        blocks_per_stage: int,
        cardinality: int,
        base_width: int,
        widen_factor: int,
        in_channels: int,
        num_classes: int,
        act: ActivationFactory,
        norm: NormFactory,
    ) -> None:
        super().__init__()
        self.stem = conv_norm_act(in_channels, 64, 3, norm, act)
        stages, channels = [], 64
        for i in range(3):
            group_width, out_channels = cardinality * base_width * 2**i, 64 * widen_factor * 2**i
            blocks = []
            for j in range(blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(
                    ResNeXtBlock(
                        channels, group_width, out_channels, stride, cardinality, act, norm
                    )
                )
                channels = out_channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(channels, num_classes)
        self.stage_names = [f"stages.{i}" for i in range(len(stages))]
        init_he_fan_out(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)))


@register_model
def resnext(
    num_classes: int,
    in_shape: Shape,
    act: ActivationFactory,
    norm: NormFactory,
    *,
    depth: int = 29,
    cardinality: int = 8,
    base_width: int = 64,
    widen_factor: int = 4,
) -> nn.Module:
    """ResNeXt-``depth`` (9n+2), ``cardinality``×``base_width``d, outputs 64·widen_factor·2^i."""
    channels, _, _ = image_shape(in_shape, "resnext")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 11 or (depth - 2) % 9:
        raise ValueError(f"resnext depth must be 9n+2 with n >= 1 (11, 20, 29, …), got {depth!r}")
    for option, value in (
        ("cardinality", cardinality),
        ("base_width", base_width),
        ("widen_factor", widen_factor),
    ):
        check_positive_int("resnext", option, value)
    return ResNeXt(
        (depth - 2) // 9, cardinality, base_width, widen_factor, channels, num_classes, act, norm
    )
