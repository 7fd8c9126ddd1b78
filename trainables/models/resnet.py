"""He et al.'s CIFAR ResNets (2016, section 4.2): 3x3 stem of 16, three stages of 16/32/64 planes.

Basic blocks give depth 6n+2 (ResNet-20 … 110, 1202); bottleneck blocks
(He et al. 2016b, "Identity mappings", ResNet-164/1001) give 9n+2 with
64/128/256 output channels. ResNet-110 and ResNet-164 are Drop-Activation Table 1's.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import (
    ClassifierHead,
    Shape,
    check_choice,
    conv_norm_act,
    image_shape,
    init_he_fan_out,
)
from ._registry import register_model
from ._resnet_blocks import BasicBlock, Bottleneck, make_stage

BASIC_DEPTHS = (20, 32, 44, 56, 110, 1202)
BOTTLENECK_DEPTHS = (164, 1001)


class CifarResNet(nn.Module):
    """Stem conv-norm-act, three stages (the 2nd and 3rd halve the resolution), linear head."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks_per_stage: int,
        in_channels: int,
        num_classes: int,
        act: ActivationFactory,
        norm: NormFactory,
        zero_pad_shortcut: bool = False,
    ) -> None:
        super().__init__()
        self.stem = conv_norm_act(in_channels, 16, 3, norm, act)
        options = {"zero_pad_shortcut": zero_pad_shortcut} if block is BasicBlock else {}
        stages, channels = [], 16
        for i, planes in enumerate((16, 32, 64)):
            stage, channels = make_stage(
                block, channels, planes, blocks_per_stage, 1 if i == 0 else 2, act, norm, **options
            )
            stages.append(stage)
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(channels, num_classes)
        self.stage_names = [f"stages.{i}" for i in range(len(stages))]
        init_he_fan_out(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)))


@register_model
def resnet(
    num_classes: int,
    in_shape: Shape,
    act: ActivationFactory,
    norm: NormFactory,
    *,
    depth: int = 110,
    shortcut: Literal["A", "B"] = "A",
) -> nn.Module:
    """CIFAR ResNet-``depth``; ``shortcut`` "A" zero-pads (the paper's CIFAR choice), "B" projects.

    Drop-Activation's code (bearpaw/pytorch-classification) uses "B" for basic
    blocks too; bottleneck depths always project.
    """
    channels, _, _ = image_shape(in_shape, "resnet")
    check_choice("resnet", "shortcut", shortcut, ("A", "B"))
    if depth in BASIC_DEPTHS:
        block, blocks = BasicBlock, (depth - 2) // 6
    elif depth in BOTTLENECK_DEPTHS:
        block, blocks = Bottleneck, (depth - 2) // 9
    else:
        raise ValueError(
            f"resnet depth must be one of {list(BASIC_DEPTHS)} (basic) or "
            f"{list(BOTTLENECK_DEPTHS)} (bottleneck), got {depth!r}"
        )
    return CifarResNet(block, blocks, channels, num_classes, act, norm, shortcut == "A")
