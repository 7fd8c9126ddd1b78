"""The simple net of Drop-Activation's p-grid (appendix 8.1, Figure 7; the Figure 5 experiment).

Three blocks of [3x3 conv (padding 1), norm, act, 2x2 avg-pool] with 32/64/128
filters, then FC 1000 with an activation and FC num_classes. The flatten size
follows the input: 128 x 4 x 4 at 32x32, 128 x 1 x 1 at 8x8 (sklearn digits).
"""

from __future__ import annotations

from torch import Tensor, nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import Shape, conv_norm_act, image_shape, init_weights
from ._registry import register_model

FILTERS = (32, 64, 128)
HIDDEN = 1000


class PGridCNN(nn.Module):
    """Conv blocks ``blocks.0``-``blocks.2``, then the hidden FC layer and the classifier."""

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        num_classes: int,
        act: ActivationFactory,
        norm: NormFactory,
    ) -> None:
        super().__init__()
        channels, height, width = in_shape
        blocks = []
        for filters in FILTERS:
            blocks.append(
                nn.Sequential(*conv_norm_act(channels, filters, 3, norm, act), nn.AvgPool2d(2))
            )
            channels, height, width = filters, height // 2, width // 2
        self.blocks = nn.Sequential(*blocks)
        self.hidden = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * height * width, HIDDEN), act()
        )
        self.classifier = nn.Linear(HIDDEN, num_classes)
        self.stage_names = [f"blocks.{i}" for i in range(len(blocks))]

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.hidden(self.blocks(x)))


@register_model
def pgrid_cnn(
    num_classes: int,
    in_shape: Shape,
    act: ActivationFactory,
    norm: NormFactory,
    *,
    init: str = "default",
) -> nn.Module:
    """The Figure 5 net for any image size of at least 8x8 (three 2x2 poolings).

    ``init="he"`` for use without batchnorm: with PyTorch's default init the signal
    fades through its poolings and the unnormalised net barely trains.
    """
    channels, height, width = image_shape(in_shape, "pgrid_cnn")
    if min(height, width) < 2 ** len(FILTERS):
        raise ValueError(f"pgrid_cnn needs inputs of at least 8x8, got {height}x{width}")
    model = PGridCNN((channels, height, width), num_classes, act, norm)
    init_weights(model, init, "pgrid_cnn")
    return model
