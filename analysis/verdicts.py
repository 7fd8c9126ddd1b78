"""The verdict rules: one place for every test a reviewer checks (explained in docs/verdicts.md).

A claim is tested on what was measured, never on the paper's numbers:

- **directional** ("A beats B"): one-sided paired t-test at α = 0.025 on the seed-paired
  difference, shown with its two-sided 95% interval; no test below :data:`MIN_SEEDS` pairs;
- **equivalence** ("A is no different from B"): two one-sided tests (TOST) against a margin the
  recipe declares with its reason; equivalent only when the 90% interval lies inside ±margin;
- **optimum** ("the error is lowest at p = 0.95"): the bootstrap probability over seeds that
  each grid point is the arg-min, and a paired test of the paper's optimum against the best;
- **count** (starts, datasets): an exact one-sided sign test on the discordant pairs (McNemar);
- **table** ("DA lowers the error across the table's rows"): a random-effects estimate over the
  rows (Paule–Mandel τ² with the modified Hartung–Knapp interval, t with k − 1 df);
- **Holm** over the claims of one artifact (:func:`decide`), raw and adjusted p both kept;
- **power** beside every verdict: the smallest effect the seeds resolve at 80% power, and the
  seeds an effect of the paper's size needs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import DescrStatsW

SUPPORTED, NOT_SUPPORTED, EQUIVALENT = "supported", "not supported", "equivalent"
INCONCLUSIVE, TOO_FEW = "inconclusive", "too few seeds"
VERDICTS = (SUPPORTED, NOT_SUPPORTED, EQUIVALENT, INCONCLUSIVE, TOO_FEW)
DIRECTIONAL, EQUIVALENCE, OPTIMUM, COUNT, TABLE = (
    "directional",
    "equivalence",
    "optimum",
    "count",
    "table",
)
KINDS = (DIRECTIONAL, EQUIVALENCE, OPTIMUM, COUNT, TABLE)
EXPECTATIONS = ("better", "worse", "equivalent")

MIN_SEEDS = 3
MIN_ROWS = 3
POWER = 0.8
ONE_SIDED_ALPHA = 0.025
TOST_ALPHA = 0.05
BOOTSTRAP_ALPHA = 0.05
BOOTSTRAP_DRAWS = 10_000
MAX_SEEDS_NEEDED = 1000
PILOT = "pilot"


@dataclass(frozen=True)
class Evidence:
    """What one test measured, before the artifact's multiplicity control.

    ``estimate``/``ci_*`` are method − baseline in the report's unit (or the kind's own
    statistic); ``p`` is the one-sided p-value for the claim and ``p_against`` for its
    contrary, each judged at its own level. ``untestable`` says why no test ran.
    """

    kind: str
    n: int
    estimate: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    confidence: float = 0.95
    p: float = math.nan
    p_against: float = math.nan
    alpha: float = ONE_SIDED_ALPHA
    alpha_against: float = ONE_SIDED_ALPHA
    margin: float | None = None
    mde: float = math.nan
    seeds_needed: int | None = None
    paper_effect: float | None = None
    untestable: str = ""
    summary: str = ""
    power_note: str = ""
    missing: tuple[str, ...] = ()
    short_of_seeds: bool = False  # untestable until more seeds finish (not for want of data)

    @property
    def testable(self) -> bool:
        return not self.untestable


@dataclass(frozen=True)
class Claim:
    """A paper claim, the paper's figure, what was measured, and the verdict with its reason.

    ``key`` identifies the measurement across recipes; ``counted_in`` names the recipe whose
    count holds a claim that several recipes show (empty: counted here).
    """

    recipe: str
    scale: str
    claim: str
    paper: str
    measured: str
    verdict: str
    reason: str
    kind: str = DIRECTIONAL
    n: int = 0
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = None
    p_adjusted: float | None = None
    margin: float | None = None
    mde: float | None = None
    seeds_needed: int | None = None
    paper_effect: float | None = None
    missing: tuple[str, ...] = ()
    key: str = ""
    counted_in: str = ""

    @property
    def pilot(self) -> bool:
        return self.verdict.startswith(PILOT)

    @property
    def base_verdict(self) -> str:
        return self.verdict.removeprefix(f"{PILOT} ")

    def to_dict(self) -> dict[str, object]:
        values = {f: getattr(self, f) for f in self.__dataclass_fields__}
        values["missing"] = list(self.missing)
        return values


@dataclass(frozen=True)
class Draft:
    """A claim ready for :func:`decide`: its texts and the evidence behind it."""

    claim: str
    paper: str
    measured: str
    evidence: Evidence
    key: str = ""
    counted_in: str = ""
    notes: tuple[str, ...] = field(default=())


def expected_sign(expect: str, lower_is_better: bool) -> int:
    """The sign of method − baseline the claim predicts (+1 larger, −1 smaller, 0 none)."""
    if expect not in EXPECTATIONS:
        raise ValueError(f"expect must be one of {list(EXPECTATIONS)}, got {expect!r}")
    if expect == "equivalent":
        return 0
    better = -1 if lower_is_better else 1
    return better if expect == "better" else -better


def _paired(
    method: Mapping[int, float],
    baseline: Mapping[int, float],
    labels: tuple[str, str],
    failed: Mapping[str, Sequence[int]] | None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Differences over the seeds both arms finished, and every seed left out, with why."""
    ok = {
        name: {s for s, v in values.items() if v is not None and math.isfinite(v)}
        for name, values in zip(labels, (method, baseline))
    }
    seeds = sorted(ok[labels[0]] & ok[labels[1]])
    diffs = np.array([method[s] - baseline[s] for s in seeds], dtype=float)
    failed = failed or {}
    missing = []
    for name, other in (labels, labels[::-1]):
        for seed in sorted(set(failed.get(name, ()))):
            missing.append(f"{name} seed {seed} failed")
        for seed in sorted(ok[name] - ok[other] - set(failed.get(other, ()))):
            missing.append(f"{name} seed {seed} has no finished {other} run")
    return diffs, tuple(missing)


