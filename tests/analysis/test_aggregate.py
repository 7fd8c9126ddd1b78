"""Statistics over seeds against hand-computed values."""

import math

import pandas as pd
import pytest
from scipy import stats

from analysis.aggregate import paired_comparison, per_seed, seed_stats, summarize


def test_seed_stats_match_the_hand_computation():
    """Values 1, 2, 3, 4: mean 2.5, std sqrt(5/3) = 1.2910, sem 0.6455, t(0.975, 3) = 3.1824,
    so the 95% interval is 2.5 ± 2.0543."""
    s = seed_stats([1.0, 2.0, 3.0, 4.0])
    assert s.n == 4 and s.mean == 2.5
    assert s.std == pytest.approx(1.2909944, rel=1e-7)
    assert s.sem == pytest.approx(0.6454972, rel=1e-7)
    assert (s.ci_low, s.ci_high) == pytest.approx((2.5 - 2.0542, 2.5 + 2.0542), abs=1e-4)


def test_seed_stats_with_one_or_no_value_or_no_spread():
    one = seed_stats([0.3])
    assert one.n == 1 and one.mean == 0.3 and math.isnan(one.std) and math.isnan(one.ci_low)
    assert seed_stats([]).n == 0 and math.isnan(seed_stats([]).mean)
    flat = seed_stats([0.2, 0.2, 0.2])
    assert flat.std == 0 and (flat.ci_low, flat.ci_high) == pytest.approx((0.2, 0.2))
    assert seed_stats([1.0, float("nan"), 3.0]).n == 2


def test_paired_comparison_matches_scipy_on_shared_seeds():
    method = {0: 0.10, 1: 0.12, 2: 0.11, 3: 0.09, 9: 0.5}
    baseline = {0: 0.12, 1: 0.13, 2: 0.14, 3: 0.10, 7: 0.0}
    c = paired_comparison(method, baseline)
    diffs = [-0.02, -0.01, -0.03, -0.01]
    assert c.n == 4 and c.mean_diff == pytest.approx(sum(diffs) / 4)
    expected_t = stats.ttest_rel([0.10, 0.12, 0.11, 0.09], [0.12, 0.13, 0.14, 0.10]).pvalue
    assert c.t_pvalue == pytest.approx(expected_t)
    assert c.wilcoxon_pvalue == pytest.approx(stats.wilcoxon(diffs).pvalue)
    sd = pd.Series(diffs).std()
    assert c.effect_size == pytest.approx((sum(diffs) / 4) / sd)
    assert c.ci_high < 0


def test_paired_comparison_without_pairs():
    c = paired_comparison({0: 1.0}, {1: 2.0})
    assert c.n == 0 and math.isnan(c.mean_diff)


def runs_frame() -> pd.DataFrame:
    rows = []
    for config, base in (("a", 0.10), ("b", 0.20)):
        for seed in range(3):
            rows.append(
                {
                    "run_id": f"{config}{seed}",
                    "config_id": config,
                    "seed": seed,
                    "status": "FINISHED",
                    "param.da_p": {"a": "0.9", "b": "1.0"}[config],
                    "param.seed": str(seed),
                    "metric.val_error": base + 0.01 * seed,
                }
            )
    rows.append(
        {
            "run_id": "b9",
            "config_id": "b",
            "seed": 9,
            "status": "FAILED",
            "param.da_p": "1.0",
            "param.seed": "9",
            "metric.val_error": float("nan"),
        }
    )
    return pd.DataFrame(rows)


def test_summarize_groups_by_config_counts_failures_and_ranks():
    table = summarize(runs_frame(), "val_error", "min")
    assert list(table["config_id"]) == ["a", "b"]
    assert list(table["da_p"]) == ["0.9", "1.0"]
    b = table.iloc[1]
    assert (b["runs"], b["finished"], b["failed"], b["n"]) == (4, 3, 1, 3)
    assert b["seeds"] == [0, 1, 2, 9]
    assert b["mean"] == pytest.approx(0.21)
    assert list(summarize(runs_frame(), "val_error", "max")["config_id"]) == ["b", "a"]


def test_summarize_names_the_metrics_present_when_one_is_missing():
    with pytest.raises(KeyError, match="val_error"):
        summarize(runs_frame(), "test_error")


def test_per_seed_keeps_only_finished_runs():
    frame = runs_frame()
    assert set(per_seed(frame[frame["config_id"] == "b"], "metric.val_error")) == {0, 1, 2}


def test_an_error_rates_interval_is_cut_to_its_range_and_a_free_metric_is_not():
    from analysis.aggregate import metric_range

    assert metric_range("val_error") == (0.0, 1.0) == metric_range("test_error_at_best")
    assert metric_range("metric.train_loss") == (0.0, math.inf)
    assert metric_range("hp.lr") == (-math.inf, math.inf)
    runs = pd.DataFrame(
        {
            "config_id": ["a"] * 3 + ["b"] * 3,
            "seed": [0, 1, 2] * 2,
            "status": ["FINISHED"] * 6,
            "metric.val_error": [0.0, 0.0, 0.02, 0.97, 0.99, 1.0],
            "param.da_p": ["0.9"] * 3 + ["1.0"] * 3,
        }
    )
    rows = summarize(runs, "val_error").set_index("config_id")
    t = stats.t.ppf(0.975, 2)
    sem = pd.Series([0.0, 0.0, 0.02]).std() / math.sqrt(3)
    assert rows.loc["a", "ci_low"] == 0.0
    assert rows.loc["a", "ci_high"] == pytest.approx(0.02 / 3 + t * sem)
    assert rows.loc["b", "ci_high"] == 1.0 and rows.loc["b", "ci_low"] > 0.9
