"""What a loaded dataset is: in-memory or file-backed splits, their statistics, the val split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

TASKS = ("classification", "regression")


@dataclass(frozen=True, eq=False)
class Split:
    """A split held as two tensors: uint8 (N,C,H,W) images or float32 (N,F) features, and targets.

    Targets are int64 class ids of shape (N,), or float32 (N,1) for regression.
    """

    inputs: Tensor
    targets: Tensor

    def __post_init__(self) -> None:
        images = self.inputs.dtype == torch.uint8 and self.inputs.ndim == 4
        features = self.inputs.dtype == torch.float32 and self.inputs.ndim == 2
        if not (images or features):
            raise ValueError(
                "Split.inputs must be uint8 (N,C,H,W) or float32 (N,F), "
                f"got {self.inputs.dtype} {tuple(self.inputs.shape)}"
            )
        classes = self.targets.dtype == torch.int64 and self.targets.ndim == 1
        values = self.targets.dtype == torch.float32 and self.targets.ndim == 2
        if not (classes or values):
            raise ValueError(
                "Split.targets must be int64 (N,) or float32 (N,1), "
                f"got {self.targets.dtype} {tuple(self.targets.shape)}"
            )
        if len(self.inputs) != len(self.targets):
            raise ValueError(f"{len(self.inputs)} inputs but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def is_image(self) -> bool:
        return self.inputs.ndim == 4

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.inputs.shape[1:])

    def subset(self, indices: Tensor) -> Split:
        return Split(self.inputs[indices], self.targets[indices])

    def __repr__(self) -> str:
        return (
            f"Split(n={len(self)}, inputs={_dtype(self.inputs)}{self.sample_shape}, "
            f"targets={_dtype(self.targets)})"
        )


@dataclass(frozen=True, eq=False)
class LazySplit:
    """A split read from files on demand: ``dataset[i]`` is (uint8 (C,H,W) tensor, class id).

    For datasets too large to hold in memory; ``targets`` are known up front.
    """

    dataset: Dataset
    targets: Tensor
    sample_shape: tuple[int, ...]
    is_image: bool = field(default=True, init=False)

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, indices: Tensor) -> LazySplit:
        return LazySplit(
            Subset(self.dataset, indices.tolist()), self.targets[indices], self.sample_shape
        )

    def __repr__(self) -> str:
        return f"LazySplit(n={len(self)}, inputs=uint8{self.sample_shape}, files)"


AnySplit = Split | LazySplit


def split_off_validation(
    train: AnySplit, val_fraction: float, seed: int
) -> tuple[AnySplit, AnySplit | None]:
    """Cut ``round(val_fraction * N)`` samples out of train by a ``seed``-seeded permutation."""
    check_val_fraction(val_fraction)
    if val_fraction == 0:
        return train, None
    n = len(train)
    n_val = round(val_fraction * n)
    if not 0 < n_val < n:
        raise ValueError(
            f"val_fraction={val_fraction} of {n} training samples leaves "
            f"{n_val} for validation and {n - n_val} for training; both must be non-empty"
        )
    order = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    return train.subset(train_idx), train.subset(val_idx)


def check_val_fraction(val_fraction: float) -> None:
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
        raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")


def input_stats(split: AnySplit, seed: int = 0, max_files: int = 2000) -> tuple[Tensor, Tensor]:
    """Per-channel (images, on the [0, 1] scale) or per-feature mean and std of a split.

    A LazySplit is estimated from a seeded sample of ``max_files`` files; a constant feature
    gets std 1 so that normalising leaves it at 0.
    """
    if isinstance(split, LazySplit):
        picks = np.random.default_rng(seed).permutation(len(split))[:max_files]
        inputs = torch.stack([split.dataset[int(i)][0] for i in picks])
    else:
        inputs = split.inputs
    if inputs.dtype == torch.uint8:
        mean, std = _pixel_stats(inputs)
    else:
        mean, std = inputs.double().mean(0), inputs.double().std(0, unbiased=False)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return mean.float(), std.float()


def _pixel_stats(images: Tensor) -> tuple[Tensor, Tensor]:
    """Exact per-channel moments from 256-bin histograms, without a float copy of the images."""
    counts = torch.stack(
        [
            torch.bincount(images.select(1, c).reshape(-1), minlength=256)
            for c in range(images.shape[1])
        ]
    ).double()
    levels = torch.arange(256, dtype=torch.float64) / 255
    total = counts.sum(1)
    mean = counts @ levels / total
    second_moment = counts @ levels.square() / total
    return mean, (second_moment - mean.square()).clamp_min(0).sqrt()


def to_rgb32(split: Split) -> Split:
    """Zero-pad 1-channel images to 32×32 and repeat the channel 3 times (for CIFAR models)."""
    if not isinstance(split, Split) or not split.is_image or split.inputs.shape[1] != 1:
        raise ValueError(f"to_rgb32 needs in-memory 1-channel images, got {split!r}")
    _, _, h, w = split.inputs.shape
    if h > 32 or w > 32:
        raise ValueError(f"to_rgb32 needs images of at most 32×32, got {h}×{w}")
    top, left = (32 - h) // 2, (32 - w) // 2
    padded = torch.nn.functional.pad(split.inputs, (left, 32 - w - left, top, 32 - h - top))
    return Split(padded.expand(-1, 3, -1, -1).contiguous(), split.targets)


@dataclass(frozen=True, eq=False)
class DatasetSplits:
    """A loaded dataset: train/val/test splits and what a model and a loader need to know."""

    name: str
    train: AnySplit
    val: AnySplit | None
    test: AnySplit
    in_shape: tuple[int, ...]
    num_classes: int
    task: str
    mean: Tensor
    std: Tensor

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "val": 0 if self.val is None else len(self.val),
            "test": len(self.test),
        }

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes().items())
        return (
            f"DatasetSplits({self.name!r}, {self.task}, num_classes={self.num_classes}, "
            f"in_shape={self.in_shape}, {sizes})"
        )

    def summary(self) -> str:
        """A few lines for logs: sizes, shapes and the normalisation statistics."""
        lines = [repr(self)]
        for part in ("train", "val", "test"):
            lines.append(f"  {part:5s} {getattr(self, part)!r}")
        lines.append(f"  mean  {_short(self.mean)}")
        lines.append(f"  std   {_short(self.std)}")
        return "\n".join(lines)


def _dtype(tensor: Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def _short(values: Sequence[float] | Tensor, limit: int = 6) -> str:
    shown = [f"{float(v):.4f}" for v in list(values)[:limit]]
    more = len(values) - limit
    return "[" + ", ".join(shown) + (f", … {more} more" if more > 0 else "") + "]"