def _too_few(kind: str, diffs: np.ndarray, missing: tuple[str, ...], **extra) -> Evidence:
    n = len(diffs)
    why = f"too few seeds: n = {n}" if n else "no seed finished both arms"
    return Evidence(
        kind,
        n,
        estimate=float(diffs.mean()) if n else math.nan,
        untestable=why,
        missing=missing,
        **extra,
    )


def _power_solve(**kwargs) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns, then returns NaN, where no n solves
        try:
            return float(TTestPower().solve_power(alpha=ONE_SIDED_ALPHA, power=POWER, **kwargs))
        except (ValueError, RuntimeError, ZeroDivisionError):
            return math.nan


def seeds_for(effect: float, sd: float) -> int | None:
    """Paired seeds that detect ``effect`` at 80% power with the one-sided α = 0.025 t-test,
    for differences of standard deviation ``sd`` (None beyond :data:`MAX_SEEDS_NEEDED`)."""
    if not (math.isfinite(effect) and math.isfinite(sd)) or effect == 0:
        return None
    if sd == 0:
        return math.ceil(math.log(ONE_SIDED_ALPHA) / math.log(0.5))
    size = abs(effect) / sd
    if _power_at(size, MIN_SEEDS) >= POWER:  # the solver has no root below MIN_SEEDS
        return MIN_SEEDS
    n = _power_solve(effect_size=size, nobs=None, alternative="larger")
    if not math.isfinite(n) or n > MAX_SEEDS_NEEDED:
        return None
    return max(MIN_SEEDS, math.ceil(n))


def _power_at(effect_size: float, nobs: int) -> float:
    """Power of the one-sided α = 0.025 paired t-test at ``nobs`` seeds."""
    return float(
        TTestPower().power(
            effect_size=effect_size, nobs=nobs, alpha=ONE_SIDED_ALPHA, alternative="larger"
        )
    )


