"""Each report kind on hand-made runs: the tables hold the right numbers, verdicts follow them."""

import pandas as pd
import pytest

from analysis.reports import build_report, check_report, list_report_kinds
from analysis.verdicts import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, TOO_FEW

META = {"recipe": "demo", "scale": "paper", "title": "Demo", "experiment": "demo-paper"}


def run(i, seed, value, **params) -> dict:
    row = {"run_id": f"r{i}", "seed": seed, "status": "FINISHED", "metric.test_error": value}
    row.update({f"param.{k}" if not k.startswith("sweep.") else k: v for k, v in params.items()})
    return row


def histories(series: dict[str, dict[str, list[float]]]):
    """A report's ``history`` reader over ``{metric: {run_id: [value per step from 1]}}``."""

    def read(ids, metric):
        values = series.get(metric, {})
        return pd.DataFrame(
            [
                {"run_id": i, "step": step, "value": value}
                for i in ids
                for step, value in enumerate(values.get(i, []), start=1)
            ],
            columns=["run_id", "step", "value"],
        )

    return read


def test_unknown_kind_lists_the_known():
    with pytest.raises(ValueError, match="comparison"):
        build_report(META, {"kind": "pie"}, pd.DataFrame())
    assert {"comparison", "curve", "norm_grid", "wins"} <= set(list_report_kinds())


class TestComparison:
    OPTIONS = {
        "kind": "comparison",
        "unit": "error%",
        "rows": ["sweep.part"],
        "row_labels": {"p1": "Net A"},
        "arm": "param.activation",
        "arms": {"relu": "Baseline", "drop_activation": "DA"},
        "baseline": "relu",
        "paper": {"Net A": {"Baseline": 6.77, "DA": 6.25}},
        "claims": [
            {
                "method": "DA",
                "baseline": "Baseline",
                "expect": "better",
                "claim": "{method} lowers the error of {row}",
            }
        ],
    }

    def runs(self, shift=-0.01):
        base = [0.10, 0.11, 0.12, 0.10, 0.11]
        rows = [
            run(
                i,
                s,
                v,
                activation="relu",
                model="resnet",
                **{"arch.depth": "20"},
                **{"sweep.part": "p1"},
            )
            for i, (s, v) in enumerate(enumerate(base))
        ]
        rows += [
            run(
                10 + i,
                s,
                v + shift + 0.001 * s,
                activation="drop_activation",
                **{"sweep.part": "p1"},
            )
            for i, (s, v) in enumerate(enumerate(base))
        ]
        rows.append(
            {
                **run(99, 7, float("nan"), activation="drop_activation"),
                "sweep.part": "p1",
                "status": "FAILED",
            }
        )
        return pd.DataFrame(rows)

    def test_tables_in_the_papers_layout_with_the_paper_beside(self):
        report = build_report(META, self.OPTIONS, self.runs())
        results = report.tables["results"]
        assert results.iloc[0]["row"] == "ResNet-20 · ?"
        assert (
            results.iloc[0]["DA"].startswith("**10.00 ± ") and "(1 failed)" in results.iloc[0]["DA"]
        )
        assert results.iloc[0]["Baseline"] == "10.80 ± 0.84"
        beside = report.tables["vs_paper"].set_index("arm")
        assert (
            beside.loc["Baseline", "paper"] == "6.77"
            and beside.loc["Baseline", "ours − paper"] == "+4.03"
        )
        paired = report.tables["paired"].iloc[0]
        assert (paired["method"], paired["baseline"], paired["n"]) == ("DA", "Baseline", 5)
        assert paired["Δ"] == "-0.80"

    def test_a_consistent_improvement_supports_the_claim(self):
        (claim,) = build_report(META, self.OPTIONS, self.runs()).claims
        assert claim.verdict == SUPPORTED and claim.claim == "DA lowers the error of ResNet-20 · ?"
        assert claim.paper == "6.25 vs 6.77 (-0.52)" and claim.kind == "directional"
        assert claim.p_adjusted == claim.p and claim.n == 5 and claim.mde is not None
        assert claim.missing == ("DA seed 7 failed",)

    def test_a_consistent_deterioration_contradicts_it(self):
        (claim,) = build_report(META, self.OPTIONS, self.runs(shift=+0.01)).claims
        assert claim.verdict == NOT_SUPPORTED

    def test_figures_are_drawn(self):
        report = build_report(META, self.OPTIONS, self.runs())
        assert "comparison" in report.figures

    def test_below_paper_scale_rows_name_the_setup_they_stand_in_for_and_verdicts_are_pilot(self):
        report = build_report({**META, "scale": "quick"}, self.OPTIONS, self.runs())
        assert report.tables["results"].iloc[0]["row"] == "ResNet-20 · ? (stand-in for Net A)"
        (claim,) = report.claims
        assert claim.verdict == f"pilot {SUPPORTED}" and claim.paper.endswith("on Net A")

    def test_a_claim_without_a_direction_is_refused(self):
        options = {**self.OPTIONS, "claims": [{"method": "DA", "baseline": "Baseline"}]}
        with pytest.raises(ValueError, match="expect is required"):
            check_report(options)
        equivalent = [{"method": "DA", "baseline": "Baseline", "expect": "equivalent"}]
        with pytest.raises(ValueError, match="margin"):
            check_report({**self.OPTIONS, "claims": equivalent})


