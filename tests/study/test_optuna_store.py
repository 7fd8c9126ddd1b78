"""A sweep's Optuna study: recorded from MLflow trial runs written as the trial logger writes
them (no Ray), opened by ``optuna.load_study``; a real Optuna sweep keeps its search's study."""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from analysis.schema import (
    CONFIG_TAG,
    HPARAM_PREFIX,
    KIND_TAG,
    PARENT_TAG,
    SEED_TAG,
    SWEEP_RUN_TAG,
    TRIAL_TAG,
)
from study.cli import main
from study.optuna_store import RECORDED_FROM, record_sweep, search_storage
from study.spec import SpecError, build_spec, config_id, optuna_storage_url
from study.tracking import as_params, flatten, start_sweep_run
from study.tracking.runs import end_trial_run
from study.tracking.store import numeric
from tests.support import TRAIN, locations, write_spec

SEED_SHIFT = {0: 0.0, 1: 0.01, 2: -0.01}  # small, seed-made differences
BASE = {"activation": "drop_activation", "optimizer": "sgd", "nesterov": False, "lr": 0.05}
PLACE = {"data_dir": "/data", "device": "cpu", "num_threads": 1}


def val_error(da_p: float, seed: int) -> float:
    """da_p drives the metric strongly, the seed a little, batch_size not at all."""
    return 0.1 + 0.8 * (1.0 - da_p) + SEED_SHIFT[seed]


def make_sweep(
    directory: Path,
    name: str = "sweep",
    space: str = "drop_activation_grid",
    da_ps: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9, 1.0),
    batch_sizes: tuple[int, ...] = (32, 64),
    seeds: tuple[int, ...] = (0, 1, 2),
    experiment: str | None = None,
) -> tuple[str, str]:
    """A finished sweep in a SQLite store under ``directory``: its parent run and one run per
    (da_p, batch_size, seed), FINISHED with ``val_error``; returns (tracking URI, parent run)."""
    uri = f"sqlite:///{directory / 'mlruns.db'}"
    spec = build_spec(
        {"name": name, "experiment": experiment, "space": space, "train": dict(TRAIN)},
        {"tracking_uri": uri, "storage_path": str(directory / "ray_results")},
    )
    client = MlflowClient(uri)
    sweep_id = start_sweep_run(client, spec, {"name": space})
    for da_p in da_ps:
        for batch_size in batch_sizes:
            for seed in seeds:
                record = {**BASE, **PLACE, "da_p": da_p, "batch_size": batch_size, "seed": seed}
                add_trial(client, sweep_id, record, {"val_error": val_error(da_p, seed)})
    client.set_terminated(sweep_id, "FINISHED")
    return uri, sweep_id


def add_trial(
    client: MlflowClient,
    sweep_id: str,
    record: dict[str, Any],
    final: dict[str, float],
    failure: str | None = None,
    stopped_at: int | None = None,
    status: str | None = None,
) -> str:
    """One trial run as :class:`study.tracking.MlflowTrialLogger` writes it: tags, the record as
    params and ``hp.*``, two epochs of metrics (the last at ``final``), then its ending."""
    exp_id = client.get_run(sweep_id).info.experiment_id
    tags = {
        PARENT_TAG: sweep_id,
        SWEEP_RUN_TAG: sweep_id,
        TRIAL_TAG: f"t{time.monotonic_ns()}",
        CONFIG_TAG: config_id(record),
        SEED_TAG: str(record["seed"]),
        KIND_TAG: "trial",
    }
    run_id = client.create_run(exp_id, tags=tags).info.run_id
    flat = flatten(record)
    hparams = [Metric(f"{HPARAM_PREFIX}{k}", float(v), 0, 0) for k, v in flat.items() if numeric(v)]
    client.log_batch(run_id, metrics=hparams, params=as_params(flat))
    stamp = int(time.time() * 1000)
    epochs = [Metric(k, v + 0.05, stamp, 1) for k, v in final.items()]
    epochs += [Metric(k, v, stamp, 2) for k, v in final.items()]
    client.log_batch(run_id, metrics=epochs)
    if status is not None:
        client.set_terminated(run_id, status=status)
    else:
        end_trial_run(client, run_id, [], failure, stopped_at, set())
    return run_id


def storage(directory: Path) -> str:
    return f"sqlite:///{directory / 'optuna.db'}"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, dict[str, str]]:
    """One store for the tests that only read it: a grid sweep and an Optuna-space sweep, each
    30 runs; returns its URI and each sweep's parent run."""
    directory = tmp_path_factory.mktemp("store")
    uri, grid = make_sweep(directory, name="pgrid")
    _, tpe = make_sweep(directory, name="tpe", space="drop_activation")
    return uri, {"pgrid": grid, "tpe": tpe}


