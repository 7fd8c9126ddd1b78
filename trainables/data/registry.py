"""The dataset registry: ``@register_dataset`` adds one, ``load_dataset(name)`` loads any.

A builder returns a :class:`SourceData` (train, official test, label info); ``load_dataset``
does what is common to all: options checking, the seeded validation split, ``to_rgb32`` and
the train statistics.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .splits import (
    AnySplit,
    DatasetSplits,
    check_val_fraction,
    input_stats,
    split_off_validation,
    to_rgb32,
)

DATA_DIR_VARIABLE = "REGSTUDY_DATA_DIR"
_CONTEXT = ("root", "download")


@dataclass(frozen=True, eq=False)
class SourceData:
    """What a dataset builder returns: the full training set, the official test set, labels."""

    train: AnySplit
    test: AnySplit
    num_classes: int
    task: str = "classification"


Builder = Callable[..., SourceData]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its builder, where it lives under the data root, how to provide it."""

    name: str
    build: Builder
    folder: str | None
    prepare: str | None

    @property
    def options(self) -> frozenset[str]:
        return frozenset(inspect.signature(self.build).parameters) - set(_CONTEXT)


_REGISTRY: dict[str, DatasetEntry] = {}


def register_dataset(
    name: str, *, folder: str | None = None, prepare: str | None = None
) -> Callable[[Builder], Builder]:
    """Register a builder under ``name``.

    ``folder`` (relative to the data root) marks a dataset that lives on disk; its builder then
    takes ``root`` and ``download``. ``prepare`` is the command that puts it there.
    """

    def add(build: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[name] = DatasetEntry(name, build, folder, prepare)
        return build

    return add


def list_datasets() -> list[str]:
    return sorted(_REGISTRY)


def get_entry(name: str) -> DatasetEntry:
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list_datasets()}")
    return _REGISTRY[name]


def resolve_root(root: str | os.PathLike | None) -> Path:
    """``root``, else ``$REGSTUDY_DATA_DIR``, else ``./data``; always absolute."""
    chosen = os.environ.get(DATA_DIR_VARIABLE, "./data") if root is None else root
    return Path(chosen).expanduser().resolve()


def missing_data_error(name: str, root: Path, reason: str = "") -> FileNotFoundError:
    """The error for a dataset that is not on disk: where we looked and what provides it."""
    entry = get_entry(name)
    looked_in = root / entry.folder if entry.folder else root
    because = f" ({reason})" if reason else ""
    remedies = []
    if entry.prepare:
        remedies.append(f"`{entry.prepare} --data-dir {root}`")
    remedies.append(f"load_dataset({name!r}, root={str(root)!r}, download=True) (needs network)")
    return FileNotFoundError(
        f"dataset {name!r} not found in {looked_in}{because}. Provide it with "
        + ", or ".join(remedies)
    )


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    download: bool = False,
    **options: object,
) -> DatasetSplits:
    """Load dataset ``name``, holding out ``val_fraction`` of train (seeded by ``seed``) for val.

    ``options`` go to the dataset's builder, except ``to_rgb32=True``, which pads 1-channel
    images to 3×32×32. ``download=True`` lets torchvision fetch what is missing.
    """
    entry = get_entry(name)
    check_val_fraction(val_fraction)
    rgb32 = bool(options.pop("to_rgb32", False))
    unknown = set(options) - entry.options
    if unknown:
        raise ValueError(
            f"dataset {name!r} takes options {sorted(entry.options | {'to_rgb32'})}, "
            f"got {sorted(unknown)}"
        )
    context = {"root": resolve_root(root), "download": download} if entry.folder else {}
    source = entry.build(**context, **options)
    train, val = split_off_validation(source.train, val_fraction, seed)
    test = source.test
    if rgb32:
        train, test = to_rgb32(train), to_rgb32(test)
        val = None if val is None else to_rgb32(val)
    mean, std = input_stats(train, seed=seed)
    return DatasetSplits(
        name=name,
        train=train,
        val=val,
        test=test,
        in_shape=train.sample_shape,
        num_classes=source.num_classes,
        task=source.task,
        mean=mean,
        std=std,
    )
