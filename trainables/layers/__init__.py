"""Factories for the pluggable parts of every model: activation and normalization."""

from .activations import ActivationFactory, activation_factory, activation_kwargs, list_activations
from .norms import NormFactory, list_norms, norm_factory, norm_kwargs

__all__ = [
    "ActivationFactory",
    "NormFactory",
    "activation_factory",
    "activation_kwargs",
    "list_activations",
    "list_norms",
    "norm_factory",
    "norm_kwargs",
]