def test_each_ended_run_is_one_trial_with_its_knobs_and_its_seed(store, tmp_path):
    uri, _ = store
    study = record_sweep(uri, "pgrid", "pgrid", "val_error", "min", storage(tmp_path))
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(study.trials) == len(trials) == 30
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    dists = trials[0].distributions
    assert dists["da_p"] == FloatDistribution(0.6, 1.0)
    assert dists["batch_size"] == IntDistribution(32, 64)
    assert dists["seed"] == CategoricalDistribution([0, 1, 2])
    assert dists["optimizer"] == CategoricalDistribution(["sgd"])
    assert dists["nesterov"] == CategoricalDistribution([False])
    assert not {"data_dir", "device", "num_threads"} & set(dists)
    best = min(trials, key=lambda t: t.value)
    assert best.params["da_p"] == 1.0 and best.params["seed"] == 2
    assert best.value == pytest.approx(val_error(1.0, 2))
    assert {"mlflow_run_id", "config_id"} <= set(best.user_attrs)


def test_diverged_crashed_stopped_and_unended_runs(tmp_path):
    uri, sweep_id = make_sweep(tmp_path, da_ps=(0.6, 1.0), batch_sizes=(64,), seeds=(0,))
    client = MlflowClient(uri)
    record = {**BASE, **PLACE, "da_p": 0.8, "batch_size": 64, "seed": 1}
    add_trial(client, sweep_id, record, {"val_error": float("nan")}, failure="loss is nan")
    add_trial(client, sweep_id, {**record, "seed": 2}, {}, failure="RuntimeError: boom")
    add_trial(client, sweep_id, {**record, "seed": 3}, {"val_error": 0.3}, stopped_at=1)
    add_trial(client, sweep_id, {**record, "seed": 4}, {"val_error": 0.3}, status="KILLED")
    study = record_sweep(uri, "sweep", "sweep", "val_error", "min", storage(tmp_path))
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "FAIL", "PRUNED"]
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert {t.user_attrs["failure"] for t in failed} == {"loss is nan", "RuntimeError: boom"}
    assert all(t.params["da_p"] == 0.8 and t.value is None for t in failed)


def test_load_study_opens_it_and_rebuilding_does_not_duplicate(store, tmp_path):
    uri, sweeps = store
    url = storage(tmp_path)
    record_sweep(uri, "pgrid", "pgrid", "val_error", "min", url)
    record_sweep(uri, "pgrid", "pgrid", "val_error", "min", url)
    loaded = optuna.load_study(study_name="pgrid", storage=url)
    assert len(loaded.trials) == 30
    assert loaded.user_attrs[RECORDED_FROM] == sweeps["pgrid"]
    assert optuna.study.get_all_study_names(url) == ["pgrid"]


def test_the_newest_sweep_of_that_name_is_recorded(tmp_path):
    uri, _ = make_sweep(tmp_path, name="again", da_ps=(0.6, 1.0), batch_sizes=(64,), seeds=(0,))
    _, newest = make_sweep(tmp_path, name="again", da_ps=(0.7, 0.9), batch_sizes=(64,))
    study = record_sweep(uri, "again", "again", "val_error", "min", storage(tmp_path))
    assert len(study.trials) == 6 and study.user_attrs[RECORDED_FROM] == newest
    with pytest.raises(LookupError, match="no sweep named 'other'; sweeps there: \\['again'\\]"):
        record_sweep(uri, "again", "other", "val_error", "min", storage(tmp_path))


def test_an_optuna_searchs_own_study_is_kept_and_the_record_goes_beside_it(store, tmp_path):
    uri, _ = store
    url = storage(tmp_path)
    search = optuna.create_study(study_name="tpe", storage=url)
    search.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    record = record_sweep(uri, "tpe", "tpe", "val_error", "min", url)
    assert record.study_name == "tpe.runs" and len(record.trials) == 30
    assert len(optuna.load_study(study_name="tpe", storage=url).trials) == 1


def test_a_new_optuna_sweep_starts_a_new_study(tmp_path):
    url = storage(tmp_path)
    for name in ("tpe", "tpe.runs", "other"):
        optuna.create_study(study_name=name, storage=url)
    search_storage("tpe", url)
    assert optuna.study.get_all_study_names(url) == ["other"]


def test_the_search_pickles_with_its_storage_and_reconnects(tmp_path):
    from ray.tune.search.optuna import OptunaSearch

    from search_spaces import get_space

    url = storage(tmp_path)
    search = OptunaSearch(
        space=get_space("drop_activation").define,
        metric="val_error",
        mode="min",
        study_name="tpe",
        storage=search_storage("tpe", url),
    )
    search.suggest("a")
    search.suggest("b")
    search.on_trial_complete("a", {"val_error": 0.3})
    restored = pickle.loads(pickle.dumps(search))
    restored.on_trial_complete("b", {"val_error": 0.2})
    trials = optuna.load_study(study_name="tpe", storage=url).trials
    assert [(t.state.name, t.value) for t in trials] == [("COMPLETE", 0.3), ("COMPLETE", 0.2)]


class _Results(list):
    """What ``_fit`` reads of Tune's ResultGrid: every trial ended, none errored."""

    num_errors = 0
    num_terminated = 2


