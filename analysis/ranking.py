"""Whether the order of a few configs is decided, by the verdict rules (:mod:`.verdicts`).

The configs are ordered by their mean over seeds; each one is then tested against the next on
the seeds both finished: a one-sided paired test that it is better (and, given a margin, TOST
that the two are equivalent), Holm over every test of the ranking. A pair is decided when the
better one is supported as better, when the test supports the opposite order, or when the two
are equivalent within the margin; the order is decided when every adjacent pair is.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .verdicts import (
    EQUIVALENT,
    NOT_SUPPORTED,
    SUPPORTED,
    Claim,
    Draft,
    decide,
    directional,
    equivalence,
)

AHEAD, BEHIND, TIED, UNDECIDED = "ahead", "behind", "tied", "undecided"


@dataclass(frozen=True)
class Pair:
    """One config against the next in the order: how they relate and the claims that say so."""

    first: str
    second: str
    relation: str
    better: Claim
    same: Claim | None = None

    @property
    def decided(self) -> bool:
        return self.relation != UNDECIDED

    def says(self) -> str:
        """``ahead: one-sided paired t-test p = …`` — the relation and the verdict's reason."""
        claim = self.same if self.relation == TIED and self.same else self.better
        return f"{self.relation}: {claim.reason}"


@dataclass(frozen=True)
class Ranking:
    """Configs best first (by mean), each one's seeds and mean, and the pairs between them."""

    order: tuple[str, ...]
    means: dict[str, float]
    seeds: dict[str, int]
    pairs: tuple[Pair, ...]

    @property
    def decided(self) -> bool:
        return all(pair.decided for pair in self.pairs)

    @property
    def ranks(self) -> list[int]:
        """1 for the best; a config shares the rank of the one above when the two are tied or
        not yet told apart."""
        ranks = [1]
        for i, pair in enumerate(self.pairs, start=1):
            ranks.append(ranks[-1] if pair.relation in (TIED, UNDECIDED) else i + 1)
        return ranks[: len(self.order)]

    def undecided(self) -> set[str]:
        """The configs in a pair not yet decided: those more seeds should go to."""
        return {name for p in self.pairs if not p.decided for name in (p.first, p.second)}


def rank(
    values: Mapping[str, Mapping[int, float]],
    lower_is_better: bool,
    margin: float | None = None,
) -> Ranking:
    """The decided order of ``values`` (config → seed → metric) under the verdict rules."""
    if len(values) < 2:
        raise ValueError(f"a ranking needs at least 2 configs, got {len(values)}")
    if margin is not None and not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin!r}")
    finite = {
        name: {s: v for s, v in seeds.items() if v is not None and math.isfinite(v)}
        for name, seeds in values.items()
    }
    means = {n: float(np.mean(list(s.values()))) if s else math.nan for n, s in finite.items()}
    sign = 1.0 if lower_is_better else -1.0
    order = sorted(finite, key=lambda n: (math.isnan(means[n]), sign * means[n], n))
    drafts: list[Draft] = []
    for first, second in itertools.pairwise(order):
        labels = (first, second)
        better = directional(finite[first], finite[second], -int(sign), labels=labels)
        drafts.append(Draft(f"{first} better than {second}", "", "", better))
        if margin is not None:
            same = equivalence(finite[first], finite[second], margin, labels=labels)
            drafts.append(Draft(f"{first} equivalent to {second}", "", "", same))
    claims = decide(drafts, "confirm", "paper")
    step = 2 if margin is not None else 1
    pairs = []
    for i, (first, second) in enumerate(itertools.pairwise(order)):
        better = claims[i * step]
        same = claims[i * step + 1] if margin is not None else None
        pairs.append(Pair(first, second, _relation(better, same), better, same))
    return Ranking(tuple(order), means, {n: len(s) for n, s in finite.items()}, tuple(pairs))


def _relation(better: Claim, same: Claim | None) -> str:
    if better.verdict == SUPPORTED:
        return AHEAD
    if better.verdict == NOT_SUPPORTED:
        return BEHIND
    if same is not None and same.verdict == EQUIVALENT:
        return TIED
    return UNDECIDED
