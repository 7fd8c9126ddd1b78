"""ResNet-18/34/50/101/152 block layout on CIFAR resolution, as in kuangliu/pytorch-cifar.

He et al.'s ImageNet stages (Table 1) behind a 3x3 stride-1 stem with no
max-pool: the ResNet-18 of Cutout and the ResNet-34 of LRD (Table 1-3), whose
"standard dropout" baseline (LRD Table 3) is ``dropout`` before the classifier.
"""

from __future__ import annotations

from torch import Tensor, nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import (
    ClassifierHead,
    Shape,
    check_positive_int,
    check_probability,
    conv_norm_act,
    image_shape,
)
from ._registry import register_model
from ._resnet_blocks import BasicBlock, Bottleneck, make_stage

LAYOUTS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ImageNetStyleResNet(nn.Module):
    """Stem conv-norm-act, ``layer1``-``layer4`` (widths w, 2w, 4w, 8w), dropout, linear head."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        blocks_per_stage: tuple[int, ...],
        width: int,
        dropout: float,
        in_channels: int,
        num_classes: int,
        act: ActivationFactory,
        norm: NormFactory,
    ) -> None:
        super().__init__()
        self.stem = conv_norm_act(in_channels, width, 3, norm, act)
        channels = width
        self.stage_names = []
        for i, blocks in enumerate(blocks_per_stage):
            stage, channels = make_stage(
                block, channels, width * 2**i, blocks, 1 if i == 0 else 2, act, norm
            )
            self.add_module(f"layer{i + 1}", stage)
            self.stage_names.append(f"layer{i + 1}")
        self.head = ClassifierHead(channels, num_classes, dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.head(x)


@register_model
def resnet_imagenet_style(
    num_classes: int,
    in_shape: Shape,
    act: ActivationFactory,
    norm: NormFactory,
    *,
    depth: int = 18,
    width: int = 64,
    dropout: float = 0.0,
) -> nn.Module:
    """ResNet-``depth``; ``width`` is layer1's planes (64); ``dropout`` before the classifier."""
    channels, _, _ = image_shape(in_shape, "resnet_imagenet_style")
    if depth not in LAYOUTS:
        raise ValueError(
            f"resnet_imagenet_style depth must be one of {sorted(LAYOUTS)}, got {depth!r}"
        )
    width = check_positive_int("resnet_imagenet_style", "width", width)
    dropout = check_probability("resnet_imagenet_style", "dropout", dropout)
    block, blocks = LAYOUTS[depth]
    return ImageNetStyleResNet(block, blocks, width, dropout, channels, num_classes, act, norm)