def directional(
    method: Mapping[int, float],
    baseline: Mapping[int, float],
    sign: int,
    paper_effect: float | None = None,
    labels: tuple[str, str] = ("method", "baseline"),
    failed: Mapping[str, Sequence[int]] | None = None,
) -> Evidence:
    """One-sided paired t-test that method − baseline has sign ``sign`` (±1).

    Identical differences (a discrete metric on a small test set) leave no spread for a t-test:
    then the exact sign test over the seeds decides (p = 0.5ⁿ).
    """
    if sign not in (1, -1):
        raise ValueError(f"a directional claim needs sign ±1, got {sign}")
    diffs, missing = _paired(method, baseline, labels, failed)
    n = len(diffs)
    if n < MIN_SEEDS:
        return _too_few(DIRECTIONAL, diffs, missing, paper_effect=paper_effect)
    mean, sd = float(diffs.mean()), float(diffs.std(ddof=1))
    if sd == 0 or np.ptp(diffs) == 0:
        towards = mean * sign
        p = 0.5**n if towards > 0 else 1.0
        p_against = 0.5**n if towards < 0 else 1.0
        return Evidence(
            DIRECTIONAL,
            n,
            mean,
            mean,
            mean,
            p=p,
            p_against=p_against,
            mde=0.0 if mean != 0 else math.nan,
            seeds_needed=None,
            paper_effect=paper_effect,
            summary=f"all {n} paired differences equal {mean:+.3g}: exact sign test p = {p:.2g}",
            missing=missing,
        )
    oriented = DescrStatsW(diffs * sign)
    _, p, _ = oriented.ttest_mean(0.0, alternative="larger")
    _, p_against, _ = oriented.ttest_mean(0.0, alternative="smaller")
    low, high = DescrStatsW(diffs).tconfint_mean(alpha=0.05)
    mde = _power_solve(effect_size=None, nobs=n, alternative="larger") * sd
    needed = seeds_for(paper_effect, sd) if paper_effect else None
    return Evidence(
        DIRECTIONAL,
        n,
        mean,
        float(low),
        float(high),
        p=float(p),
        p_against=float(p_against),
        mde=mde,
        seeds_needed=needed,
        paper_effect=paper_effect,
        summary=f"one-sided paired t-test p = {float(p):.2g}",
        missing=missing,
    )


def equivalence(
    method: Mapping[int, float],
    baseline: Mapping[int, float],
    margin: float,
    labels: tuple[str, str] = ("method", "baseline"),
    failed: Mapping[str, Sequence[int]] | None = None,
) -> Evidence:
    """Two one-sided tests that |method − baseline| < ``margin``: equivalent when the 90%
    interval lies inside ±margin. Its contrary: the difference exceeds the margin."""
    if not (isinstance(margin, (int, float)) and margin > 0):
        raise ValueError(f"an equivalence claim needs a margin > 0, got {margin!r}")
    diffs, missing = _paired(method, baseline, labels, failed)
    n = len(diffs)
    if n < MIN_SEEDS:
        return _too_few(EQUIVALENCE, diffs, missing, margin=margin, alpha=TOST_ALPHA)
    mean, sd = float(diffs.mean()), float(diffs.std(ddof=1))
    common = {"alpha": TOST_ALPHA, "alpha_against": TOST_ALPHA, "margin": margin}
    if sd == 0 or np.ptp(diffs) == 0:
        inside = abs(mean) < margin
        return Evidence(
            EQUIVALENCE,
            n,
            mean,
            mean,
            mean,
            confidence=0.90,
            p=0.5**n if inside else 1.0,
            p_against=1.0 if inside else 0.5**n,
            summary=f"all {n} paired differences equal {mean:+.3g}: exact sign test",
            missing=missing,
            **common,
        )
    data = DescrStatsW(diffs)
    p, _, _ = data.ttost_mean(-margin, margin)
    low, high = data.tconfint_mean(alpha=2 * TOST_ALPHA)
    above = data.ttest_mean(margin, alternative="larger")[1]
    below = data.ttest_mean(-margin, alternative="smaller")[1]
    se = sd / math.sqrt(n)
    resolvable = abs(mean) + stats.t.ppf(1 - TOST_ALPHA, n - 1) * se
    return Evidence(
        EQUIVALENCE,
        n,
        mean,
        float(low),
        float(high),
        confidence=0.90,
        p=float(p),
        p_against=float(min(above, below)),
        mde=float(resolvable),
        seeds_needed=_tost_seeds(margin, sd),
        summary=f"TOST p = {float(p):.2g} against ±{margin:g}",
        missing=missing,
        **common,
    )


def _tost_seeds(margin: float, sd: float) -> int | None:
    """Seeds for 80% TOST power when the true difference is 0 (t approximation)."""
    for n in range(MIN_SEEDS, MAX_SEEDS_NEEDED + 1):
        shift = margin / (sd / math.sqrt(n)) - stats.t.ppf(1 - TOST_ALPHA, n - 1)
        if 2 * stats.t.cdf(shift, n - 1) - 1 >= POWER:
            return n
    return None


