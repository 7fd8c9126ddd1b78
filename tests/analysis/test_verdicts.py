"""The verdict rules on synthetic data: each rule a reviewer checks, pinned by one test."""

import math

import numpy as np
import pytest

from analysis.verdicts import (
    EQUIVALENT,
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    TOO_FEW,
    Draft,
    across_rows,
    count,
    decide,
    directional,
    equivalence,
    expected_sign,
    holm,
    optimum,
    seeds_for,
)


def seeds(values) -> dict[int, float]:
    return dict(enumerate(values))


def verdict_of(evidence, scale="paper") -> str:
    (claim,) = decide([Draft("c", "p", "m", evidence)], "demo", scale)
    return claim.verdict


def test_a_consistent_gain_in_the_claimed_direction_is_supported():
    base = [0.10, 0.11, 0.12, 0.10, 0.11]
    better = [b - 0.01 + 0.001 * i for i, b in enumerate(base)]
    evidence = directional(seeds(better), seeds(base), sign=-1)
    assert evidence.p < 0.025 and evidence.ci_high < 0
    assert verdict_of(evidence) == SUPPORTED
    opposite = directional(seeds(base), seeds(better), sign=-1)
    assert verdict_of(opposite) == NOT_SUPPORTED


def test_two_seeds_give_no_verdict_however_large_the_effect():
    evidence = directional(seeds([0.5, 0.6]), seeds([0.1, 0.1]), sign=1)
    assert not evidence.testable and evidence.untestable == "too few seeds: n = 2"
    assert verdict_of(evidence) == TOO_FEW
    assert verdict_of(evidence, scale="quick") == f"pilot {TOO_FEW}"


def test_an_interval_that_merely_includes_zero_is_not_equivalence():
    # 90% interval about [-1.3, +1.0]: it includes 0 but not inside ±0.5.
    diffs = [-1.6, 1.2, -0.9, 0.8, -0.25]
    evidence = equivalence(seeds(diffs), seeds([0.0] * 5), margin=0.5)
    assert evidence.ci_low < -1 and evidence.ci_high > 0.8
    assert verdict_of(evidence) == INCONCLUSIVE
    tight = equivalence(seeds([0.05, -0.04, 0.02, -0.01, 0.0]), seeds([0.0] * 5), margin=0.5)
    assert tight.ci_low > -0.5 and tight.ci_high < 0.5
    assert verdict_of(tight) == EQUIVALENT
    far = equivalence(seeds([2.0, 2.1, 1.9, 2.05, 1.95]), seeds([0.0] * 5), margin=0.5)
    assert verdict_of(far) == NOT_SUPPORTED


def test_holm_adjusts_as_the_textbook_example():
    # Holm (1979) as in Wikipedia's example: p = 0.01, 0.04, 0.03, 0.005.
    adjusted = holm([0.01, 0.04, 0.03, 0.005], [0.025] * 4)
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    mixed = holm([0.01, math.nan, 0.02], [0.025, 0.025, 0.05])
    assert math.isnan(mixed[1]) and mixed[0] == pytest.approx(0.02)


def test_holm_turns_a_marginal_claim_inconclusive_in_a_larger_family():
    base = [0.10, 0.11, 0.12, 0.10, 0.11]
    marginal = directional(seeds([b - 0.004 + 0.003 * (i % 2) for i, b in enumerate(base)]),
                           seeds(base), sign=-1)  # fmt: skip
    assert marginal.p < 0.025
    alone = decide([Draft("c", "p", "m", marginal)], "demo", "paper")
    crowd = decide([Draft(f"c{i}", "p", "m", marginal) for i in range(40)], "demo", "paper")
    assert alone[0].verdict == SUPPORTED and crowd[0].verdict == INCONCLUSIVE
    assert crowd[0].p_adjusted == pytest.approx(min(1.0, 40 * marginal.p))


def test_identical_differences_fall_back_to_the_sign_test():
    # 0.5^6 = 0.016 < 0.025 decides; 0.5^5 = 0.031 cannot, however equal the differences.
    same = directional(seeds([0.2] * 6), seeds([0.1] * 6), sign=1)
    assert same.p == pytest.approx(0.5**6) and verdict_of(same) == SUPPORTED
    few = directional(seeds([0.2] * 5), seeds([0.1] * 5), sign=1)
    assert few.p == pytest.approx(0.5**5) and verdict_of(few) == INCONCLUSIVE


def test_power_says_what_the_seeds_resolve_and_what_the_paper_needs():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 5)
    method = base + rng.normal(0.0, 0.2, 5)
    evidence = directional(seeds(method), seeds(base), sign=1, paper_effect=0.05)
    sd = float(np.std(method - base, ddof=1))
    # One-sided 0.025, 80% power, n = 5: the noncentral-t effect size is about 1.68 sd.
    assert evidence.mde == pytest.approx(1.682 * sd, rel=0.01)
    assert evidence.seeds_needed == seeds_for(0.05, sd) and evidence.seeds_needed > 5
    (claim,) = decide([Draft("c", "p", "m", evidence)], "demo", "paper")
    assert claim.verdict == INCONCLUSIVE
    assert f"resolves effects ≥ {evidence.mde:.3g}" in claim.reason
    assert f"needs {evidence.seeds_needed} seeds" in claim.reason


def test_failed_seeds_are_listed_not_dropped_silently():
    evidence = directional(
        seeds([1, 2, 3, 4]),
        {0: 0.0, 1: 1.0, 2: 2.0},
        sign=1,
        labels=("DA", "ReLU"),
        failed={"ReLU": [3]},
    )
    assert evidence.n == 3 and evidence.missing == ("ReLU seed 3 failed",)
    (claim,) = decide([Draft("c", "p", "m", evidence)], "demo", "paper")
    assert "left out: ReLU seed 3 failed" in claim.reason and claim.missing == evidence.missing


