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
class DatasetInfo:
    """What a planner needs to know of a dataset without loading it: the shape of one input,
    the number of classes (outputs, for regression) and the sizes of the full training set
    (before any validation split) and of the official test set."""

    in_shape: tuple[int, ...]
    num_classes: int
    train_size: int
    test_size: int | None = None
    task: str = "classification"


# Fixed facts, or a function of the builder's options (SVHN's ``extra``) returning them.
InfoSource = DatasetInfo | Callable[..., DatasetInfo]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered dataset: its builder, where it lives under the data root, how to provide it."""

    name: str
    build: Builder
    folder: str | None
    prepare: str | None
    info: InfoSource | None = None

    @property
    def options(self) -> frozenset[str]:
        return frozenset(inspect.signature(self.build).parameters) - set(_CONTEXT)


_REGISTRY: dict[str, DatasetEntry] = {}


def register_dataset(
    name: str,
    *,
    folder: str | None = None,
    prepare: str | None = None,
    info: InfoSource | None = None,
) -> Callable[[Builder], Builder]:
    """Register a builder under ``name``.

    ``folder`` (relative to the data root) marks a dataset that lives on disk; its builder then
    takes ``root`` and ``download``. ``prepare`` is the command that puts it there. ``info``
    (a :class:`DatasetInfo`, or a function of the builder's options returning one) lets
    :func:`dataset_info` answer without loading the data.
    """

    def add(build: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered")
        _REGISTRY[name] = DatasetEntry(name, build, folder, prepare, info)
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


def _check_options(entry: DatasetEntry, options: dict[str, object]) -> None:
    unknown = set(options) - entry.options
    if unknown:
        raise ValueError(
            f"dataset {entry.name!r} takes options {sorted(entry.options | {'to_rgb32'})}, "
            f"got {sorted(unknown)}"
        )


def dataset_info(
    name: str, root: str | os.PathLike | None = None, **options: object
) -> DatasetInfo:
    """Shape, classes and split sizes of dataset ``name`` with the builder's ``options``
    (``to_rgb32`` excluded): from its registered ``info`` where it has one (the paper sets,
    which may not be on disk), else by loading it (the small offline sets, which is fast)."""
    entry = get_entry(name)
    _check_options(entry, options)
    if entry.info is None:
        data = load_dataset(name, root=root, val_fraction=0.0, **options)
        return DatasetInfo(
            tuple(data.in_shape), data.num_classes, len(data.train), len(data.test), data.task
        )
    return entry.info if isinstance(entry.info, DatasetInfo) else entry.info(**options)


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
    _check_options(entry, options)
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
