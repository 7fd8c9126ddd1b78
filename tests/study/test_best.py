"""`study best` ranks: equal means share a rank, whatever order the sort left them in."""

import math

import pandas as pd

from study.best import render, shared_ranks


def test_equal_means_share_a_rank_and_the_next_rank_skips():
    assert shared_ranks([0.1, 0.2, 0.2, 0.3]) == [1, 2, 2, 4]
    assert shared_ranks([0.5, 0.5, 0.5]) == [1, 1, 1]
    assert shared_ranks([0.1, math.nan, math.nan]) == [1, 2, 2]
    assert shared_ranks([]) == []


def test_every_format_shows_the_shared_rank():
    frame = pd.DataFrame(
        {
            "rank": [1, 2, 2],
            "config_id": ["a", "b", "c"],
            "da_p": [0.95, 1.0, 0.9],
            "n": [3, 3, 3],
            "mean": [0.0023, 0.0046, 0.0046],
            "std": [0.004] * 3,
            "sem": [0.002] * 3,
            "ci_low": [-0.007, -0.015, -0.005],
            "ci_high": [0.012, 0.024, 0.014],
        }
    )
    table = render(frame, "val_error").splitlines()
    assert table[0].split()[:2] == ["rank", "val_error"]
    assert [line.split()[0] for line in table[1:]] == ["1", "2", "2"]
    assert render(frame, "val_error", "csv").splitlines()[0].startswith("rank,")
    assert '"rank": 2' in render(frame, "val_error", "json")
