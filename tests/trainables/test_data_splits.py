"""Splits: the seeded validation split, the official test set kept apart, train statistics."""

import pytest
import torch

from trainables.data import DatasetSplits, Split, load_dataset
from trainables.data.splits import input_stats, split_off_validation, to_rgb32


def numbered_split(n: int) -> Split:
    """Sample i has the single feature i, so a split's members can be read off its inputs."""
    return Split(torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n) % 3)


def members(split: Split) -> set[int]:
    return {int(v) for v in split.inputs[:, 0]}


def test_validation_split_is_disjoint_from_train_and_covers_it():
    train, val = split_off_validation(numbered_split(1000), val_fraction=0.1, seed=0)
    assert len(val) == 100 and len(train) == 900
    assert members(train).isdisjoint(members(val))
    assert members(train) | members(val) == set(range(1000))


def test_validation_split_is_a_function_of_the_seed():
    _, val_a = split_off_validation(numbered_split(1000), 0.1, seed=7)
    _, val_b = split_off_validation(numbered_split(1000), 0.1, seed=7)
    _, val_c = split_off_validation(numbered_split(1000), 0.1, seed=8)
    assert members(val_a) == members(val_b)
    assert members(val_a) != members(val_c)


def test_targets_follow_their_inputs_into_the_split():
    train, val = split_off_validation(numbered_split(100), 0.2, seed=0)
    for part in (train, val):
        assert torch.equal(part.targets, part.inputs[:, 0].long() % 3)


def test_val_fraction_zero_gives_no_validation_split():
    splits = load_dataset("optdigits", val_fraction=0)
    assert splits.val is None
    assert len(splits.train) == 3823


def test_official_test_set_is_the_same_whatever_the_seed_and_val_fraction():
    a = load_dataset("optdigits", val_fraction=0.1, seed=0)
    b = load_dataset("optdigits", val_fraction=0.3, seed=5)
    assert len(a.test) == 1797
    assert torch.equal(a.test.inputs, b.test.inputs)
    assert len(a.train) + len(a.val) == len(b.train) + len(b.val) == 3823


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, "0.1", None, True])
def test_val_fraction_outside_zero_one_is_rejected(bad):
    with pytest.raises(ValueError, match=r"val_fraction.*\[0, 1\)"):
        load_dataset("optdigits", val_fraction=bad)


def test_val_fraction_that_leaves_an_empty_split_is_rejected():
    with pytest.raises(ValueError, match="both must be non-empty"):
        split_off_validation(numbered_split(20), val_fraction=0.01, seed=0)


def test_image_statistics_are_per_channel_on_the_unit_scale():
    images = torch.zeros(4, 2, 3, 3, dtype=torch.uint8)
    images[:2, 0] = 255
    images[:, 1] = 51
    mean, std = input_stats(Split(images, torch.zeros(4, dtype=torch.int64)))
    torch.testing.assert_close(mean, torch.tensor([0.5, 0.2]))
    torch.testing.assert_close(std, torch.tensor([0.5, 1.0]))  # constant channel: std 1


def test_split_rejects_inputs_of_the_wrong_kind():
    with pytest.raises(ValueError, match="uint8"):
        Split(torch.zeros(3, 1, 4, 4), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="3 inputs but 2 targets"):
        Split(torch.zeros(3, 2), torch.zeros(2, dtype=torch.int64))


def test_to_rgb32_centres_the_digit_and_repeats_the_channel():
    images = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    rgb = to_rgb32(Split(images, torch.zeros(5, dtype=torch.int64))).inputs
    assert rgb.shape == (5, 3, 32, 32)
    for channel in range(3):
        assert torch.equal(rgb[:, channel, 2:30, 2:30], images[:, 0])
    assert rgb[:, :, :2].sum() == 0 and rgb[:, :, :, 30:].sum() == 0


def test_to_rgb32_via_load_dataset_sets_the_model_input_shape():
    splits = load_dataset("optdigits", to_rgb32=True)
    assert splits.in_shape == (3, 32, 32)
    assert splits.mean.shape == (3,)


def test_summary_names_the_sizes():
    splits = load_dataset("regression:xsinx", val_fraction=0.25)
    assert isinstance(splits, DatasetSplits)
    assert "train=15, val=5, test=1000" in repr(splits)
    assert "mean" in splits.summary() and "Split(n=15" in splits.summary()
