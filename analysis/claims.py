"""Verdicts on the papers' claims from measured statistics: supported, not supported, inconclusive.

A claim compares a method with its baseline in the direction the paper
reports. The verdict follows the 95% interval of the paired difference over
seeds: it must exclude zero on the paper's side to support the claim, on the
other side to contradict it; otherwise the measurement cannot tell at this
scale, and the reason says why.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .aggregate import PairedComparison

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"


@dataclass(frozen=True)
class Claim:
    """A paper claim, the paper's figure, what we measured, and the verdict with its reason."""

    recipe: str
    scale: str
    claim: str
    paper: str
    measured: str
    verdict: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def paper_direction(method: float | None, baseline: float | None, lower_is_better: bool) -> int:
    """+1 if the paper reports the method better than the baseline, -1 if worse, 0 if equal."""
    if method is None or baseline is None or method == baseline:
        return 0
    better = method < baseline if lower_is_better else method > baseline
    return 1 if better else -1


def claim_text(if_better: str, direction: int, method: str, baseline: str, where: str) -> str:
    """The claim as the paper makes it: ``if_better`` when it reports the method better, else
    that the method is worse than (or no different from) the baseline ``where``."""
    if direction > 0:
        return if_better
    relation = "worse than" if direction < 0 else "no different from"
    return f"{method} is {relation} {baseline}{where}, as the paper reports"


def _fmt(value: float) -> str:
    return f"{value:+.3g}"


def comparison_verdict(
    comparison: PairedComparison, lower_is_better: bool, direction: int = 1
) -> tuple[str, str]:
    """Verdict and reason for "method differs from baseline in ``direction``" (1 better, -1 worse,
    0 no difference) given the paired comparison (method minus baseline)."""
    n = comparison.n
    if n < 2 or math.isnan(comparison.ci_low):
        return INCONCLUSIVE, f"{n} paired seed(s): too few for an interval"
    low, high = comparison.ci_low, comparison.ci_high
    interval = f"95% CI of the paired difference [{_fmt(low)}, {_fmt(high)}] (n={n}"
    interval += f", paired t p={comparison.t_pvalue:.2g})"
    if _no_spread(comparison):
        # Identical differences (a discrete metric on a small test set) give a zero-width
        # t-interval whatever n is; only the count of seeds agreeing in sign is evidence then.
        sign_p = 2 * 0.5**n
        interval = (
            f"all {n} paired differences equal {_fmt(comparison.mean_diff)} (no spread for a "
            f"t-interval; sign test p={sign_p:.2g})"
        )
        if sign_p >= 0.05:
            return INCONCLUSIVE, f"{interval}: too few seeds to decide"
    better = high < 0 if lower_is_better else low > 0
    worse = low > 0 if lower_is_better else high < 0
    if direction == 0:
        if better or worse:
            return NOT_SUPPORTED, f"the paper shows no difference; {interval} excludes 0"
        return SUPPORTED, f"no difference, as in the paper: {interval} includes 0"
    agrees, disagrees = (better, worse) if direction > 0 else (worse, better)
    if agrees:
        return SUPPORTED, f"{interval} excludes 0 on the paper's side"
    if disagrees:
        return NOT_SUPPORTED, f"{interval} excludes 0 on the opposite side"
    return INCONCLUSIVE, f"{interval} includes 0 at this scale"


def _no_spread(comparison: PairedComparison) -> bool:
    width = comparison.ci_high - comparison.ci_low
    return comparison.mean_diff != 0 and width <= 1e-9 * abs(comparison.mean_diff)


def count_verdict(wins: int, losses: int, claim_more: bool = True) -> tuple[str, str]:
    """Verdict for "the method wins more often than the other" from a two-sided sign test."""
    from scipy import stats

    total = wins + losses
    if total == 0:
        return INCONCLUSIVE, "no comparisons where the two differ"
    p = float(stats.binomtest(wins, total, 0.5).pvalue)
    reason = f"{wins} wins vs {losses} over {total} decided comparisons, sign test p={p:.2g}"
    if p >= 0.05:
        return INCONCLUSIVE, reason
    more = wins > losses
    return (SUPPORTED if more == claim_more else NOT_SUPPORTED), reason