class TestCurve:
    OPTIONS = {
        "kind": "curve",
        "unit": "error%",
        "metric": "test_error",
        "x": "param.da_p",
        "optimum": 0.95,
        "optimum_claim": "the best p is {optimum}",
        "comparisons": [
            {"method": 0.95, "baseline": 1.0, "expect": "better", "claim": "p=0.95 beats ReLU"}
        ],
    }

    def runs(self, best=0.95):
        rows, i = [], 0
        for p in (0.8, 0.9, 0.95, 1.0):
            for seed in range(4):
                value = 0.10 + abs(p - best) * 0.2 + 0.001 * seed * (1 + p)
                rows.append(run(i, seed, value, da_p=str(p)))
                i += 1
        return pd.DataFrame(rows)

    def test_the_optimum_where_the_paper_puts_it_is_supported(self):
        report = build_report(META, self.OPTIONS, self.runs())
        optimum, comparison = report.claims
        assert optimum.verdict == SUPPORTED and "optimum at 0.95" in optimum.measured
        assert optimum.kind == "optimum" and comparison.verdict == SUPPORTED
        shares = report.tables["optimum"].set_index("x")["P(arg-min)"]
        assert shares["0.95"] == "100%"
        table = report.tables["curve"]
        assert table.loc[table["x"] == "0.95", "ours"].iloc[0].startswith("**")
        assert "curve" in report.figures

    def test_an_optimum_elsewhere_is_not_supported(self):
        optimum, _ = build_report(META, self.OPTIONS, self.runs(best=0.8)).claims
        assert optimum.verdict == NOT_SUPPORTED and "optimum at 0.8" in optimum.measured


