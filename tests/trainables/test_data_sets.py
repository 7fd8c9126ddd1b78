"""The offline datasets hold what their sources say: sizes, classes, generating procedures."""

import random

import numpy as np
import pytest
import torch

from trainables.data import load_dataset
from trainables.data.sets.small_sets import generate_mnist1d


def test_adult_keeps_its_official_split_and_one_hot_columns():
    splits = load_dataset("uci:adult", val_fraction=0)
    assert (len(splits.train), len(splits.test), splits.num_classes) == (32561, 16281, 2)
    assert int(splits.train.targets.sum()) == 7841  # ">50K" in adult.data
    assert splits.in_shape == (108,)  # 6 numeric + 102 one-hot levels ('?' is a level)


def test_keel_sets_hold_out_a_stratified_test_fraction():
    splits = load_dataset("uci:letter", val_fraction=0, test_fraction=0.25, split_seed=3)
    assert (len(splits.train), len(splits.test), splits.num_classes) == (15000, 5000, 26)
    train_share = torch.bincount(splits.train.targets) / len(splits.train)
    test_share = torch.bincount(splits.test.targets) / len(splits.test)
    torch.testing.assert_close(train_share, test_share, atol=2e-3, rtol=0)


def test_keel_text_columns_are_one_hot():
    splits = load_dataset("uci:mushroom", val_fraction=0)
    values = torch.cat([splits.train.inputs, splits.test.inputs])
    assert set(values.unique().tolist()) == {0.0, 1.0}
    assert splits.in_shape == (98,)


def test_digits_is_sklearns_1797_images_with_a_fifth_held_out():
    splits = load_dataset("digits", val_fraction=0)
    assert (len(splits.train), len(splits.test)) == (1437, 360)
    assert splits.in_shape == (1, 8, 8) and int(splits.train.inputs.max()) == 255


def test_mnist1d_is_the_published_4000_1000_split_and_leaves_global_rngs_alone():
    np.random.seed(123)
    random.seed(123)
    expected_numpy, expected_python = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    generate_mnist1d.cache_clear()
    splits = load_dataset("mnist1d", val_fraction=0)
    assert (np.random.rand(), random.random()) == (expected_numpy, expected_python)
    assert (len(splits.train), len(splits.test), splits.in_shape) == (4000, 1000, (40,))


def test_xsinx_has_20_noisy_points_and_a_noiseless_grid():
    splits = load_dataset("regression:xsinx", val_fraction=0)
    x, y = splits.train.inputs[:, 0].double(), splits.train.targets[:, 0].double()
    assert len(x) == 20 and x.min() >= 0 and x.max() <= 10
    residual_std = (y - x * torch.sin(x)).std()
    # 20 draws of N(0, 1): the sample std has sd ≈ 1/sqrt(38) ≈ 0.16; allow ±3 sd.
    assert 0.5 < residual_std < 1.5
    grid, truth = splits.test.inputs[:, 0].double(), splits.test.targets[:, 0].double()
    torch.testing.assert_close(truth, grid * torch.sin(grid), atol=1e-5, rtol=0)


def test_piecewise_takes_its_levels_on_equal_pieces():
    splits = load_dataset("regression:piecewise", val_fraction=0, noise=0.0, levels=(2.0, -3.0))
    grid, truth = splits.test.inputs[:, 0], splits.test.targets[:, 0]
    assert torch.equal(truth[grid < 5], torch.full_like(truth[grid < 5], 2.0))
    assert torch.equal(truth[grid >= 5], torch.full_like(truth[grid >= 5], -3.0))


def test_regression_options_are_checked():
    with pytest.raises(ValueError, match="low < high"):
        load_dataset("regression:xsinx", interval=(10, 0))