def count(wins: int, losses: int, what: str = "pairs") -> Evidence:
    """Exact one-sided sign test on discordant pairs (McNemar's exact test, one-sided): the
    method wins more of the ``wins + losses`` pairs where the two differ."""
    total = wins + losses
    if total == 0:
        return Evidence(COUNT, 0, untestable=f"no {what} where the two differ")
    p = stats.binomtest(wins, total, 0.5, alternative="greater").pvalue
    p_against = stats.binomtest(wins, total, 0.5, alternative="less").pvalue
    interval = stats.binomtest(wins, total, 0.5).proportion_ci(0.95)
    return Evidence(
        COUNT,
        total,
        wins / total,
        float(interval.low),
        float(interval.high),
        p=float(p),
        p_against=float(p_against),
        summary=f"{wins} vs {losses} discordant {what}: exact one-sided sign test p = {p:.2g}",
    )


def optimum(
    values: Mapping[float, Mapping[int, float]],
    paper_x: float,
    lower_is_better: bool,
    draws: int = BOOTSTRAP_DRAWS,
    seed: int = 0,
) -> tuple[Evidence, dict[float, float]]:
    """The paper's optimum against the grid: bootstrap over seeds of the arg-min, and a paired
    one-sided test of the measured best against the paper's point.

    Seeds are resampled jointly across grid points (a seed's runs share its data order), on
    the seeds every point finished. ``p`` = 1 − P(arg-min = ``paper_x``), judged at 0.05;
    ``p_against`` = the paired test that the measured best beats ``paper_x``, at 0.025.
    Returns the evidence and P(arg-min = x) for every x.
    """
    xs = sorted(values)
    if paper_x not in values:
        return Evidence(OPTIMUM, 0, untestable=f"no runs at the paper's optimum {paper_x:g}"), {}
    seeds = sorted(set.intersection(*(set(_finite(values[x])) for x in xs)))
    if len(seeds) < MIN_SEEDS:
        diffs = np.zeros(len(seeds))
        return _too_few(OPTIMUM, diffs, (), alpha=BOOTSTRAP_ALPHA), {}
    table = np.array([[values[x][s] for s in seeds] for x in xs])
    pick = np.argmin if lower_is_better else np.argmax
    rng = np.random.default_rng(seed)
    resampled = rng.integers(0, len(seeds), size=(draws, len(seeds)))
    winners = pick(table[:, resampled].mean(axis=2), axis=0)
    share = {x: float(np.mean(winners == i)) for i, x in enumerate(xs)}
    means = table.mean(axis=1)
    best = xs[int(pick(means))]
    at_paper = dict(zip(seeds, table[xs.index(paper_x)]))
    at_best = dict(zip(seeds, table[xs.index(best)]))
    p = 1.0 - share[paper_x]
    ranked = ", ".join(f"{x:g}: {share[x]:.0%}" for x in sorted(xs, key=lambda x: -share[x])[:4])
    summary = f"bootstrap P(arg-min) over {len(seeds)} seeds: {ranked}"
    if best == paper_x:
        return (
            Evidence(
                OPTIMUM,
                len(seeds),
                0.0,
                p=p,
                p_against=1.0,
                alpha=BOOTSTRAP_ALPHA,
                summary=summary,
            ),
            share,
        )
    worse = 1 if lower_is_better else -1
    test = directional(at_paper, at_best, worse, labels=(f"{paper_x:g}", f"{best:g}"))
    return (
        replace(
            test,
            kind=OPTIMUM,
            p=p,
            p_against=test.p,
            alpha=BOOTSTRAP_ALPHA,
            summary=f"{summary}; the best ({best:g}) beats {paper_x:g}: {test.summary}",
        ),
        share,
    )


def _finite(values: Mapping[int, float]) -> dict[int, float]:
    return {s: v for s, v in values.items() if v is not None and math.isfinite(v)}


