"""The three regularizers under study, the baselines they are compared with, and DropConnect
(the worked example of docs/methods.md), in plain torch."""

from .drop_activation import DropActivation, drop_activation
from .dropconnect import (
    DropConnectLinear,
    apply_dropconnect,
    dropconnect_linear,
    dropconnect_moment_inference,
)
from .lrd import GradientDropout, LearningRateDropout
from .noise import GradientNoise, disturb_labels
from .replace import replace_activations
from .vcl import VarianceConstancy, clip_grad_norm_per_layer_, vcl_penalty

__all__ = [
    "DropActivation",
    "DropConnectLinear",
    "GradientDropout",
    "GradientNoise",
    "LearningRateDropout",
    "VarianceConstancy",
    "apply_dropconnect",
    "clip_grad_norm_per_layer_",
    "disturb_labels",
    "drop_activation",
    "dropconnect_linear",
    "dropconnect_moment_inference",
    "replace_activations",
    "vcl_penalty",
]
