"""The CIFAR pre-activation network body shared by PreResNet and Wide ResNet."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import ClassifierHead, conv, init_he_fan_out, norm_act
from ._preact_blocks import PreActBasicBlock, PreActBottleneck


class PreActNet(nn.Module):
    """3x3 stem conv, stages of pre-activation blocks, a final norm-act (in the last stage), head.

    The final norm-act sits inside the last stage so that "the last two stages"
    covers every activation after the second-to-last stage starts.
    """

    def __init__(
        self,
        block: type[PreActBasicBlock] | type[PreActBottleneck],
        blocks_per_stage: int,
        stem_channels: int,
        stage_planes: Sequence[int],
        in_channels: int,
        num_classes: int,
        act: ActivationFactory,
        norm: NormFactory,
        **block_options: float,
    ) -> None:
        super().__init__()
        self.stem = conv(in_channels, stem_channels, 3, norm)
        channels, stages = stem_channels, []
        for i, planes in enumerate(stage_planes):
            blocks = []
            for j in range(blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(channels, planes, stride, act, norm, **block_options))
                channels = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        stages[-1].add_module("post_activation", norm_act(channels, norm, act))
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(channels, num_classes)
        self.stage_names = [f"stages.{i}" for i in range(len(stages))]
        init_he_fan_out(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)))
