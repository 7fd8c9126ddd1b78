"""The order of a few configs under the verdict rules: adjacent pairs, Holm, ties by TOST."""

import math

import numpy as np
import pytest

from analysis.ranking import AHEAD, BEHIND, TIED, UNDECIDED, rank


def _seeds(mean: float, sd: float, n: int, seed: int) -> dict[int, float]:
    noise = np.random.default_rng(seed).normal(0, sd, n)
    return {s: mean + float(e) for s, e in enumerate(noise)}


def test_clearly_separated_configs_are_decided_best_first():
    values = {"b": _seeds(0.20, 0.002, 5, 1), "a": _seeds(0.10, 0.002, 5, 2)}
    ranking = rank(values, lower_is_better=True)
    assert ranking.order == ("a", "b")
    assert [p.relation for p in ranking.pairs] == [AHEAD]
    assert ranking.decided and ranking.ranks == [1, 2] and ranking.undecided() == set()
    assert ranking.seeds == {"a": 5, "b": 5}


def test_higher_is_better_reverses_the_order():
    values = {"b": _seeds(0.20, 0.002, 5, 1), "a": _seeds(0.10, 0.002, 5, 2)}
    assert rank(values, lower_is_better=False).order == ("b", "a")


def test_a_close_pair_is_undecided_and_shares_a_rank_until_a_margin_ties_it():
    shared = np.random.default_rng(3).normal(0, 0.01, 6)
    values = {
        "a": {s: 0.10 + float(e) for s, e in enumerate(shared)},
        "b": {s: 0.1001 + float(e) + 1e-4 * (-1) ** s for s, e in enumerate(shared)},
        "c": _seeds(0.30, 0.002, 6, 4),
    }
    plain = rank(values, lower_is_better=True)
    assert plain.order == ("a", "b", "c")
    assert [p.relation for p in plain.pairs] == [UNDECIDED, AHEAD]
    assert plain.ranks == [1, 1, 3] and plain.undecided() == {"a", "b"}
    assert not plain.decided

    tied = rank(values, lower_is_better=True, margin=0.01)
    assert [p.relation for p in tied.pairs] == [TIED, AHEAD]
    assert tied.decided and tied.ranks == [1, 1, 3]
    assert tied.pairs[0].says().startswith("tied: TOST p")


def test_fewer_than_three_paired_seeds_decide_nothing():
    values = {"a": {0: 0.1, 1: 0.1}, "b": {0: 0.9, 1: 0.9}}
    ranking = rank(values, lower_is_better=True)
    assert ranking.pairs[0].relation == UNDECIDED
    assert "too few seeds" in ranking.pairs[0].better.reason


def test_holm_counts_every_pair_of_the_ranking():
    values = {name: _seeds(0.1 * (i + 1), 0.02, 4, i) for i, name in enumerate("abcd")}
    ranking = rank(values, lower_is_better=True)
    assert all("over 3 tests" in p.better.reason for p in ranking.pairs if p.decided)


def test_paired_seeds_can_reverse_what_the_means_said():
    # b's mean is lower only because of a seed a never finished; on the shared seeds a wins
    values = {
        "a": {0: 0.20, 1: 0.21, 2: 0.22, 3: 0.23},
        "b": {0: 0.30, 1: 0.31, 2: 0.325, 3: 0.33, 4: -0.9},
    }
    ranking = rank(values, lower_is_better=True)
    assert ranking.order == ("b", "a")
    assert ranking.pairs[0].relation == BEHIND and ranking.decided


def test_a_config_with_no_finished_seed_ranks_last():
    values = {"a": {0: math.nan}, "b": {0: 0.2, 1: 0.3}}
    ranking = rank(values, lower_is_better=True)
    assert ranking.order == ("b", "a") and ranking.seeds["a"] == 0


@pytest.mark.parametrize(
    ("values", "margin", "says"),
    [({"a": {0: 0.1}}, None, "at least 2 configs"), ({"a": {}, "b": {}}, 0.0, "margin must be")],
)
def test_bad_input_is_refused(values, margin, says):
    with pytest.raises(ValueError, match=says):
        rank(values, lower_is_better=True, margin=margin)
