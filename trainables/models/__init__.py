"""A registry of every architecture the three papers use, with pluggable activation and norm.

``build_model(name, num_classes, in_shape, activation=..., norm=..., **options)``
builds any of ``list_models()``; a new architecture is one file with a
``@register_model`` function plus one import line here (importing registers it).
"""

from . import (
    densenet121,  # noqa: F401
    densenet_bc,  # noqa: F401
    elu_cnn,  # noqa: F401
    fcnet,  # noqa: F401
    mlp,  # noqa: F401
    pgrid_cnn,  # noqa: F401
    preresnet,  # noqa: F401
    regression_mlp,  # noqa: F401
    resnet,  # noqa: F401
    resnet_imagenet_style,  # noqa: F401
    resnext,  # noqa: F401
    vgg,  # noqa: F401
    wide_resnet,  # noqa: F401
)
from ._registry import build_model, get_model_entry, list_models, register_model

__all__ = ["build_model", "get_model_entry", "list_models", "register_model"]
