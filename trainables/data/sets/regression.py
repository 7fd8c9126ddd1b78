"""The 1-D regression problems of the Drop-Activation paper's Figure 2.

20 training points x ~ U(interval), y = f(x) + N(0, noise²); the test split is a dense
noiseless grid over the same interval. For x·sin x the interval [0, 10] and noise N(0, 1) are
the preprint's (arXiv v1, eq. 12). The paper does not give the piecewise-constant function:
ours takes ``levels`` on equal pieces of [0, 10] (default +1, −1, +1, −1, a 1-D two-class
problem as the paper describes it) with noise 0.2, a tenth of its jump.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..registry import SourceData, register_dataset
from ..splits import Split


def _column(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(values.astype(np.float32)).reshape(-1, 1)


def noisy_samples(
    f: Callable[[np.ndarray], np.ndarray],
    interval: Sequence[float],
    n_train: int,
    n_test: int,
    noise: float,
    data_seed: int,
) -> SourceData:
    """n_train noisy samples of f at uniform random points, and f on an n_test-point grid."""
    low, high = interval
    if not low < high or n_train < 1 or n_test < 2 or noise < 0:
        raise ValueError(
            f"need low < high, n_train ≥ 1, n_test ≥ 2, noise ≥ 0; got interval={interval}, "
            f"n_train={n_train}, n_test={n_test}, noise={noise}"
        )
    rng = np.random.default_rng(data_seed)
    x = np.sort(rng.uniform(low, high, n_train))
    y = f(x) + rng.normal(0.0, noise, n_train)
    grid = np.linspace(low, high, n_test)
    return SourceData(
        train=Split(_column(x), _column(y)),
        test=Split(_column(grid), _column(f(grid))),
        num_classes=1,
        task="regression",
    )


@register_dataset("regression:xsinx")
def xsinx(
    noise: float = 1.0,
    interval: Sequence[float] = (0.0, 10.0),
    n_train: int = 20,
    n_test: int = 1000,
    data_seed: int = 0,
) -> SourceData:
    return noisy_samples(lambda x: x * np.sin(x), interval, n_train, n_test, noise, data_seed)


def piecewise_constant(levels: Sequence[float], interval: Sequence[float]):
    """f taking levels[k] on the k-th of len(levels) equal pieces of the interval."""
    low, high = interval
    edges = np.linspace(low, high, len(levels) + 1)[1:-1]
    values = np.asarray(levels, dtype=np.float64)
    return lambda x: values[np.searchsorted(edges, x, side="right")]


@register_dataset("regression:piecewise")
def piecewise(
    noise: float = 0.2,
    interval: Sequence[float] = (0.0, 10.0),
    levels: Sequence[float] = (1.0, -1.0, 1.0, -1.0),
    n_train: int = 20,
    n_test: int = 1000,
    data_seed: int = 0,
) -> SourceData:
    f = piecewise_constant(levels, interval)
    return noisy_samples(f, interval, n_train, n_test, noise, data_seed)
