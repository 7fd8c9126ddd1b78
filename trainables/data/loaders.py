"""Batches for training and evaluation, reproducible per (seed, epoch).

``DeviceLoader`` keeps a whole in-memory split on the training device and gathers, augments
and normalises each batch there (airbench's habit); ``TorchLoader`` reads a file-backed split
through a torch ``DataLoader`` and does the same to each batch once it is on the device. Both
shuffle with a CPU generator seeded from (seed, epoch) — so they give the same order on any
device — and augment with a device generator seeded from the same pair: call
``set_epoch(e)`` before each epoch, and a run resumed at epoch e sees exactly the batches an
uninterrupted run would.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset

from .augment import Augment, as_augment
from .splits import AnySplit, DatasetSplits, LazySplit, Split

Batch = tuple[Tensor, Tensor]


def epoch_generators(seed: int, epoch: int, device: torch.device) -> tuple[torch.Generator, ...]:
    """Independent generators for (order on CPU, augmentation on device, DataLoader workers)."""
    states = np.random.SeedSequence([seed, epoch]).generate_state(3)
    devices = ("cpu", device, "cpu")
    return tuple(
        torch.Generator(d).manual_seed(int(s)) for d, s in zip(devices, states, strict=True)
    )


class BatchTransform:
    """raw-pixel augmentation → float32 on the [0, 1] scale → (x − mean) / std → normalised ops."""

    def __init__(
        self,
        augment: Augment,
        mean: Tensor | Sequence[float] | None,
        std: Tensor | Sequence[float] | None,
        is_image: bool,
        device: torch.device,
    ) -> None:
        if not (augment.is_identity or is_image):
            raise ValueError(f"{augment!r} needs images (N,C,H,W); this split holds features")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.augment = augment
        shape = (-1, 1, 1) if is_image else (-1,)
        self.mean = None if mean is None else torch.as_tensor(mean, device=device).reshape(shape)
        self.std = None if std is None else torch.as_tensor(std, device=device).reshape(shape)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        x = self.augment.raw(x, generator)
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return self.augment.normalized(x, generator)


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


class _EpochLoader:
    """What both loaders share: batch size, seeded per-epoch order and augmentation, transform."""

    def __init__(
        self,
        size: int,
        is_image: bool,
        batch_size: int,
        shuffle: bool,
        augment: str | Sequence[str] | Augment | None,
        device: str | torch.device,
        seed: int,
        drop_last: bool,
        mean: Tensor | Sequence[float] | None,
        std: Tensor | Sequence[float] | None,
    ) -> None:
        _check_batch_size(batch_size)
        self.size = size
        self.device = torch.device(device)
        self.batch_size, self.shuffle, self.drop_last, self.seed = (
            batch_size,
            shuffle,
            drop_last,
            seed,
        )
        self.transform = BatchTransform(as_augment(augment), mean, std, is_image, self.device)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = self.size
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)


class DeviceLoader(_EpochLoader):
    """A whole in-memory split on ``device``; batches gathered, augmented and normalised there."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        shuffle: bool = True,
        augment: str | Sequence[str] | Augment | None = "none",
        device: str | torch.device = "cpu",
        seed: int = 0,
        drop_last: bool = False,
        mean: Tensor | Sequence[float] | None = None,
        std: Tensor | Sequence[float] | None = None,
    ) -> None:
        if not isinstance(split, Split):
            raise TypeError(
                f"DeviceLoader needs an in-memory Split, got {split!r}; use TorchLoader"
            )
        super().__init__(
            len(split), split.is_image, batch_size, shuffle, augment, device, seed, drop_last,
            mean, std,
        )  # fmt: skip
        self.inputs = split.inputs.to(self.device)
        self.targets = split.targets.to(self.device)

    def __iter__(self) -> Iterator[Batch]:
        order_gen, augment_gen, _ = epoch_generators(self.seed, self.epoch, self.device)
        n = len(self.targets)
        order = torch.randperm(n, generator=order_gen) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        for batch in range(len(self)):
            index = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            yield self.transform(self.inputs[index], augment_gen), self.targets[index]


class TorchLoader(_EpochLoader):
    """A torch DataLoader over a file-backed (or any) split, with DeviceLoader's interface."""

    def __init__(
        self,
        split: AnySplit,
        batch_size: int,
        shuffle: bool = True,
        augment: str | Sequence[str] | Augment | None = "none",
        device: str | torch.device = "cpu",
        seed: int = 0,
        drop_last: bool = False,
        mean: Tensor | Sequence[float] | None = None,
        std: Tensor | Sequence[float] | None = None,
        num_workers: int = 0,
    ) -> None:
        self.dataset = (
            split.dataset
            if isinstance(split, LazySplit)
            else TensorDataset(split.inputs, split.targets)
        )
        super().__init__(
            len(self.dataset), split.is_image, batch_size, shuffle, augment, device, seed,
            drop_last, mean, std,
        )  # fmt: skip
        self.num_workers = num_workers

    def __iter__(self) -> Iterator[Batch]:
        order_gen, augment_gen, worker_gen = epoch_generators(self.seed, self.epoch, self.device)
        sampler = (
            RandomSampler(self.dataset, generator=order_gen)
            if self.shuffle
            else SequentialSampler(self.dataset)
        )
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=self.drop_last,
            num_workers=self.num_workers,
            generator=worker_gen,
            pin_memory=self.device.type == "cuda",
        )
        for x, y in loader:
            x = x.to(self.device, non_blocking=True)
            yield self.transform(x, augment_gen), y.to(self.device, non_blocking=True)


def make_loader(
    splits: DatasetSplits,
    which: str = "train",
    batch_size: int = 128,
    *,
    augment: str | Sequence[str] | Augment | None = "none",
    device: str | torch.device = "cpu",
    seed: int = 0,
    shuffle: bool | None = None,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DeviceLoader | TorchLoader:
    """A loader over ``splits.<which>`` normalised with the train statistics.

    In-memory splits (every registered dataset but tiny_imagenet) get a DeviceLoader: the
    split is copied to ``device`` once and nothing crosses the bus per step. File-backed
    splits get a TorchLoader with ``num_workers`` decoding processes. ``shuffle`` defaults to
    True for "train" only.
    """
    if which not in ("train", "val", "test"):
        raise ValueError(f"which must be 'train', 'val' or 'test', got {which!r}")
    split = getattr(splits, which)
    if split is None:
        raise ValueError(f"{splits.name!r} has no {which} split (loaded with val_fraction=0)")
    common = {
        "batch_size": batch_size,
        "shuffle": which == "train" if shuffle is None else shuffle,
        "augment": augment,
        "device": device,
        "seed": seed,
        "drop_last": drop_last,
        "mean": splits.mean,
        "std": splits.std,
    }
    if isinstance(split, Split):
        return DeviceLoader(split, **common)
    return TorchLoader(split, num_workers=num_workers, **common)
