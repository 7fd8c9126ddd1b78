"""What every architecture shares: input-shape and option checks, conv-norm-act units, init."""

from __future__ import annotations

import math
from collections.abc import Iterable

from torch import nn

from trainables.layers import ActivationFactory, NormFactory

Shape = tuple[int, ...]


def image_shape(in_shape: Shape, model: str) -> tuple[int, int, int]:
    """(channels, height, width) of ``in_shape``, or a ValueError saying ``model`` is a conv net."""
    if len(in_shape) != 3:
        raise ValueError(
            f"{model} is a convolutional network and needs in_shape (channels, height, width), "
            f"got {tuple(in_shape)}"
        )
    return in_shape[0], in_shape[1], in_shape[2]


def flat_features(in_shape: Shape) -> int:
    return math.prod(in_shape)


def check_choice(model: str, option: str, value: object, allowed: Iterable[object]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{model} {option} must be one of {allowed}, got {value!r}")


def check_positive_int(model: str, option: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{model} {option} must be a positive int, got {value!r}")
    return value


def check_probability(model: str, option: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{model} {option} must be a number in [0, 1), got {value!r}")
    return float(value)


def conv(
    in_channels: int,
    out_channels: int,
    kernel: int,
    norm: NormFactory,
    stride: int = 1,
    groups: int = 1,
) -> nn.Conv2d:
    """A 'same'-padded odd-kernel conv, with a bias only when the norm after it has no shift."""
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel,
        stride=stride,
        padding=kernel // 2,
        groups=groups,
        bias=norm.conv_bias,
    )


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel: int,
    norm: NormFactory,
    act: ActivationFactory,
    stride: int = 1,
) -> nn.Sequential:
    return nn.Sequential(
        conv(in_channels, out_channels, kernel, norm, stride), norm.make(out_channels, 2), act()
    )


def norm_act(channels: int, norm: NormFactory, act: ActivationFactory) -> nn.Sequential:
    """The final normalization and activation of a pre-activation network, before pooling."""
    return nn.Sequential(norm.make(channels, 2), act())


class ClassifierHead(nn.Sequential):
    """Global average pooling, optional dropout and the linear classifier."""

    def __init__(self, channels: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            nn.Linear(channels, num_classes),
        )


INITS = ("default", "he")


def init_weights(model: nn.Module, init: str, name: str) -> None:
    """``"he"``: He-normal (fan-in, ReLU gain) conv and linear weights, zero biases, the scheme
    that keeps a plain (unnormalised) deep net trainable; ``"default"``: PyTorch's own."""
    check_choice(name, "init", init, INITS)
    if init == "default":
        return
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def init_he_fan_out(model: nn.Module) -> None:
    """He-normal (fan-out) conv weights and zero biases, as in He's, WRN's and DenseNet's code."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