def test_bootstrap_gives_the_probability_that_each_point_is_the_arg_min():
    values = {
        0.9: seeds([0.30, 0.31, 0.29, 0.30, 0.32]),
        0.95: seeds([0.20, 0.21, 0.19, 0.22, 0.20]),
        1.0: seeds([0.40, 0.41, 0.39, 0.42, 0.40]),
    }
    evidence, shares = optimum(values, 0.95, lower_is_better=True)
    assert shares == {0.9: 0.0, 0.95: 1.0, 1.0: 0.0}
    assert verdict_of(evidence) == SUPPORTED
    near = {**values, 0.9: seeds([0.21, 0.18, 0.20, 0.21, 0.21])}
    evidence, shares = optimum(near, 0.95, lower_is_better=True)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert 0.2 < shares[0.95] < 0.8 and verdict_of(evidence) == INCONCLUSIVE
    elsewhere = {**values, 0.9: seeds([0.10, 0.11, 0.09, 0.12, 0.10])}
    evidence, shares = optimum(elsewhere, 0.95, lower_is_better=True)
    assert shares[0.9] == 1.0 and verdict_of(evidence) == NOT_SUPPORTED


def test_mcnemar_on_starts_is_an_exact_one_sided_sign_test():
    evidence = count(9, 1, "starts")
    assert evidence.p == pytest.approx(11 / 1024)
    assert verdict_of(evidence) == SUPPORTED
    assert verdict_of(count(1, 9)) == NOT_SUPPORTED
    assert verdict_of(count(5, 4)) == INCONCLUSIVE
    assert verdict_of(count(0, 0)) == INCONCLUSIVE


def test_the_table_claim_pools_rows_by_random_effects():
    rng = np.random.default_rng(1)
    rows = {}
    for row in range(6):
        base = rng.normal(5, 0.3, 3)
        rows[f"r{row}"] = (seeds(base - 0.3 + rng.normal(0, 0.05, 3)), seeds(base))
    evidence = across_rows(rows, sign=-1)
    assert evidence.n == 6 and evidence.estimate == pytest.approx(-0.3, abs=0.1)
    assert verdict_of(evidence) == SUPPORTED
    assert "6 of 6 rows in the claimed direction" in evidence.summary
    two = across_rows(dict(list(rows.items())[:2]), sign=-1)
    assert not two.testable and "too few rows" in two.untestable


def test_rows_that_agree_more_than_their_noise_pool_with_tau2_zero_not_certainty():
    """The LRD Table 1 case: four rows whose means differ less than their variances say
    (Q < k − 1). Untruncated DerSimonian–Laird gave τ² < 0, a negative weight, a NaN standard
    error and p = 0: "supported", by rows three of which point the other way."""
    diffs = {
        "SGDM": [-0.02, -0.15, -0.085],
        "RMSprop": [0.06, -0.11, -0.025],
        "Adam": [0.42, -0.33, 0.045],
        "AMSGrad": [-0.07, -0.15, -0.11],
    }
    rows = {name: (seeds(d), seeds([0.0] * 3)) for name, d in diffs.items()}
    evidence = across_rows(rows, sign=1)
    means = np.array([np.mean(d) for d in diffs.values()])
    variances = np.array([np.var(d, ddof=1) / 3 for d in diffs.values()])
    weights = 1 / variances
    assert "τ² = 0," in evidence.summary  # truncated: the rows agree
    assert evidence.estimate == pytest.approx((weights * means).sum() / weights.sum())
    assert evidence.estimate < 0 and 0.5 < evidence.p < 1
    assert evidence.ci_low < evidence.estimate < evidence.ci_high < 0  # pooled, they point down
    assert verdict_of(evidence) == NOT_SUPPORTED
    assert "1 of 4 rows in the claimed direction" in evidence.summary


def test_a_table_claim_leaves_out_rows_below_a_row_verdict_s_seeds():
    rows = {f"r{i}": (seeds([1.0 + i, 1.2 + i]), seeds([0.5, 0.6])) for i in range(4)}
    evidence = across_rows(rows, sign=1)
    assert not evidence.testable and "too few rows: k = 0 until more seeds" in evidence.untestable
    assert all("(2 paired seeds)" in line for line in evidence.missing)
    assert verdict_of(evidence) == TOO_FEW  # a third seed per row makes it testable
    two_rows = across_rows(dict(list(rows.items())[:2]), sign=1)
    assert verdict_of(two_rows) == INCONCLUSIVE  # no seeds make two rows a table


def test_a_claim_has_a_direction_or_is_refused():
    assert expected_sign("better", lower_is_better=True) == -1
    assert expected_sign("worse", lower_is_better=True) == 1
    assert expected_sign("better", lower_is_better=False) == 1
    with pytest.raises(ValueError, match="expect must be one of"):
        expected_sign("", lower_is_better=True)


def test_an_effect_far_above_the_noise_needs_the_fewest_seeds_not_over_a_thousand():
    """The t-test power solver has no root below 3 seeds; a huge effect is 3, not 'unsolvable'."""
    from statsmodels.stats.power import TTestPower

    assert seeds_for(0.98, 0.07) == 3
    assert seeds_for(-0.98, 0.07) == 3
    assert (
        TTestPower().power(effect_size=0.98 / 0.07, nobs=3, alpha=0.025, alternative="larger") > 0.8
    )
    assert seeds_for(0.01, 1.0) is None
