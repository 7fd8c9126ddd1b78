"""The three regularizers under study, and the baselines they are compared with, in plain torch."""

from .drop_activation import DropActivation, drop_activation
from .lrd import GradientDropout, LearningRateDropout
from .noise import GradientNoise, disturb_labels
from .replace import replace_activations
from .vcl import VarianceConstancy, clip_grad_norm_per_layer_, vcl_penalty

__all__ = [
    "DropActivation",
    "GradientDropout",
    "GradientNoise",
    "LearningRateDropout",
    "VarianceConstancy",
    "clip_grad_norm_per_layer_",
    "disturb_labels",
    "drop_activation",
    "replace_activations",
    "vcl_penalty",
]
