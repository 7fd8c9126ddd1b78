"""Loaders: batches reproducible from (seed, epoch), resumable, and the same on both paths."""

import pytest
import torch

from trainables.data import DeviceLoader, Split, TorchLoader, load_dataset, make_loader


def numbered_images(n: int = 100) -> Split:
    """Image i has every pixel equal to i, so a batch's members can be read off its pixels."""
    pixels = torch.arange(n, dtype=torch.uint8)[:, None, None, None].expand(n, 3, 8, 8)
    return Split(pixels.contiguous(), torch.arange(n) % 10)


def epoch_batches(loader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    return list(loader)


def same_batches(a, b) -> bool:
    return len(a) == len(b) and all(
        torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b, strict=True)
    )


def loader(cls=DeviceLoader, seed: int = 0, **kwargs):
    options = {"batch_size": 32, "augment": ("standard", "cutout"), "seed": seed} | kwargs
    return cls(load_dataset("digits", val_fraction=0).train, **options)


def test_same_seed_and_epoch_give_the_same_batches():
    assert same_batches(epoch_batches(loader(), 4), epoch_batches(loader(), 4))


def test_another_epoch_or_seed_gives_other_batches():
    reference = epoch_batches(loader(), 0)
    assert not same_batches(reference, epoch_batches(loader(), 1))
    assert not same_batches(reference, epoch_batches(loader(seed=1), 0))


def test_a_run_resumed_at_epoch_e_sees_the_batches_of_an_uninterrupted_run():
    uninterrupted = loader()
    for epoch in range(2):
        epoch_batches(uninterrupted, epoch)
    assert same_batches(epoch_batches(uninterrupted, 2), epoch_batches(loader(), 2))


def test_an_epoch_visits_every_sample_once():
    batches = epoch_batches(DeviceLoader(numbered_images(100), batch_size=16, shuffle=True), 0)
    seen = torch.cat([(x[:, 0, 0, 0] * 255).round().long() for x, _ in batches])
    assert sorted(seen.tolist()) == list(range(100))
    assert seen.tolist() != list(range(100))
    assert [len(y) for _, y in batches] == [16] * 6 + [4]


def test_drop_last_drops_the_short_batch():
    batches = DeviceLoader(numbered_images(100), batch_size=16, drop_last=True)
    assert len(batches) == 6 and [len(y) for _, y in batches] == [16] * 6


def test_batches_are_normalised_float32_with_the_given_statistics():
    split = numbered_images(10)
    mean, std = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]
    x, y = next(iter(DeviceLoader(split, batch_size=10, shuffle=False, mean=mean, std=std)))
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    torch.testing.assert_close(x, (split.inputs.float() / 255 - 0.5) / 0.25)


def test_normalised_training_features_have_zero_mean_and_unit_std():
    splits = load_dataset("uci:magic", val_fraction=0)
    x, _ = next(iter(make_loader(splits, "train", batch_size=len(splits.train), shuffle=False)))
    torch.testing.assert_close(x.mean(0), torch.zeros(10), atol=1e-4, rtol=0)
    torch.testing.assert_close(x.std(0, unbiased=False), torch.ones(10), atol=1e-4, rtol=0)


def test_device_and_torch_loaders_give_the_same_batches_on_cpu():
    device_batches = epoch_batches(loader(DeviceLoader), 3)
    torch_batches = epoch_batches(loader(TorchLoader), 3)
    assert same_batches(device_batches, torch_batches)


def test_make_loader_shuffles_and_augments_only_what_it_is_told():
    splits = load_dataset("digits")
    train = make_loader(splits, "train", batch_size=50)
    test = make_loader(splits, "test", batch_size=50)
    assert isinstance(train, DeviceLoader) and train.shuffle and not test.shuffle
    _, y = next(iter(test))
    assert torch.equal(y, splits.test.targets[:50])


def test_make_loader_without_a_validation_split_says_so():
    with pytest.raises(ValueError, match="no val split"):
        make_loader(load_dataset("digits", val_fraction=0), "val")


def test_image_augmentation_on_features_is_rejected():
    with pytest.raises(ValueError, match="needs images"):
        make_loader(load_dataset("uci:iris"), augment="standard")


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_batch_size_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(numbered_images(10), batch_size=bad)
