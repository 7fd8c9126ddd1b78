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


def _grid(means, knob="da_p", values=(0.9, 0.6, 1.0)):
    return pd.DataFrame(
        {
            "config_id": ["a", "b", "c"],
            knob: list(values),
            "n": [3, 3, 3],
            "mean": list(means),
            "ci_low": [m - 0.01 for m in means],
            "ci_high": [m + 0.01 for m in means],
        }
    )


def test_a_one_knob_grid_prints_its_curve_in_the_knobs_order_and_saves_a_png(tmp_path):
    from study.best import curve_knob, render_curve, save_curve

    frame = _grid([0.02, 0.05, 0.03])
    assert curve_knob(frame) == "da_p"
    lines = render_curve(frame, "da_p", "val_error").splitlines()
    assert lines[0] == "val_error against da_p (mean [95% CI] over up to 3 seeds):"
    assert [line.split()[0] for line in lines[1:]] == ["da_p=0.6", "da_p=0.9", "da_p=1"]
    assert lines[1].split()[1:] == ["0.0500", "[0.0400,", "0.0600]"]
    path = save_curve(frame, "da_p", "val_error", "min", tmp_path / "sweeps" / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_curve_for_several_knobs_or_a_categorical_one():
    from study.best import curve_knob

    assert curve_knob(_grid([0.1, 0.2, 0.3], "optimizer", ("sgd", "adam", "rmsprop"))) is None
    assert curve_knob(_grid([0.1, 0.2, 0.3]).assign(lr=[0.1, 0.2, 0.3])) is None