class TestConvergence:
    """Epochs to reach the paper's baseline accuracy, LRD against no LRD, from test curves."""

    OPTIONS = {
        "kind": "comparison",
        "unit": "accuracy%",
        "rows": ["sweep.part"],
        "row_labels": {"mnist": "MNIST FCNet"},
        "groups": ["param.optimizer"],
        "group_labels": {"sgd": "SGDM"},
        "arm": "param.lrd_p",
        "arms": {"1.0": "without LRD", "0.5": "with LRD"},
        "baseline": "1.0",
        "convergence": {
            "method": "with LRD",
            "baseline": "without LRD",
            "expect": "better",
            "threshold": "paper_baseline",
        },
        "paper": {"MNIST FCNet": {"SGDM": {"without LRD": 98.0, "with LRD": 98.4}}},
    }
    EPOCHS = 10

    def curves(self, reach: dict[str, list[int | None]]):
        """Runs and their test-error curves: each reaches 98% at the epoch given (None: never)."""
        rows, curves = [], {}
        for arm, epochs in reach.items():
            for seed, at in enumerate(epochs):
                run_id = f"{arm}-{seed}"
                rows.append(
                    {
                        **run(0, seed, 0.015, optimizer="sgd", lrd_p=arm, epochs=self.EPOCHS),
                        "run_id": run_id,
                        "sweep.part": "mnist",
                    }
                )
                curves[run_id] = [
                    0.015 if at is not None and step >= at else 0.03
                    for step in range(1, self.EPOCHS + 1)
                ]

        return pd.DataFrame(rows), histories({"test_error": curves})

    def claim(self, reach):
        runs, history = self.curves(reach)
        report = build_report(META, self.OPTIONS, runs, history)
        (claim,) = [c for c in report.claims if "fewer epochs" in c.claim]
        return claim, report.tables["convergence"]

    def test_reaching_the_threshold_sooner_on_every_seed_supports_the_claim(self):
        claim, _ = self.claim({"0.5": [2, 3, 2, 3], "1.0": [5, 7, 6, 6]})
        assert claim.verdict == SUPPORTED and claim.n == 4
        assert "2.5 ± 0.6 vs 6.0 ± 0.8 epochs" in claim.measured

    def test_a_run_that_never_reaches_counts_as_epochs_plus_one_and_is_named(self):
        claim, table = self.claim({"0.5": [2, 3, 2], "1.0": [5, None, 6]})
        baseline = table.set_index("arm").loc["without LRD"]
        assert baseline["never reached (seeds)"] == "1"
        assert "vs 7.3 ± 3.2 epochs" in claim.measured  # (5 + 11 + 6) / 3

    def test_neither_arm_reaching_is_untestable_not_a_tie_nor_a_want_of_seeds(self):
        claim, _ = self.claim({"0.5": [None, None, None], "1.0": [None, None, None]})
        assert claim.verdict == INCONCLUSIVE
        assert claim.reason.startswith("neither arm reaches 98 within its epochs")
        assert "paired seeds)" not in claim.reason.removeprefix("neither")

    def test_with_two_seeds_out_of_reach_is_still_too_few_seeds(self):
        claim, _ = self.claim({"0.5": [None, None], "1.0": [None, None]})
        assert claim.verdict == TOO_FEW and "(a verdict needs 3 paired seeds)" in claim.reason


def test_norm_grid_judges_each_claim_in_its_declared_direction():
    options = {
        "kind": "norm_grid",
        "unit": "error",
        "rows": "param.activation",
        "row_labels": {"relu": "ReLU"},
        "columns": "param.variant.name",
        "column_order": ["none", "bn", "vcl n=2"],
        "paper": {"all": {"ReLU": {"bn": 0.0778, "vcl n=2": 0.0780}}},
        "comparisons": [
            {
                "method": "vcl n=2",
                "baseline": "bn",
                "expect": "worse",
                "where": {"activation": ["ReLU"]},
                "claim": "{activation}: VCL is worse than BN",
            }
        ],
    }
    rows, i = [], 0
    for variant, level in (("none", 0.09), ("bn", 0.08), ("vcl n=2", 0.081)):
        for seed in range(4):
            rows.append(
                {
                    **run(
                        i, seed, level * (1 + seed / 100) + 0.002 * (seed % 2), activation="relu"
                    ),
                    "param.variant.name": variant,
                }
            )
            i += 1
    report = build_report(META, options, pd.DataFrame(rows))
    grid = report.tables["grid_all"]
    assert list(grid.columns) == ["activation", "none", "bn", "vcl n=2"]
    assert grid.iloc[0]["bn"].startswith("**") and grid.iloc[1]["vcl n=2"] == "0.078"
    (claim,) = report.claims
    assert claim.claim == "ReLU: VCL is worse than BN"
    assert claim.verdict == SUPPORTED


