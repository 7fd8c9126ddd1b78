"""A report's run ledger: the report re-renders from it when the store is lost, and a
reproduction continues from it, training only the trials the ledger lacks."""

import shutil

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from analysis import ledger
from analysis.schema import KIND_TAG
from search_spaces import get_space
from study.recipes import load_recipe
from study.reproduce import report, reproduce
from study.runner import _meaning
from study.spec import SpecError, build_spec
from study.trials import grid_trial_configs, planned_keys, trial_key

REDUCED = {"budget.epochs": 1, "budget.repeats": 2, "train.train_subset": 256}


def _runs(*rows):
    columns = ["run_id", "config_id", "seed", "status", "sweep.part", "sweep.fingerprint"]
    return pd.DataFrame([dict(zip(columns, row)) for row in rows])


def test_the_store_wins_and_only_finished_runs_of_todays_sweeps_come_from_the_ledger():
    kept = ledger.Ledger(
        _runs(
            ("a", "x", 0, "FINISHED", "mnist", "f1"),
            ("b", "x", 1, "FINISHED", "mnist", "f1"),
            ("c", "y", 0, "FAILED", "mnist", "f1"),
            ("d", "z", 0, "FINISHED", "mnist", "f0"),
            ("e", "w", 0, "FINISHED", "gone", "f1"),
            ("g", "v", 0, "FINISHED", "cifar", "f2"),
        )
    )
    store = _runs(("a2", "x", 0, "RUNNING", "mnist", "f1"))
    restored = kept.missing_from(store, parts=["mnist", "cifar"])
    assert list(restored["run_id"]) == ["b", "g"] and restored[ledger.FROM_LEDGER].all()
    assert list(kept.missing_from(store)["run_id"]) == ["b", "d", "e", "g"]
    assert kept.finished("mnist") == {"x:0", "x:1", "z:0"}


def test_a_ledger_round_trips_and_serves_the_histories_a_report_read(tmp_path):
    runs = _runs(("a", "x", 0, "FINISHED"), ("b", "x", 1, "FINISHED"))

    def store(run_ids, metric):
        n = len(run_ids)
        return pd.DataFrame({"run_id": run_ids, "step": [1] * n, "value": [0.5] * n})

    reading = ledger.RecordingHistory(store, ledger.Ledger(), set())
    reading(["a", "b"], "test_error")
    ledger.write(tmp_path, runs, reading.served)
    back = ledger.read(tmp_path)
    pd.testing.assert_frame_equal(back.runs, runs)
    served = ledger.RecordingHistory(store, back, {"b"})(["a", "b"], "test_error")
    assert sorted(served["run_id"]) == ["a", "b"] and list(served["value"]) == [0.5, 0.5]
    assert ledger.read(tmp_path / "nowhere").runs.empty


def _spec(**skip):
    spec = load_recipe("lrd_dg").specs("quick", REDUCED)["mnist"]
    return spec.model_copy(update=skip) if skip else spec


def test_a_grid_with_trials_left_out_runs_the_others_as_they_would_have_run():
    spec, space = _spec(), get_space("none")
    keys = planned_keys(spec, space)
    full = grid_trial_configs(spec, space)
    assert len(keys) == len(set(keys)) == len(full) == 12
    skipped = spec.model_copy(update={"skip": keys[::3]})
    left = grid_trial_configs(skipped, space)
    assert [trial_key(c) for c in left] == [k for k in keys if k not in keys[::3]]
    names = [c["point"]["name"] for c in left]
    assert names[0] == "optimizer=sgd seed=0 none" and len(set(names)) == len(left)
    assert _meaning(skipped.model_dump(mode="json")) == _meaning(spec.model_dump(mode="json"))


def test_leaving_out_trials_needs_a_grid_space():
    with pytest.raises(SpecError, match="need a grid space"):
        build_spec(
            {"name": "s", "space": "drop_activation", "skip": ["abc:0"], "metric": "test_error"},
            {"train.val_fraction": 0.0},
        )


@pytest.mark.usefixtures("ray_session")
def test_a_lost_store_rerenders_from_the_ledger_and_reproduce_trains_only_what_it_lacks(
    tmp_path, monkeypatch, data_root
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REGSTUDY_DATA_DIR", str(data_root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    target = tmp_path / "reports" / "lrd_dg" / "quick"
    reproduce("lrd_dg", "quick", REDUCED)
    first = pd.read_csv(target / "results.csv")
    kept = ledger.read(target)
    assert len(kept.runs) == 12 and set(kept.histories["metric"]) >= {"test_error"}

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'new.db'}")  # store lost
    shutil.rmtree(tmp_path / "ray_results")
    report("lrd_dg", "quick")
    pd.testing.assert_frame_equal(pd.read_csv(target / "results.csv"), first)
    readme = (target / "README.md").read_text()
    assert "12 finished" in readme and "12 of the finished come from this report's run" in readme
    assert not (tmp_path / "new.db").exists()

    lost = kept.runs["seed"] == 1
    lost &= kept.runs["param.optimizer"] == "sgd"
    ledger.write(target, kept.runs[~lost], [kept.histories])
    reproduce("lrd_dg", "quick", REDUCED)
    client = MlflowClient(f"sqlite:///{tmp_path / 'new.db'}")
    experiment = client.get_experiment_by_name("lrd_dg-quick")
    trained = client.search_runs([experiment.experiment_id], f"tags.`{KIND_TAG}` = 'trial'")
    assert len(trained) == int(lost.sum()) == 3
    assert {r.data.params["optimizer"] for r in trained} == {"sgd"}
    assert {r.data.tags["regstudy.seed"] for r in trained} == {"1"}
    after = ledger.read(target)
    assert len(after.runs) == 12 and ledger.trial_keys(after.runs) == ledger.trial_keys(kept.runs)
    readme = (target / "README.md").read_text()
    assert "12 finished" in readme and "9 of the finished come from this report's run" in readme


@pytest.mark.usefixtures("ray_session")
def test_a_script_recipe_skips_what_its_ledger_holds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    options = {"options.seeds": 2, "options.steps": 50, "options.grid_per_axis": 3}
    reproduce("lrd_toy", "quick", dict(options))
    target = tmp_path / "reports" / "lrd_toy" / "quick"
    first = ledger.read(target)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'new.db'}")  # store lost
    reproduce("lrd_toy", "quick", dict(options))
    client = MlflowClient(f"sqlite:///{tmp_path / 'new.db'}")
    experiment = client.get_experiment_by_name("lrd_toy-quick")
    assert not client.search_runs([experiment.experiment_id], f"tags.`{KIND_TAG}` = 'trial'")
    assert ledger.trial_keys(ledger.read(target).runs) == ledger.trial_keys(first.runs)
