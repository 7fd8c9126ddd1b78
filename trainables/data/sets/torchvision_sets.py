"""The papers' image datasets, read through torchvision's own dataset classes.

Online and offline users share this one path: ``download=True`` is torchvision's downloader,
and offline copies are laid out by ``prepare_datasets`` exactly as torchvision expects. What
torchvision decodes is kept as a copy (:mod:`..decoded`) that later processes read
without importing torchvision.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..decoded import decoded_dir, read_through
from ..registry import DatasetInfo, SourceData, missing_data_error, register_dataset
from ..splits import Split

_LAYOUTS = {
    "NHW": lambda x: x[:, None],
    "NHWC": lambda x: x.permute(0, 3, 1, 2),
    "NCHW": lambda x: x,
}


@dataclass(frozen=True)
class TorchvisionSet:
    """How to read one torchvision dataset class into uint8 (N,C,H,W) tensors.

    ``cls`` names the class in ``torchvision.datasets``, imported when a split is read: importing
    torchvision costs a process seconds, and a sweep's driver only plans with these entries.
    ``sources`` are the globs, under ``folder``, of the files the class reads."""

    cls: str
    folder: str
    num_classes: int
    layout: str
    prepare: str
    train_parts: tuple[dict[str, Any], ...] = ({"train": True},)
    test_part: dict[str, Any] = field(default_factory=lambda: {"train": False})
    common: dict[str, Any] = field(default_factory=dict)
    targets_attr: str = "targets"
    transpose: bool = False
    sources: tuple[str, ...] = ("**/*",)


def read_split(name: str, spec: TorchvisionSet, root: Path, download: bool, **part: Any) -> Split:
    """One split of ``spec`` as a Split; a torchvision 'not found' becomes our FileNotFoundError."""
    from torchvision import datasets

    try:
        dataset = getattr(datasets, spec.cls)(str(root), download=download, **spec.common, **part)
    except RuntimeError as err:
        raise missing_data_error(name, root, reason=f"torchvision: {err}") from err
    images = _LAYOUTS[spec.layout](torch.as_tensor(np.asarray(dataset.data)))
    if spec.transpose:
        images = images.transpose(-1, -2)
    targets = torch.as_tensor(np.asarray(getattr(dataset, spec.targets_attr)), dtype=torch.int64)
    return Split(images.contiguous(), targets)


def _concat(splits: list[Split]) -> Split:
    if len(splits) == 1:
        return splits[0]
    return Split(torch.cat([s.inputs for s in splits]), torch.cat([s.targets for s in splits]))


def read(name: str, spec: TorchvisionSet, root: Path, download: bool) -> SourceData:
    """``spec``'s splits as torchvision reads them."""
    train = _concat([read_split(name, spec, root, download, **part) for part in spec.train_parts])
    test = read_split(name, spec, root, download, **spec.test_part)
    return SourceData(train=train, test=test, num_classes=spec.num_classes)


def source_files(spec: TorchvisionSet, root: Path) -> list[Path]:
    """The files under ``root`` that torchvision reads for ``spec`` (none when absent)."""
    folder = root / spec.folder
    copies = decoded_dir(root)
    found = {p for pattern in spec.sources for p in folder.glob(pattern) if p.is_file()}
    return sorted(p for p in found if copies not in p.parents)


def build(name: str, spec: TorchvisionSet, root: Path, download: bool) -> SourceData:
    """``spec``'s splits: from their decoded copy if the files are unchanged, else torchvision."""
    return read_through(
        name,
        root,
        partial(source_files, spec, root),
        asdict(spec),
        partial(read, name, spec, root, download),
    )


def _download_hint(name: str) -> str:
    return f"study data prepare {name} --download"


TORCHVISION_SETS: dict[str, TorchvisionSet] = {
    "mnist": TorchvisionSet("MNIST", "MNIST/raw", 10, "NHW", prepare="study data prepare mnist"),
    "fashion_mnist": TorchvisionSet(
        "FashionMNIST",
        "FashionMNIST/raw",
        10,
        "NHW",
        prepare="study data prepare fashion_mnist",
    ),
    "emnist_balanced": TorchvisionSet(
        "EMNIST",
        "EMNIST/raw",
        47,
        "NHW",
        prepare=_download_hint("emnist_balanced"),
        common={"split": "balanced"},
        transpose=True,
    ),
    "cifar10": TorchvisionSet(
        "CIFAR10", "cifar-10-batches-py", 10, "NHWC", prepare=_download_hint("cifar10")
    ),
    "cifar100": TorchvisionSet(
        "CIFAR100", "cifar-100-python", 100, "NHWC", prepare=_download_hint("cifar100")
    ),
}

# Shapes, classes and official split sizes, so a run can be planned before the data is here.
INFO: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo((1, 28, 28), 10, train_size=60_000, test_size=10_000),
    "fashion_mnist": DatasetInfo((1, 28, 28), 10, train_size=60_000, test_size=10_000),
    "emnist_balanced": DatasetInfo((1, 28, 28), 47, train_size=112_800, test_size=18_800),
    "cifar10": DatasetInfo((3, 32, 32), 10, train_size=50_000, test_size=10_000),
    "cifar100": DatasetInfo((3, 32, 32), 100, train_size=50_000, test_size=10_000),
}

for _name, _spec in TORCHVISION_SETS.items():
    register_dataset(_name, folder=_spec.folder, prepare=_spec.prepare, info=INFO[_name])(
        partial(build, _name, _spec)
    )

_SVHN = TorchvisionSet(
    "SVHN",
    ".",
    10,
    "NCHW",
    prepare=_download_hint("svhn"),
    train_parts=({"split": "train"}, {"split": "extra"}),
    test_part={"split": "test"},
    targets_attr="labels",
    sources=("train_32x32.mat", "extra_32x32.mat", "test_32x32.mat"),
)


SVHN_TRAIN, SVHN_EXTRA, SVHN_TEST = 73_257, 531_131, 26_032


def svhn_info(extra: bool = True) -> DatasetInfo:
    """SVHN's facts for the ``extra`` option of :func:`svhn`."""
    train = SVHN_TRAIN + (SVHN_EXTRA if extra else 0)
    return DatasetInfo((3, 32, 32), 10, train_size=train, test_size=SVHN_TEST)


@register_dataset("svhn", folder=_SVHN.folder, prepare=_SVHN.prepare, info=svhn_info)
def svhn(root: Path, download: bool, extra: bool = True) -> SourceData:
    """SVHN; train + extra (≈604k) for training as the Drop-Activation paper, unless extra=False."""
    spec = _SVHN if extra else replace(_SVHN, train_parts=_SVHN.train_parts[:1])
    return build("svhn", spec, root, download)
