"""Rows named by what ran: "ResNet-20 · digits 8×8 · 8 epochs", read from a run's params.

A report names each row by the model, depth, dataset, image size, training-set size and
epochs its runs actually used, so a quick-scale stand-in can never pass for the paper's setup;
the paper setup it stands in for is named beside it (:func:`row_name`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_IMAGE_SIZES = {
    "digits": "8×8",
    "mnist": "28×28",
    "fashion_mnist": "28×28",
    "emnist_balanced": "28×28",
    "cifar10": "32×32",
    "cifar100": "32×32",
    "svhn": "32×32",
    "tiny_imagenet": "64×64",
}
_DATASET_NAMES = {
    "digits": "digits",
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "emnist_balanced": "EMNIST-Balanced",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "svhn": "SVHN",
    "tiny_imagenet": "Tiny ImageNet",
    "mnist1d": "MNIST-1D",
    "optdigits": "optdigits",
}


def _get(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(f"param.{key}", params.get(key))
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "None":
        return None
    return str(value)


def _int(value: str | None) -> int | None:
    try:
        return None if value is None else int(float(value))
    except ValueError:
        return None


def model_name(params: Mapping[str, Any]) -> str:
    """The architecture as papers write it: ResNet-110, WRN-28-10, DenseNet-BC-190-40, ..."""
    model = _get(params, "model") or "?"
    depth = _get(params, "arch.depth")
    width = _get(params, "arch.widen_factor")
    growth = _get(params, "arch.growth_rate")
    names = {
        "resnet": lambda: f"ResNet-{depth or 110}",
        "preresnet": lambda: f"PreResNet-{depth or 164}",
        "resnet_imagenet_style": lambda: f"ResNet-{depth or 18} (ImageNet-style)",
        "wide_resnet": lambda: f"WRN-{depth or 28}-{width or 10}",
        "densenet_bc": lambda: f"DenseNet-BC-{depth or 100}-{growth or 12}",
        "densenet121": lambda: "DenseNet-121",
        "resnext": lambda: (
            f"ResNeXt-{depth or 29} {_get(params, 'arch.cardinality') or 8}×"
            f"{_get(params, 'arch.base_width') or 64}d"
        ),
        "vgg": lambda: f"VGG-{depth or 19}",
        "fcnet": lambda: "FCNet 2×1000",
        "mlp": lambda: f"MLP depth {depth or 4}",
        "pgrid_cnn": lambda: "p-grid net",
        "elu_cnn": lambda: "ELU-11 net",
        "regression_mlp": lambda: "MLP 1000-800-200",
    }
    return names.get(model, lambda: model)()


def data_name(params: Mapping[str, Any]) -> str:
    """The dataset, its image size as trained (``to_rgb32`` pads to 3×32×32) and its subset."""
    dataset = _get(params, "dataset") or "?"
    name = _DATASET_NAMES.get(dataset, dataset.removeprefix("uci:"))
    size = "32×32 RGB (padded)" if _get(params, "to_rgb32") == "True" else _IMAGE_SIZES.get(dataset)
    text = f"{name} {size}" if size else name
    subset = _int(_get(params, "train_subset"))
    if subset:
        text += f", {subset:,} training images"
    return text


def what_ran(params: Mapping[str, Any]) -> str:
    """ "ResNet-20 · digits 8×8 · 8 epochs" from one run's params (``param.*`` or plain keys)."""
    parts = [model_name(params), data_name(params)]
    epochs = _int(_get(params, "epochs"))
    if epochs:
        parts.append(f"{epochs} epoch{'s' if epochs != 1 else ''}")
    return " · ".join(parts)


def row_name(ran: str, paper_setup: str | None, scale: str) -> str:
    """What ran, and below paper scale the paper setup it stands in for."""
    if not paper_setup or scale == "paper":
        return ran
    return f"{ran} (stand-in for {paper_setup})"
