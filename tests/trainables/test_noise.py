"""The LRD paper's noise baselines (section 4.5): annealed gradient noise and noisy labels."""

import copy
import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from trainables.regularizers import GradientNoise, disturb_labels


def test_noise_variance_follows_eta_over_one_plus_t_to_gamma():
    opt = GradientNoise(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1))
    assert opt.noise_std(0) == pytest.approx(math.sqrt(0.1))
    assert opt.noise_std(9) == pytest.approx(math.sqrt(0.1 / 10**0.55))


@pytest.mark.parametrize("step", [0, 4])
def test_added_noise_has_the_scheduled_spread(step):
    """Zero gradients, SGD lr 1: the update is minus the noise. Its sample std over N = 100_000
    elements has relative std 1/sqrt(2N) = 0.0022; allow 5 of those. Mean: std sigma/sqrt(N)."""
    weight = nn.Parameter(torch.zeros(100_000))
    opt = GradientNoise(
        torch.optim.SGD([weight], lr=1.0), generator=torch.Generator().manual_seed(0)
    )
    opt.noise_step = step
    weight.grad = torch.zeros_like(weight)
    opt.step()
    sigma = opt.noise_std(step)
    assert weight.std().item() == pytest.approx(sigma, rel=5 * 0.0022)
    assert abs(weight.mean().item()) < 5 * sigma / math.sqrt(100_000)
    assert opt.noise_step == step + 1


def test_noise_step_survives_a_state_dict_round_trip():
    model = nn.Linear(3, 3)
    opt = GradientNoise(torch.optim.SGD(model.parameters(), lr=0.1))
    for _ in range(3):
        model.weight.grad = torch.zeros_like(model.weight)
        opt.step()
    state = copy.deepcopy(opt.state_dict())
    fresh = GradientNoise(torch.optim.SGD(model.parameters(), lr=0.1))
    fresh.load_state_dict(state)
    assert fresh.noise_step == 3


@pytest.mark.parametrize(("kwargs", "match"), [({"eta": -1.0}, "eta"), ({"gamma": -0.1}, "gamma")])
def test_bad_noise_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GradientNoise(torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), **kwargs)


class TestDisturbLabels:
    def test_flipped_fraction_is_binomial(self):
        """N = 200_000 labels, rate 0.05: flips ~ Binomial, mean 10_000, std 97.5; allow 5 std."""
        targets = torch.randint(0, 10, (200_000,), generator=torch.Generator().manual_seed(0))
        noisy = disturb_labels(targets, 10, 0.05, torch.Generator().manual_seed(1))
        assert abs((noisy != targets).sum().item() - 10_000) < 5 * 97.5

    def test_a_replaced_label_is_uniform_over_the_other_classes(self):
        """Class 3 relabelled: the new labels are uniform over the 9 others (chi-square,
        fixed seed, p-value asserted above 1e-3) and never 3."""
        targets = torch.full((300_000,), 3)
        noisy = disturb_labels(targets, 10, 0.2, torch.Generator().manual_seed(2))
        new = noisy[noisy != targets].numpy()
        counts = np.bincount(new, minlength=10)
        assert counts[3] == 0
        _, pvalue = stats.chisquare(np.delete(counts, 3))
        assert pvalue > 1e-3

    def test_rate_zero_changes_nothing(self):
        targets = torch.arange(10)
        assert torch.equal(disturb_labels(targets, 10, 0.0), targets)

    @pytest.mark.parametrize(
        ("rate", "classes", "match"), [(1.5, 10, "rate"), (0.1, 1, "num_classes")]
    )
    def test_bad_inputs(self, rate, classes, match):
        with pytest.raises(ValueError, match=match):
            disturb_labels(torch.zeros(3, dtype=torch.long), classes, rate)
