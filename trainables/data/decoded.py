"""Decoded copies of on-disk datasets, so that a training process reads tensors, not torchvision.

Reading through torchvision costs a fresh process ``import torchvision`` (its detection ops import
``torch._dynamo``, which the optimizer would import anyway) and the decoding: pickled batches and
their MD5s for CIFAR, ``.mat`` files for SVHN. A copy of the decoded uint8 tensors, in
``torch.save``'s format, is read back in less (``benchmarks.dataset_read``: CIFAR-10 in 0.66x
the wall time, MNIST in 0.95x, each with less RSS).

A copy is named by what was read (the dataset, its reader's settings, torchvision's version) and
by the path, size and modification time of every source file, so an edited, re-provisioned or
re-downloaded file is read afresh. It is written to a temporary file and renamed into place, so a
reader never sees half of one; a copy that cannot be read is rebuilt, and a folder that cannot
be written only costs the speed. Copies live in ``<data root>/.regstudy-decoded`` unless
``$REGSTUDY_DECODED_DIR`` names another folder (for a data root that is read-only).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from .registry import SourceData
from .splits import Split

__all__ = ["DECODED_DIR_VARIABLE", "DECODED_FOLDER", "decoded_dir", "read_through"]

DECODED_FOLDER = ".regstudy-decoded"
DECODED_DIR_VARIABLE = "REGSTUDY_DECODED_DIR"
_FORMAT = 1

log = logging.getLogger(__name__)


def decoded_dir(root: Path) -> Path:
    """Where the decoded copies of the datasets under ``root`` live."""
    chosen = os.environ.get(DECODED_DIR_VARIABLE)
    return Path(chosen).expanduser().resolve() if chosen else root / DECODED_FOLDER


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _stamps(files: Iterable[Path], root: Path) -> list[tuple[str, int, int]]:
    stamps = []
    for path in files:
        stat = path.stat()
        stamps.append((str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
    return sorted(stamps)


def _torchvision_version() -> str:
    try:
        return metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        return "absent"


def _copy_path(name: str, reader: Mapping[str, Any], root: Path, files: list[Path]) -> Path:
    kind = _digest({"format": _FORMAT, "reader": reader, "torchvision": _torchvision_version()})
    return decoded_dir(root) / f"{name}-{kind[:10]}-{_digest(_stamps(files, root))[:16]}.pt"


def _load(path: Path) -> SourceData:
    saved = torch.load(path, weights_only=True)
    return SourceData(
        train=Split(*saved["train"]),
        test=Split(*saved["test"]),
        num_classes=int(saved["num_classes"]),
        task=str(saved["task"]),
    )


def _save(path: Path, data: SourceData) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = {
        "train": (data.train.inputs, data.train.targets),
        "test": (data.test.inputs, data.test.targets),
        "num_classes": data.num_classes,
        "task": data.task,
    }
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            torch.save(saved, out)
        os.chmod(temporary, 0o644)  # readable as the dataset beside it is, not mkstemp's 0600
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    kind = path.name.rsplit("-", 1)[0]
    for older in path.parent.glob(f"{kind}-*.pt"):
        if older != path:
            older.unlink(missing_ok=True)


def read_through(
    name: str,
    root: Path,
    sources: Callable[[], list[Path]],
    reader: Mapping[str, Any],
    build: Callable[[], SourceData],
) -> SourceData:
    """``build()``'s dataset, from its decoded copy when one matches the files ``sources()`` lists.

    ``reader`` is what besides those files decides the result (the reader's settings); a build
    whose splits are not tensors (files read on demand) is returned as it is, not copied.
    """
    try:
        files = sources()
        path = _copy_path(name, reader, root, files) if files else None
    except OSError:  # a source file went away while it was listed: let the reader say so
        path = None
    if path is not None and path.is_file():
        try:
            return _load(path)
        except Exception as err:  # a torn or foreign file: rebuild it
            log.warning("decoded copy %s unreadable (%s); reading %s again", path, err, name)
    data = build()
    if not (isinstance(data.train, Split) and isinstance(data.test, Split)):
        return data
    try:
        _save(_copy_path(name, reader, root, sources()), data)
    except OSError as err:
        log.info("no decoded copy of %s kept (%s): each process reads it again", name, err)
    return data