def across_rows(
    rows: Mapping[str, tuple[Mapping[int, float], Mapping[int, float]]], sign: int
) -> Evidence:
    """Random-effects estimate of method − baseline over a table's rows (Paule–Mandel τ²,
    Hartung–Knapp interval with k − 1 df and the usual modification: its standard error never
    below the plain random-effects one), one-sided in the direction ``sign``.

    Each row contributes its mean paired difference and that mean's variance; rows with fewer
    than :data:`MIN_SEEDS` paired seeds (a row's own verdict needs as many) or no spread are
    listed as left out. τ² is truncated at 0, as every moment estimator must be: statsmodels'
    DerSimonian–Laird is not, and where the rows agree more than their variances say (Q < k − 1)
    its negative τ² gave rows negative weights and a NaN standard error, read as p = 0.
    """
    effects, variances, left_out = [], [], []
    agree = short = 0
    for name, (method, baseline) in rows.items():
        diffs, _ = _paired(method, baseline, ("method", "baseline"), None)
        short += int(len(diffs) < MIN_SEEDS)
        if len(diffs) < MIN_SEEDS or np.ptp(diffs) == 0:
            spread = "" if len(diffs) < MIN_SEEDS else ", no spread"
            left_out.append(f"{name} ({len(diffs)} paired seeds{spread})")
            continue
        effects.append(float(diffs.mean()))
        variances.append(float(diffs.var(ddof=1) / len(diffs)))
        agree += int(np.sign(effects[-1]) == sign)
    k = len(effects)
    missing = tuple(f"row {row} left out" for row in left_out)
    if k < MIN_ROWS:
        untestable = f"too few rows: k = {k}"
        seeds_would_do = k + short >= MIN_ROWS
        if seeds_would_do:
            untestable += f" until more seeds finish (a row needs {MIN_SEEDS} paired seeds)"
        return Evidence(
            TABLE, k, untestable=untestable, missing=missing, short_of_seeds=seeds_would_do
        )
    result = combine_effects(np.array(effects), np.array(variances), method_re="pm")
    pooled = float(result.mean_effect_re)
    se = max(float(result.sd_eff_w_re_hksj), float(result.sd_eff_w_re))
    if not (math.isfinite(pooled) and math.isfinite(se) and se > 0):
        untestable = f"no standard error over the {k} rows (pooled Δ {pooled:+.3g}, se {se:.3g})"
        return Evidence(TABLE, k, untestable=untestable, missing=missing)
    t = pooled * sign / se
    half = stats.t.ppf(0.975, k - 1) * se
    return Evidence(
        TABLE,
        k,
        pooled,
        pooled - half,
        pooled + half,
        p=float(stats.t.sf(t, k - 1)),
        p_against=float(stats.t.cdf(t, k - 1)),
        summary=(
            f"random effects over {k} rows: pooled Δ {pooled:+.3g}, τ² = {float(result.tau2):.2g}, "
            f"{agree} of {k} rows in the claimed direction"
        ),
        missing=missing,
    )


