"""Batch augmentations: shapes, seeding, and each op doing what its paper describes."""

import pytest
import torch
from torchvision.transforms import AutoAugment, AutoAugmentPolicy
from torchvision.transforms.autoaugment import _apply_op

from trainables.data import Augment, list_augmentations
from trainables.data.augment import cutout, horizontal_flip, random_crop, standard
from trainables.data.autoaugment import _magnitudes, autoaugment_cifar10


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator(seed))


def apply(augment: Augment, x: torch.Tensor, seed: int) -> torch.Tensor:
    g = generator(seed)
    return augment.normalized(augment.raw(x, g).float(), g)


@pytest.mark.parametrize("name", list_augmentations())
def test_every_augmentation_keeps_the_batch_shape(name):
    x = images()
    assert apply(Augment(name), x, seed=0).shape == x.shape


@pytest.mark.parametrize("name", [n for n in list_augmentations() if n != "none"])
def test_same_seed_same_batch_other_seed_other_batch(name):
    x = images()
    first, again, other = (apply(Augment(name), x, seed) for seed in (1, 1, 2))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_crop_is_a_window_of_the_zero_padded_image():
    x = images(8)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    out = random_crop(x, generator(0), padding=4)
    for i in range(len(x)):
        windows = [padded[i, :, dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_crop_without_padding_is_the_identity():
    x = images()
    assert torch.equal(random_crop(x, generator(0), padding=0), x)


def test_flip_mirrors_about_half_the_images():
    x = images(1000)
    out = horizontal_flip(x, generator(0))
    flipped = sum(torch.equal(out[i], x[i].flip(-1)) for i in range(len(x)))
    kept = sum(torch.equal(out[i], x[i]) for i in range(len(x)))
    assert flipped + kept == 1000
    # Binomial(1000, 1/2): sd = 15.8; 5 sd either side of 500.
    assert 421 <= flipped <= 579


@pytest.mark.parametrize("size", [16, 8])
def test_cutout_zeroes_one_clipped_square_per_image(size):
    out = cutout(torch.ones(64, 3, 32, 32), generator(0), size=size)
    for image in out:
        assert torch.equal(image[0], image[1])
        rows, cols = torch.nonzero(image[0] == 0, as_tuple=True)
        height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert len(rows) == height * width  # a filled rectangle
        assert size // 2 <= height <= size and size // 2 <= width <= size


def test_cutout_runs_after_normalisation_so_the_hole_is_the_mean():
    augment = Augment(("standard", "cutout"), cutout_size=8)
    x = torch.full((4, 3, 32, 32), 200, dtype=torch.uint8)
    out = apply(augment, x, seed=0)
    assert (out == 0).any() and set(out.unique().tolist()) <= {0.0, 200.0}


@pytest.mark.parametrize(
    "order", [("standard", "autoaugment", "cutout"), ("cutout", "standard", "autoaugment")]
)
def test_autoaugment_protocol_is_crop_and_flip_then_the_policy_then_cutout(order):
    """AutoAugment's CIFAR protocol (da_table4's AA arms): the hole comes last, wherever listed."""
    x = images(32)
    out = apply(Augment(order, cutout_size=8), x, seed=5)
    g = generator(5)
    expected = cutout(autoaugment_cifar10(standard(x, g), g).float(), g, size=8)
    assert torch.equal(out, expected)


def test_autoaugment_of_one_image_matches_torchvision_with_the_same_random_stream():
    policy = AutoAugment(AutoAugmentPolicy.CIFAR10)
    for seed in range(40):
        x = images(1, seed=100 + seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            expected = policy(x[0])
        assert torch.equal(autoaugment_cifar10(x, generator(seed))[0], expected), seed


def test_autoaugment_gives_each_image_its_own_draw():
    x = images(1).expand(64, -1, -1, -1).contiguous()
    out = autoaugment_cifar10(x, generator(0))
    distinct = {tuple(image.flatten().tolist()) for image in out}
    assert len(distinct) > 10


def test_grouped_autoaugment_equals_applying_each_images_draws_one_by_one():
    x, seed = images(64), 3
    g = generator(seed)
    choice = torch.randint(25, (64,), generator=g).tolist()
    coins = torch.rand((64, 2), generator=g).tolist()
    signs = torch.randint(2, (64, 2), generator=g).tolist()
    policy, space = AutoAugment(AutoAugmentPolicy.CIFAR10), _magnitudes(32, 32)
    expected = x.clone()
    for i in range(64):
        for step, (op, p, magnitude_id) in enumerate(policy.policies[choice[i]]):
            if coins[i][step] <= p:
                values, signed = space[op]
                magnitude = values[magnitude_id] if magnitude_id is not None else 0.0
                magnitude = -magnitude if signed and signs[i][step] == 0 else magnitude
                expected[i : i + 1] = _apply_op(
                    expected[i : i + 1], op, magnitude, policy.interpolation, None
                )
    assert torch.equal(autoaugment_cifar10(x, generator(seed)), expected)


def test_unknown_augmentation_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown augmentation 'mixup'.*'cutout'"):
        Augment(("standard", "mixup"))


def test_unknown_augmentation_option_lists_the_accepted_ones():
    with pytest.raises(ValueError, match=r"cutout_size"):
        Augment("cutout", cutout_width=8)