def test_wins_counts_the_lowest_norm_per_dataset_and_sign_tests_the_claim():
    options = {
        "kind": "wins",
        "unit": "error%",
        "metric": "test_error",
        "datasets": "param.dataset",
        "activations": "param.activation",
        "norms": "param.variant.name",
        "norm_order": ["none", "bn", "vcl"],
        "claims": [
            {
                "method": "vcl",
                "baseline": "bn",
                "expect": "better",
                "claim": "{activation}: VCL beats BN",
            }
        ],
    }
    rows, i = [], 0
    for d in range(6):
        for norm, level in (("none", 0.3), ("bn", 0.2), ("vcl", 0.1)):
            rows.append(
                {
                    **run(i, 0, level + d / 100, activation="relu", dataset=f"d{d}"),
                    "param.variant.name": norm,
                }
            )
            i += 1
    report = build_report(META, options, pd.DataFrame(rows))
    wins = report.tables["wins"].set_index("normalization")
    assert (wins.loc["vcl", "relu"], wins.loc["bn", "relu"], wins.loc["none", "relu"]) == (6, 0, 0)
    (claim,) = report.claims
    # 6 of 6 datasets: exact one-sided p = 1/64 < 0.025.
    assert claim.verdict == SUPPORTED and "vcl better on 6" in claim.measured


def test_a_single_seed_never_yields_a_verdict():
    rows = [
        run(0, 0, 0.1, activation="relu", **{"sweep.part": "p"}),
        run(1, 0, 0.05, activation="drop_activation", **{"sweep.part": "p"}),
    ]
    (claim,) = build_report(META, TestComparison.OPTIONS, pd.DataFrame(rows)).claims
    assert claim.verdict == TOO_FEW and "too few seeds: n = 1" in claim.reason


class TestCost:
    """The intro's cost line: wall time per training from ``epoch_time``, CPU-hours by threads."""

    @staticmethod
    def history(seconds: dict[str, list[float]]):
        return histories({"epoch_time": seconds})

    def test_minutes_per_training_and_cpu_hours_by_each_run_s_threads(self):
        from analysis.reports._common import cost

        runs = pd.DataFrame(
            [
                {**run(0, 0, 0.1), "param.num_threads": "2", "machine": "vm: 2 cores"},
                {**run(1, 1, 0.1), "param.num_threads": "1", "machine": "vm: 2 cores"},
                {**run(2, 2, 0.1), "status": "FAILED"},
            ]
        )
        # r0: 3 epochs of 600 s, its second logged twice (a resumed run counts it once)
        seconds = {"r0": [600.0, 600.0, 600.0], "r1": [1800.0], "r2": [9999.0]}
        history = self.history(seconds)

        def twice(ids, metric):
            frame = history(ids, metric)
            return pd.concat([frame, frame[frame["step"] == 2]])

        line = cost(runs, twice)
        assert line.startswith("- Cost: 30.0 ± 0.0 min per training (training loop, 2 finished")
        assert "1.50 CPU-hours in all" in line  # 1800 s × 2 threads + 1800 s × 1 thread
        assert line.endswith("ran on: vm: 2 cores.")

    def test_short_trainings_in_seconds_and_one_thread_where_none_was_recorded(self):
        from analysis.reports._common import cost

        runs = pd.DataFrame([run(0, 0, 0.1), run(1, 1, 0.1)])
        line = cost(runs, self.history({"r0": [20.0], "r1": [30.0]}))
        assert "25.0 ± 7.1 s per training" in line and "0.01 CPU-hours" in line
        assert "not recorded by these runs" in line

    def test_no_times_recorded_no_line(self):
        from analysis.reports._common import cost

        assert cost(pd.DataFrame([run(0, 0, 0.1)]), self.history({})) == ""
        assert cost(pd.DataFrame([run(0, 0, 0.1)]), None) == ""
