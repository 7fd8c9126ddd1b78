"""Tiny ImageNet (200 classes, 64×64) from its extracted folder, read file by file.

The labelled ``val`` folder is the test split (the official test images have no labels);
training images go through torchvision's ImageFolder, decoded by PIL to uint8 tensors.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ..registry import DatasetInfo, SourceData, missing_data_error, register_dataset
from ..splits import LazySplit

FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def read_rgb(path: str) -> Tensor:
    """A uint8 (3,H,W) tensor; the few grayscale files become 3 equal channels."""
    from torchvision.transforms.functional import pil_to_tensor

    with Image.open(path) as image:
        return pil_to_tensor(image.convert("RGB"))


class LabelledFiles(Dataset):
    """(image, class id) pairs from an explicit list of files."""

    def __init__(self, samples: list[tuple[str, int]]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        path, target = self.samples[index]
        return read_rgb(path), target


def _val_samples(base: Path, class_to_idx: dict[str, int]) -> list[tuple[str, int]]:
    rows = (
        line.split("\t") for line in (base / "val" / "val_annotations.txt").read_text().split("\n")
    )
    return [(str(base / "val" / "images" / row[0]), class_to_idx[row[1]]) for row in rows if row[0]]


# 200 classes x 500 training images; the labelled val folder (50 per class) is the test split.
INFO = DatasetInfo((3, 64, 64), 200, train_size=100_000, test_size=10_000)


@register_dataset(
    "tiny_imagenet",
    folder=FOLDER,
    prepare="study data prepare tiny_imagenet --download",
    info=INFO,
)
def tiny_imagenet(root: Path, download: bool) -> SourceData:
    from torchvision.datasets import ImageFolder  # here: torchvision costs an import seconds
    from torchvision.datasets.utils import download_and_extract_archive

    base = root / FOLDER
    if download and not base.is_dir():
        download_and_extract_archive(URL, download_root=str(root))
    if not (base / "train").is_dir() or not (base / "val" / "val_annotations.txt").is_file():
        raise missing_data_error(
            "tiny_imagenet", root, reason=f"expected train/ and val/ as unzipped from {URL}"
        )
    train = ImageFolder(str(base / "train"), loader=read_rgb)
    test = LabelledFiles(_val_samples(base, train.class_to_idx))
    shape = tuple(train[0][0].shape)
    return SourceData(
        train=LazySplit(train, torch.as_tensor(train.targets, dtype=torch.int64), shape),
        test=LazySplit(
            test, torch.as_tensor([t for _, t in test.samples], dtype=torch.int64), shape
        ),
        num_classes=len(train.classes),
    )
