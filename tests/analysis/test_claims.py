"""Verdicts follow the 95% interval of the paired difference, on the paper's side or not."""

import pytest

from analysis.aggregate import PairedComparison
from analysis.claims import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    comparison_verdict,
    count_verdict,
    paper_direction,
)


def comparison(low: float, high: float, n: int = 5) -> PairedComparison:
    return PairedComparison(n, (low + high) / 2, low, high, 0.01, 0.03, -1.0)


@pytest.mark.parametrize(
    ("low", "high", "lower_is_better", "direction", "verdict"),
    [
        (-0.5, -0.1, True, 1, SUPPORTED),
        (0.1, 0.5, True, 1, NOT_SUPPORTED),
        (-0.5, 0.5, True, 1, INCONCLUSIVE),
        (0.1, 0.5, False, 1, SUPPORTED),
        (0.1, 0.5, True, -1, SUPPORTED),
        (-0.2, 0.3, True, 0, SUPPORTED),
        (0.1, 0.3, True, 0, NOT_SUPPORTED),
    ],
)
def test_comparison_verdicts(low, high, lower_is_better, direction, verdict):
    assert comparison_verdict(comparison(low, high), lower_is_better, direction)[0] == verdict


def test_too_few_seeds_is_inconclusive_and_says_so():
    verdict, reason = comparison_verdict(PairedComparison(1, 0.1, *(float("nan"),) * 5), True)
    assert verdict == INCONCLUSIVE and "1 paired seed" in reason


def test_identical_differences_are_judged_by_a_sign_test_not_a_zero_width_interval():
    """Two seeds that both lose 8 of 360 test images more give a zero-width t-interval; the sign
    test over two seeds (p = 0.5) cannot decide. Six seeds all on one side can (p = 0.031)."""
    from analysis.aggregate import paired_comparison

    two = paired_comparison({0: 0.031, 1: 0.031}, {0: 0.008, 1: 0.008})
    verdict, reason = comparison_verdict(two, lower_is_better=True)
    assert verdict == INCONCLUSIVE and "all 2 paired differences equal" in reason
    assert "sign test p=0.5" in reason
    six = paired_comparison(dict.fromkeys(range(6), 0.031), dict.fromkeys(range(6), 0.008))
    assert comparison_verdict(six, lower_is_better=True)[0] == NOT_SUPPORTED
    assert comparison_verdict(six, lower_is_better=True, direction=-1)[0] == SUPPORTED


def test_paper_direction():
    assert paper_direction(6.25, 6.77, lower_is_better=True) == 1
    assert paper_direction(8.90, 8.81, lower_is_better=True) == -1
    assert paper_direction(3.95, 3.95, lower_is_better=True) == 0
    assert paper_direction(98.2, 97.8, lower_is_better=False) == 1


def test_count_verdict_uses_a_sign_test():
    assert count_verdict(18, 2)[0] == SUPPORTED
    assert count_verdict(2, 18)[0] == NOT_SUPPORTED
    assert count_verdict(6, 4)[0] == INCONCLUSIVE
    assert count_verdict(0, 0)[0] == INCONCLUSIVE
