"""Datasets by name, seeded validation splits, batch augmentation and device-resident loaders.

``load_dataset("mnist1d")`` works offline out of the box; ``list_datasets()`` names the rest.
"""

from . import sets  # noqa: F401  (importing it registers every dataset)
from .augment import Augment, list_augmentations
from .loaders import DeviceLoader, TorchLoader, make_loader
from .prepare import prepare_datasets
from .registry import SourceData, list_datasets, load_dataset, register_dataset
from .splits import DatasetSplits, LazySplit, Split

__all__ = [
    "Augment",
    "DatasetSplits",
    "DeviceLoader",
    "LazySplit",
    "SourceData",
    "Split",
    "TorchLoader",
    "list_augmentations",
    "list_datasets",
    "load_dataset",
    "make_loader",
    "prepare_datasets",
    "register_dataset",
]
