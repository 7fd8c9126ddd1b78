"""Fully connected nets: the MLP body, and VCL's UCI nets (Littwin & Wolf, section 4, Table 4).

A hidden layer is linear-norm-act (norm with ``dims=1``), optionally followed by
dropout; image inputs are flattened. With SELU the net is self-normalising
(Klambauer et al. 2017): LeCun-normal weights and alpha-dropout instead of dropout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor, nn

from trainables.layers import ActivationFactory, NormFactory

from ._common import (
    Shape,
    check_choice,
    check_positive_int,
    check_probability,
    flat_features,
    init_weights,
)
from ._registry import register_model

DropoutLayers = Literal["last", "all"]


class MLP(nn.Module):
    """Flatten, hidden layers ``layers.0``, ``layers.1``, …, then a linear output layer."""

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        num_classes: int,
        act: ActivationFactory,
        norm: NormFactory,
        dropout: float = 0.0,
        dropout_layers: DropoutLayers = "last",
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        layers, features = [], in_features
        self.self_normalizing = self_normalizing = isinstance(act(), nn.SELU)
        for i, width in enumerate(hidden):
            layer = nn.Sequential(
                nn.Linear(features, width, bias=norm.conv_bias), norm.make(width, 1), act()
            )
            if dropout > 0 and (dropout_layers == "all" or i == len(hidden) - 1):
                layer.append(nn.AlphaDropout(dropout) if self_normalizing else nn.Dropout(dropout))
            layers.append(layer)
            features = width
        self.layers = nn.Sequential(*layers)
        self.output = nn.Linear(features, num_classes)
        self.stage_names = [f"layers.{i}" for i in range(len(layers))]
        if self_normalizing:
            self._init_lecun_normal()

    def _init_lecun_normal(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_normal_(module.weight, nonlinearity="linear")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.output(self.layers(self.flatten(x)))


def check_hidden(model: str, hidden: Sequence[int]) -> tuple[int, ...]:
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence) or not hidden:
        raise ValueError(f"{model} hidden must be a non-empty sequence of widths, got {hidden!r}")
    return tuple(check_positive_int(model, "hidden width", width) for width in hidden)


@register_model
def mlp(
    num_classes: int,
    in_shape: Shape,
    act: ActivationFactory,
    norm: NormFactory,
    *,
    width: int = 256,
    depth: int = 4,
    dropout: float = 0.0,
    dropout_layers: DropoutLayers = "last",
    init: str = "he",
) -> nn.Module:
    """``depth`` hidden layers of ``width`` (VCL UCI: 256 wide, depth 4, 8 or 16).

    VCL's UCI runs: ReLU/ELU with ``dropout=0.5`` on the last hidden layer;
    SELU with alpha-dropout 0.05 on every hidden layer (``dropout_layers="all"``).
    Weights are He-initialised (``init="he"``) so that the unnormalised nets train, or
    LeCun-initialised with SELU, whatever ``init`` says.
    """
    width = check_positive_int("mlp", "width", width)
    depth = check_positive_int("mlp", "depth", depth)
    dropout = check_probability("mlp", "dropout", dropout)
    check_choice("mlp", "dropout_layers", dropout_layers, ("last", "all"))
    model = MLP(
        flat_features(in_shape), (width,) * depth, num_classes, act, norm, dropout, dropout_layers
    )
    if not model.self_normalizing:
        init_weights(model, init, "mlp")
    return model
