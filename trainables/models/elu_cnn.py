"""The 11-layer CIFAR net of Clevert et al. 2016 (ELU paper, section 4.3); VCL Table 2's net.

Stacks (layers × units × receptive field): [1×192×5], [1×192×1, 1×240×3],
[1×240×1, 1×260×2], [1×260×1, 1×280×2], [1×280×1, 1×300×2], [1×300×1],
[1×num_classes×1]; a 2x2 max-pool of stride 2 after each stack, and dropout
0, 0.1, …, 0.5 after the hidden stacks. Choices where the paper is silent or
ambiguous, resolved as in the public implementations (avirambh/vcl_pytorch
models/ELU.py, the VCL authors' reference; also a Torch and a TensorFlow port):

- The second stack's 240-unit layer has a 3x3 field (all three implementations;
  a "1×240×2" reading of the table changes nothing else).
- Convs are "same"-padded (even kernels pad one extra pixel right/bottom, like
  TF's "same"); without padding a 32x32 input vanishes before the last stack.
- Max-pools follow stacks 1-5 only: five halvings take 32x32 to 1x1, so the 1x1
  stacks 6-7 act as fully connected layers. Pools round up, so smaller or odd
  inputs still reach the head, and a global average pool before the logits
  covers larger ones (VCL's Tiny-ImageNet variant averages at the end).
- Dropout follows the stack's pool; the norm goes between each conv and its
  activation (conv-norm-act, where VCL's reference places BN and VCL); the
  output layer has neither.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import Shape, check_positive_int, check_probability, image_shape, init_weights
from ._registry import register_model

HIDDEN_STACKS: tuple[tuple[tuple[int, int], ...], ...] = (
    ((192, 5),),
    ((192, 1), (240, 3)),
    ((240, 1), (260, 2)),
    ((260, 1), (280, 2)),
    ((280, 1), (300, 2)),
    ((300, 1),),
)
POOLED_STACKS = 5
PAPER_DROPOUT = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


def same_padded_conv(
    in_channels: int, out_channels: int, kernel: int, bias: bool
) -> list[nn.Module]:
    """A size-keeping conv; an even kernel pads one more pixel right and bottom (TF's "same")."""
    before, after = (kernel - 1) // 2, kernel // 2
    pad = [nn.ZeroPad2d((before, after, before, after))] if before != after else []
    return [*pad, nn.Conv2d(in_channels, out_channels, kernel, padding=before, bias=bias)]


class EluCNN(nn.Module):
    """Stacks ``stacks.0``-``stacks.5`` of conv-norm-act layers, then a 1x1 conv to the logits."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        act: ActivationFactory,
        norm: NormFactory,
        dropout: Sequence[float],
        widen_factor: int,
    ) -> None:
        super().__init__()
        stacks, channels = [], in_channels
        for i, layers in enumerate(HIDDEN_STACKS):
            stack = nn.Sequential()
            for units, field in layers:
                units *= 1 if i == 0 else widen_factor
                stack.extend(same_padded_conv(channels, units, field, norm.conv_bias))
                stack.append(norm.make(units, 2))
                stack.append(act())
                channels = units
            if i < POOLED_STACKS:
                stack.append(nn.MaxPool2d(2, ceil_mode=True))
            if dropout[i] > 0:
                stack.append(nn.Dropout(dropout[i]))
            stacks.append(stack)
        self.stacks = nn.Sequential(*stacks)
        self.classifier = nn.Sequential(
            nn.Conv2d(channels, num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.stage_names = [f"stacks.{i}" for i in range(len(stacks))]

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.stacks(x))


@register_model
def elu_cnn(
    num_classes: int,
    in_shape: Shape,
    act: ActivationFactory,
    norm: NormFactory,
    *,
    dropout: Sequence[float] = PAPER_DROPOUT,
    widen_factor: int = 1,
    init: str = "he",
) -> nn.Module:
    """ELU-11; ``dropout`` per hidden stack; ``widen_factor`` 2 widens all but the first layer as
    the VCL reference code does; He-initialised (``init="he"``), as the ELU paper's nets."""
    channels, _, _ = image_shape(in_shape, "elu_cnn")
    is_sequence = isinstance(dropout, Sequence) and not isinstance(dropout, (str, bytes))
    if not is_sequence or len(dropout) != len(HIDDEN_STACKS):
        raise ValueError(
            f"elu_cnn dropout must be {len(HIDDEN_STACKS)} rates, one per hidden stack "
            f"(paper: {PAPER_DROPOUT}), got {dropout!r}"
        )
    rates = [check_probability("elu_cnn", "dropout", rate) for rate in dropout]
    widen_factor = check_positive_int("elu_cnn", "widen_factor", widen_factor)
    model = EluCNN(channels, num_classes, act, norm, rates, widen_factor)
    init_weights(model, init, "elu_cnn")
    return model
