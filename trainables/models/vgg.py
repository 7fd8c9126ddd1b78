"""VGG with normalization for CIFAR (Simonyan & Zisserman 2015, Table 1 configs A/B/D/E).

The CIFAR variant used by Drop-Activation (bearpaw/pytorch-classification,
vgg19_bn): five stages of 3x3 conv-norm-act layers, each closed by a 2x2
max-pool, then one linear classifier. Pools round up, so 28x28 inputs (EMNIST)
reach 1x1 too; at 32x32 this changes nothing.
"""

from __future__ import annotations

from torch import Tensor, nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import (
    ClassifierHead,
    Shape,
    check_positive_int,
    conv_norm_act,
    image_shape,
    init_he_fan_out,
)
from ._registry import register_model

CONVS_PER_STAGE = {
    11: (1, 1, 2, 2, 2),
    13: (2, 2, 2, 2, 2),
    16: (2, 2, 3, 3, 3),
    19: (2, 2, 4, 4, 4),
}
WIDTH_MULTIPLIERS = (1, 2, 4, 8, 8)


class VGG(nn.Module):
    """Five conv stages (widths w, 2w, 4w, 8w, 8w) each closed by a max-pool, a linear layer."""

    def __init__(
        self,
        convs_per_stage: tuple[int, ...],
        width: int,
        in_channels: int,
        num_classes: int,
        act: ActivationFactory,
        norm: NormFactory,
    ) -> None:
        super().__init__()
        stages, channels = [], in_channels
        for convs, multiplier in zip(convs_per_stage, WIDTH_MULTIPLIERS):
            layers = []
            for _ in range(convs):
                layers.append(conv_norm_act(channels, width * multiplier, 3, norm, act))
                channels = width * multiplier
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.head = ClassifierHead(channels, num_classes)
        self.stage_names = [f"stages.{i}" for i in range(len(stages))]
        init_he_fan_out(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(x))


@register_model
def vgg(
    num_classes: int,
    in_shape: Shape,
    act: ActivationFactory,
    norm: NormFactory,
    *,
    depth: int = 19,
    width: int = 64,
) -> nn.Module:
    """VGG-``depth`` (11/13/16/19); ``width`` is the first stage's channels (64 in the paper)."""
    channels, _, _ = image_shape(in_shape, "vgg")
    if depth not in CONVS_PER_STAGE:
        raise ValueError(f"vgg depth must be one of {sorted(CONVS_PER_STAGE)}, got {depth!r}")
    width = check_positive_int("vgg", "width", width)
    return VGG(CONVS_PER_STAGE[depth], width, channels, num_classes, act, norm)
