"""The theory behind two script recipes: VCL Theorem 2 (vcl_fig2), DA Property 2 (da_property2)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from study.recipes import load_recipe, load_script
from trainables.models import build_model
from trainables.regularizers import VarianceConstancy


@pytest.fixture(scope="module")
def vcl():
    return load_script(load_recipe("vcl_fig2"))


@pytest.fixture(scope="module")
def da():
    return load_script(load_recipe("da_property2"))


@pytest.fixture(scope="module")
def mixture(vcl):
    return vcl.Mixture(4.0, (0.5, 2.0))


def test_shift_ratio_closed_form_is_0_9377_at_p_0_95_and_1_at_p_1(da):
    assert da.shift_ratio(0.95) == pytest.approx(0.9377, abs=5e-5)
    assert da.shift_ratio(1.0) == pytest.approx(1.0, abs=1e-12)


def test_shift_ratio_closed_form_matches_eq_17_and_lies_in_0_8_to_1(da):
    for p in np.linspace(0.01, 1.0, 100):
        eq17 = ((math.pi - 1) * p**2 - 2 * math.pi * p + 2 * math.pi) / (
            2 * math.pi - math.pi * p - p**2
        )
        assert da.shift_ratio(p) == pytest.approx(eq17, rel=1e-12)
        assert 0.8 <= da.shift_ratio(p) <= 1.0


def test_monte_carlo_shift_ratio_is_near_the_closed_form(da):
    # 100000 draws of width 16: the ratio's std over seeds is about 0.0024 (measured), so 0.01
    # is a 4-sigma tolerance.
    for p in (0.7, 0.95):
        assert da.monte_carlo_ratio(p, seed=0, samples=100_000, width=16) == pytest.approx(
            da.shift_ratio(p), abs=0.01
        )
    assert da.monte_carlo_ratio(1.0, seed=0, samples=1000, width=4) == pytest.approx(1.0)


def test_probing_a_relu_net_gives_ratio_one_and_leaves_the_generator_alone(da):
    torch.manual_seed(0)
    batches = [torch.randn(16, 1, 28, 28) for _ in range(2)]
    for p, exact in ((1.0, True), (0.95, False)):
        model = build_model(
            "pgrid_cnn", 10, (1, 28, 28), activation="drop_activation", activation_options={"p": p}
        )
        before = torch.random.get_rng_state()
        found = da.shift_ratios(model, batches, seed=3)
        assert torch.equal(before, torch.random.get_rng_state())
        assert not any(m.training for m in model.modules())
        for i in (1, 2, 3):
            ratio = found[f"ratio_block{i}"]
            assert ratio == pytest.approx(1.0) if exact else 0.5 < ratio < 1.5


def test_theorem_2_thresholds_are_0_2113_and_0_7887(vcl):
    low, high = vcl.THRESHOLDS
    assert low == pytest.approx(0.2113, abs=5e-5) and high == pytest.approx(0.7887, abs=5e-5)
    assert vcl.alpha_term(low) == pytest.approx(0.0, abs=1e-12)


def test_theorem_2_merges_at_q_0_1_and_separates_at_q_0_25(vcl):
    assert not vcl.predicted_separates(0.1) and vcl.predicted_separates(0.25)
    assert not vcl.predicted_separates(0.9) and vcl.predicted_separates(0.5)


def test_lda_direction_is_the_mean_axis_and_merge_direction_the_other(vcl, mixture):
    assert np.allclose(np.abs(mixture.lda_direction()), [1, 0])
    assert np.allclose(np.abs(mixture.merge_direction()), [0, 1])


def test_a_direction_separates_when_nearer_lda_than_merge(vcl, mixture):
    assert vcl.separates(np.array([1.0, 0.1]), mixture)
    assert vcl.separates(np.array([-1.0, 0.9]), mixture)
    assert not vcl.separates(np.array([0.1, 1.0]), mixture)
    assert not vcl.separates(np.array([0.9, -1.0]), mixture)


def test_eq_9_kurtosis_matches_the_sample_kurtosis(vcl, mixture):
    # 200000 points: the sample kurtosis's standard error is below 0.02 here.
    rng = np.random.default_rng(0)
    for q, theta in ((0.1, np.array([1.0, 0.0])), (0.25, np.array([1.0, 0.5]))):
        x, _ = mixture.sample(q, 200_000, rng)
        sample = stats.kurtosis(x @ theta, fisher=False)
        assert vcl.kurtosis_theory(theta, q, mixture) == pytest.approx(sample, abs=0.05)


def test_per_unit_vcl_loss_is_the_modules_eq_17(vcl):
    rho = torch.randn(8, 1, dtype=torch.float64)
    module = VarianceConstancy(1, n=4, per="channel").double()
    expected = module.layer_loss(rho).item()
    assert vcl.vcl_loss(rho[:, 0].numpy(), module.beta.item(), 4) == pytest.approx(expected)


def test_switch_estimates_find_a_clean_step(vcl):
    qs = np.repeat([0.1, 0.15, 0.2, 0.22, 0.25, 0.3, 0.5], 5)
    separated = qs > 0.21
    assert vcl.seed_switch(qs, separated) == pytest.approx(0.21)
    assert 0.2 < vcl.fit_switch(qs, separated) < 0.22