def holm(pvalues: Sequence[float], alphas: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment over one artifact's tests, each at its own level.

    Tests at different levels (0.025 one-sided, 0.05 TOST) are put on one scale first,
    p · (0.025 / α) — the weighted Holm procedure with weights ∝ α — and the adjusted value is
    returned on the test's own scale, so ``adjusted < α`` is the decision. NaN stays NaN.
    """
    scaled = [p * ONE_SIDED_ALPHA / a for p, a in zip(pvalues, alphas)]
    index = [i for i, p in enumerate(scaled) if math.isfinite(p)]
    adjusted = [math.nan] * len(scaled)
    if index:
        _, out, _, _ = multipletests([scaled[i] for i in index], method="holm")
        for i, value in zip(index, out):
            adjusted[i] = min(1.0, float(value) * alphas[i] / ONE_SIDED_ALPHA)
    return adjusted


def _fmt(value: float) -> str:
    return f"{value:+.3g}"


def _interval(evidence: Evidence) -> str:
    if not math.isfinite(evidence.ci_low):
        return ""
    level = round(100 * evidence.confidence)
    return f"{level}% CI [{_fmt(evidence.ci_low)}, {_fmt(evidence.ci_high)}]"


def power_note(evidence: Evidence) -> str:
    """ "resolves effects ≥ X; the paper's effect Y needs N seeds" (or the kind's equivalent)."""
    if evidence.power_note:
        return evidence.power_note
    if evidence.kind == EQUIVALENCE and math.isfinite(evidence.mde):
        needed = evidence.seeds_needed
        tail = f"; ±{evidence.margin:g} needs {needed} seeds" if needed else ""
        return f"these seeds establish equivalence only within ±{evidence.mde:.3g}{tail}"
    if evidence.kind not in (DIRECTIONAL, OPTIMUM) or not math.isfinite(evidence.mde):
        return ""
    note = f"resolves effects ≥ {evidence.mde:.3g}"
    effect = evidence.paper_effect
    if effect:
        outside = (
            math.isfinite(evidence.ci_high) and not evidence.ci_low <= effect <= evidence.ci_high
        )
        if outside:
            note += f"; the paper's effect {_fmt(effect)} lies outside the interval"
        elif evidence.seeds_needed:
            note += f"; the paper's effect {_fmt(effect)} needs {evidence.seeds_needed} seeds"
        else:
            note += f"; the paper's effect {_fmt(effect)} needs over {MAX_SEEDS_NEEDED} seeds"
    return note


def _seeded(evidence: Evidence) -> bool:
    """A kind whose test pairs seeds, so that more seeds can make it testable."""
    return evidence.kind in (DIRECTIONAL, EQUIVALENCE, OPTIMUM)


def _verdict(evidence: Evidence, p_adj: float, against_adj: float) -> str:
    if not evidence.testable:
        seeds_decide = _seeded(evidence) and evidence.n < MIN_SEEDS
        return TOO_FEW if seeds_decide or evidence.short_of_seeds else INCONCLUSIVE
    if p_adj < evidence.alpha:
        return EQUIVALENT if evidence.kind == EQUIVALENCE else SUPPORTED
    if against_adj < evidence.alpha_against:
        return NOT_SUPPORTED
    return INCONCLUSIVE


def _reason(evidence: Evidence, verdict: str, p_adj: float, against_adj: float, family: int) -> str:
    if not evidence.testable:
        reason = evidence.untestable
        if _seeded(evidence) and 0 < evidence.n < MIN_SEEDS:
            reason += f" (a verdict needs {MIN_SEEDS} paired seeds)"
    else:
        parts = [evidence.summary]
        interval = _interval(evidence)
        if interval and evidence.kind != COUNT:
            parts.append(interval)
        if family > 1:
            parts.append(f"Holm-adjusted p = {p_adj:.2g} over {family} tests")
        if verdict == NOT_SUPPORTED:
            parts.append(
                f"the opposite direction holds: p = {evidence.p_against:.2g}"
                + (f" (Holm {against_adj:.2g})" if family > 1 else "")
            )
        if verdict not in (SUPPORTED, EQUIVALENT):
            note = power_note(evidence)
            if note:
                parts.append(note)
        reason = "; ".join(p for p in parts if p)
    if evidence.missing:
        reason += "; left out: " + ", ".join(evidence.missing)
    return reason


def decide(drafts: Sequence[Draft], recipe: str, scale: str) -> list[Claim]:
    """Verdicts for one artifact's claims: Holm over its testable claims (for and against
    separately), then each claim's verdict from its adjusted p; ``pilot`` below paper scale."""
    evidence = [d.evidence for d in drafts]
    p_adj = holm([e.p if e.testable else math.nan for e in evidence], [e.alpha for e in evidence])
    against = holm(
        [e.p_against if e.testable else math.nan for e in evidence],
        [e.alpha_against for e in evidence],
    )
    family = sum(e.testable for e in evidence)
    claims = []
    for draft, e, adj, adj_against in zip(drafts, evidence, p_adj, against):
        verdict = _verdict(e, adj, adj_against)
        reason = _reason(e, verdict, adj, adj_against, family)
        if draft.notes:
            reason = "; ".join([reason, *draft.notes])
        shown = verdict if scale == "paper" else f"{PILOT} {verdict}"
        claims.append(
            Claim(
                recipe=recipe,
                scale=scale,
                claim=draft.claim,
                paper=draft.paper,
                measured=draft.measured,
                verdict=shown,
                reason=reason,
                kind=e.kind,
                n=e.n,
                ci_low=_number(e.ci_low),
                ci_high=_number(e.ci_high),
                p=_number(e.p) if e.testable else None,
                p_adjusted=_number(adj),
                margin=e.margin,
                mde=_number(e.mde),
                seeds_needed=e.seeds_needed,
                paper_effect=e.paper_effect,
                missing=e.missing,
                key=draft.key or f"{recipe}:{draft.claim}",
                counted_in=draft.counted_in,
            )
        )
    return claims


def _number(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None
