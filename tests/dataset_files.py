"""Helpers that write small datasets in their real on-disk formats."""

import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    """The IDX format of (E)MNIST: magic (0, 0, type 0x08 = uint8, ndim), big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


N_TRAIN, N_TEST = 12, 5


def write_mnist(root: Path, labels_offset: int = 0) -> None:
    """A small MNIST in torchvision's raw layout: images encode their index, labels cycle."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        images = (np.arange(n * 28 * 28).reshape(n, 28, 28) * 7 + n) % 256
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", (np.arange(n) + labels_offset) % 10)
