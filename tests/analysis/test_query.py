"""MLflow runs into Arrow, against a real SQLite store written by a tiny sweep."""

import pyarrow as pa
import pytest

from analysis.query import ExperimentNotFound, metric_histories, sweep_runs, trial_runs


@pytest.fixture(scope="module")
def uri(grid_sweep):
    return f"sqlite:///{grid_sweep / 'mlruns.db'}"


def test_trial_runs_is_an_arrow_table_with_identity_params_and_metrics(uri):
    table = trial_runs(uri, "grid")
    assert isinstance(table, pa.Table) and table.num_rows == 8
    columns = set(table.column_names)
    assert {"run_id", "status", "config_id", "seed", "failure", "sweep_run_id"} <= columns
    assert {"param.activation", "param.lr", "metric.val_error", "hp.lr"} <= columns
    frame = table.to_pandas()
    assert sorted(frame["status"].unique()) == ["FAILED", "FINISHED"]
    failed = frame[frame["status"] == "FAILED"]
    assert failed["failure"].str.contains("training loss became").all()
    assert frame.groupby("config_id")["seed"].apply(sorted).tolist() == [[0, 1]] * 4


def test_filter_by_sweep_and_recipe(uri):
    (sweep,) = sweep_runs(uri, "grid")
    assert trial_runs(uri, "grid", sweep_run_id=sweep.info.run_id).num_rows == 8
    assert trial_runs(uri, "grid", sweep_run_id="nope").num_rows == 0
    assert trial_runs(uri, "grid", recipe="not-a-recipe").num_rows == 0


def test_metric_histories_have_one_row_per_epoch(uri):
    frame = trial_runs(uri, "grid").to_pandas()
    finished = frame[frame["status"] == "FINISHED"]["run_id"].tolist()
    history = metric_histories(uri, finished, "val_error").to_pandas()
    assert len(history) == 2 * len(finished)
    assert sorted(history["step"].unique()) == [1, 2]


def test_unknown_experiment_lists_the_known(uri):
    with pytest.raises(ExperimentNotFound, match="'grid'"):
        trial_runs(uri, "nope")
