"""Where a sweep's Ray results live (a local path or a URI such as ``s3://``), through pyarrow's
filesystems; light enough to check before Ray starts."""

from __future__ import annotations

import pyarrow.fs

from .spec import Spec, SpecError


def filesystem(path: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """The filesystem of ``path`` and the path within it."""
    if "://" in path:
        return pyarrow.fs.FileSystem.from_uri(path)
    return pyarrow.fs.LocalFileSystem(), path


def exists(spec: Spec) -> bool:
    """Whether the sweep's experiment directory exists."""
    fs, root = filesystem(spec.experiment_dir)
    return fs.get_file_info(root).type != pyarrow.fs.FileType.NotFound


def refuse_name_in_use(spec: Spec) -> None:
    """A new sweep may not reuse a sweep's name unless told to start over."""
    if exists(spec):
        raise SpecError(
            f"a sweep named {spec.name!r} already exists at {spec.experiment_dir}; "
            f"continue it with `study resume {spec.name}` or start over with --overwrite"
        )