def _sweep_of_two_trials(tmp_path, name: str, space: str):
    """A sweep's store as ``_fit`` finds it once Tune has returned: its run and two trials."""
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    spec = build_spec(
        {"name": name, "space": space, "train": dict(TRAIN)},
        {"tracking_uri": uri, "storage_path": str(tmp_path / "ray_results")},
    )
    client = MlflowClient(uri)
    run_id = start_sweep_run(client, spec, {})
    for seed in (0, 1):
        record = {**BASE, **PLACE, "da_p": 0.8, "batch_size": 64, "seed": seed}
        add_trial(client, run_id, record, {"val_error": val_error(0.8, seed)})
    return spec, client, client.get_run(run_id).info.experiment_id, run_id


def test_a_grid_sweep_is_recorded_at_its_end_and_a_failed_record_only_warns(
    tmp_path, monkeypatch, capsys
):
    from study import runner

    spec, client, exp_id, run_id = _sweep_of_two_trials(tmp_path, "pgrid", "drop_activation_grid")
    tuner = SimpleNamespace(fit=_Results)
    assert runner._fit(spec, client, exp_id, run_id, 2, lambda: tuner).status == "FINISHED"
    assert len(optuna.load_study(study_name="pgrid", storage=spec.optuna_url).trials) == 2

    def refuse(*args):
        raise RuntimeError("disk full\nwhile writing")

    monkeypatch.setattr(runner, "record_sweep", refuse)
    capsys.readouterr()
    assert runner._fit(spec, client, exp_id, run_id, 2, lambda: tuner).status == "FINISHED"
    warning = "[optuna] warning: no Optuna study of sweep pgrid: disk full while writing\n"
    assert capsys.readouterr().err == warning


def test_the_storage_defaults_beside_a_sqlite_store_and_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert optuna_storage_url("sqlite:////srv/x/mlruns.db") == "sqlite:////srv/x/optuna.db"
    assert optuna_storage_url("http://host:5000") == f"sqlite:///{tmp_path}/optuna.db"
    assert optuna_storage_url("sqlite:////a.db", "sqlite:///o.db") == f"sqlite:///{tmp_path}/o.db"
    spec = build_spec({"name": "s"}, {"tracking_uri": "sqlite:///m.db"})
    assert spec.optuna_storage is None and spec.optuna_url == f"sqlite:///{tmp_path}/optuna.db"
    spec = build_spec({"name": "s", "optuna_storage": "sqlite:///o.db"})
    assert spec.optuna_storage == spec.optuna_url == f"sqlite:///{tmp_path}/o.db"
    with pytest.raises(SpecError, match=r"^optuna_storage: 'o\.db' is not allowed: give an SQL"):
        build_spec({"name": "s", "optuna_storage": "o.db"})


def test_the_flag_sets_the_spec_field(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/o.db"
    assert main(["sweep", "--dry-run", "--optuna-storage", url]) == 0
    assert f"optuna_storage: {url}" in capsys.readouterr().out
    assert main(["sweep", "--dry-run", "--optuna-storage", "o.db"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: optuna_storage: 'o.db' is not allowed") and err.count("\n") == 1


@pytest.mark.slow
def test_an_optuna_sweep_keeps_its_study_in_the_storage(tmp_path):
    spec = write_spec(
        tmp_path,
        name="tpe",
        space="drop_activation",
        budget={"epochs": 1, "repeats": 1, "num_samples": 2},
    )
    assert main(["sweep", str(spec), *locations(tmp_path), "--no-best"]) == 0
    study = optuna.load_study(study_name="tpe", storage=storage(tmp_path))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert all(0.6 <= t.params["da_p"] <= 1.0 for t in study.trials)
    assert "tpe.runs" not in optuna.study.get_all_study_names(storage(tmp_path))


@pytest.mark.slow
def test_a_grid_sweep_is_recorded_when_it_ends(grid_sweep):
    study = optuna.load_study(study_name="grid", storage=storage(grid_sweep))
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE"] * 4 + ["FAIL"] * 4  # lr=1e12 diverges
    assert {t.params["seed"] for t in study.trials} == {0, 1}
    assert {"activation", "lr", "seed"} <= set(study.trials[0].params)


def test_fit_waits_for_ray_s_shutdown_before_letting_tune_s_objects_go(tmp_path):
    """Tune's results release Ray objects when they go; one released while Ray shuts down in
    another thread ended the process ("The core worker has already been shutdown") after a
    sweep whose ending was quicker than the shutdown."""
    import weakref

    from study import runner

    spec, client, exp_id, run_id = _sweep_of_two_trials(tmp_path, "order", "drop_activation")
    events = []

    def fit() -> _Results:
        results = _Results()
        weakref.finalize(results, events.append, "results released")
        return results

    def after_fit():
        events.append("shutdown begun")
        return lambda: events.append("shutdown done")

    tuner = SimpleNamespace(fit=fit)
    outcome = runner._fit(spec, client, exp_id, run_id, 2, lambda: tuner, after_fit)
    assert outcome.status == "FINISHED"
    assert events == ["shutdown begun", "shutdown done", "results released"]
