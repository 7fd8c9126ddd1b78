"""Factories for the pluggable parts of every model: activation and normalization."""

from .activations import ActivationFactory, activation_factory, list_activations
from .norms import NormFactory, list_norms, norm_factory

__all__ = [
    "ActivationFactory",
    "NormFactory",
    "activation_factory",
    "list_activations",
    "list_norms",
    "norm_factory",
]
