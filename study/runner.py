"""Turning a validated spec into a Ray Tune run, and resuming one.

``sweep(spec)``: join Ray, open the sweep's MLflow parent run, build the
Tuner (grid search, or OptunaSearch behind :class:`SeedRepeater`; FIFO or
ASHA; resources per trial), run it. ``resume(name)``: restore the Tune
experiment, searcher state included, and finish its unfinished and errored
trials under the same parent run.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import optuna
from mlflow.tracking import MlflowClient
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import BasicVariantGenerator, SearchAlgorithm, Searcher
from ray.tune.search.optuna import OptunaSearch

from analysis.aggregate import summarize
from analysis.query import trial_runs
from search_spaces import SearchSpace, get_space
from trainables.config import TrainConfig
from trainables.data import prepare_datasets
from trainables.tune import train_trial

from . import tracking
from .checkpoints import point_at_existing_checkpoints
from .cluster import connect, connect_while, disconnect, trial_actors_in_instance_env
from .optuna_store import record_sweep, search_storage
from .preflight import checkpoint_need, preflight
from .progress import ProgressPrinter
from .searchers import SeedRepeater
from .spec import Spec, SpecError
from .storage import exists, filesystem, refuse_name_in_use
from .tracking import FINISHED, KILLED, MlflowTrialLogger
from .trials import base_trial_config, grid_axes, grid_trial_configs
from .warmup import ImportWhileTraining, wait_for_imports

RECORD_FILE = "regstudy_sweep.json"


@dataclass(frozen=True)
class SweepOutcome:
    """What a finished sweep left behind, and where."""

    name: str
    experiment: str
    sweep_run_id: str
    experiment_id: str
    tracking_uri: str
    trials: int
    errored: int
    experiment_dir: str
    diverged: int = 0
    status: str = FINISHED


def _write_record(spec: Spec, record: dict[str, Any]) -> None:
    fs, root = filesystem(spec.experiment_dir)
    fs.create_dir(root, recursive=True)
    with fs.open_output_stream(f"{root}/{RECORD_FILE}") as out:
        out.write(json.dumps(record, indent=2).encode())


def read_record(name: str, storage_path: str) -> dict[str, Any]:
    """The record ``sweep`` left in the experiment dir: spec, parent run, experiment."""
    from .spec import _absolute

    root = f"{_absolute(storage_path).rstrip('/')}/{name}"
    fs, path = filesystem(f"{root}/{RECORD_FILE}")
    try:
        with fs.open_input_stream(path) as stream:
            return json.loads(stream.readall())
    except (FileNotFoundError, OSError):
        raise SpecError(
            f"no sweep named {name!r} under {storage_path} (looked for {root}/{RECORD_FILE})"
        ) from None


def sweep_status(spec: Spec) -> str:
    """What a new ``study reproduce`` should do with this sweep: it is ``absent``,
    ``finished``, ``unfinished``, or ``stale`` (it ran under a different spec)."""
    if not exists(spec):
        return "absent"
    try:
        record = read_record(spec.name, spec.storage_path)
    except SpecError:
        return "absent"
    if _meaning(_as_current(record["spec"])) != _meaning(spec.model_dump(mode="json")):
        return "stale"
    run = tracking.open_client(spec.tracking_uri).get_run(record["sweep_run_id"])
    return "finished" if run.info.status == FINISHED else "unfinished"


def _meaning(dumped: dict[str, Any] | None) -> dict[str, Any] | None:
    """A dumped spec without ``skip``: which trials ran elsewhere does not change the sweep."""
    return None if dumped is None else {k: v for k, v in dumped.items() if k != "skip"}


def _as_current(recorded: dict[str, Any]) -> dict[str, Any] | None:
    """A recorded spec read by today's Spec model, so a field added since (at its default) does
    not make an old sweep look changed; ``None`` if today's model no longer accepts it."""
    try:
        return Spec.model_validate(recorded).model_dump(mode="json")
    except (ValueError, SpecError):
        return None


def datasets_of(spec: Spec) -> list[str]:
    """Every dataset a sweep's trials will load."""
    names = [spec.base_config().get("dataset", TrainConfig().dataset)]
    names += list(spec.grid.get("dataset", []))
    names += [v["dataset"] for v in spec.variants.values() if "dataset" in v]
    return list(dict.fromkeys(names))


def provision_data(spec: Spec) -> None:
    """Before Ray starts, put offline datasets in place, or fail with how to get the missing ones.

    Skipped for clusters, where the data lives on the workers' storage.
    """
    if spec.address is not None:
        return
    try:
        prepare_datasets(datasets_of(spec), root=spec.train.get("data_dir"))
    except (FileNotFoundError, RuntimeError) as err:
        raise SpecError(f"train.dataset: {err}") from None


def _param_space(spec: Spec, space: SearchSpace) -> dict[str, Any]:
    """Tune's param space: the base trial config, every grid axis a ``tune.grid_search``
    (composed by :mod:`study.trials`, which the planner shares)."""
    config = base_trial_config(spec, space)
    if space.kind == "grid":
        for axis, values in grid_axes(spec, space).items():
            config[axis] = tune.grid_search(values)
    return config


def _search(spec: Spec, space: SearchSpace) -> tuple[SearchAlgorithm | Searcher, int]:
    budget = spec.budget
    if space.kind == "grid":
        generator = BasicVariantGenerator(
            max_concurrent=budget.max_concurrent, random_state=spec.search_seed
        )
        return generator, 1
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    inner = OptunaSearch(
        space=space.define,
        metric=spec.metric,
        mode=spec.mode,
        sampler=optuna.samplers.TPESampler(seed=spec.search_seed),
        study_name=spec.name,
        storage=search_storage(spec.name, spec.optuna_url),
    )
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(budget.max_concurrent)
    repeater = SeedRepeater(inner, budget.repeats, budget.epochs, budget.max_concurrent)
    return repeater, budget.num_samples * budget.repeats


def _scheduler(spec: Spec) -> TrialScheduler:
    if spec.scheduler.kind == "asha":
        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=spec.budget.epochs,
            grace_period=spec.scheduler.grace_period,
            reduction_factor=spec.scheduler.reduction_factor,
        )
    return FIFOScheduler()


def trainable(spec: Spec):
    """The trial function with the spec's resources attached."""
    resources = {"cpu": spec.resources.cpus_per_trial, "gpu": spec.resources.gpus_per_trial}
    return tune.with_resources(train_trial, resources)


def sweep(
    spec: Spec,
    overwrite: bool = False,
    verbose: int = 1,
    parent_run_id: str | None = None,
    after_fit: Callable[[], Callable[[], None]] | None = None,
) -> SweepOutcome:
    """Run ``spec`` to completion and return where its results are (nested under a recipe's
    run when ``parent_run_id`` is given). ``after_fit`` is called once Tune has returned, when
    Ray is no longer needed (the sweep's own ending is MLflow's and Optuna's), and returns a
    function that waits for what it began: it is waited for before Tune's objects are let go."""
    space = get_space(spec.space)
    if spec.grid and space.kind != "grid":
        raise SpecError(
            f"grid: extra grid axes need a grid space; {spec.space!r} is an Optuna space"
        )
    if not overwrite:
        refuse_name_in_use(spec)
    elif exists(spec):
        fs, root = filesystem(spec.experiment_dir)
        fs.delete_dir(root)
    preflight(spec, provision_data, checkpoint_need)
    with tracking.driver(f"sweep {spec.name}", "start the sweep again"):
        client = connect_while(spec, partial(tracking.open_client, spec.tracking_uri))
        exp_id = tracking.experiment_id(client, spec.experiment_name, spec.tracking_uri)
        run_id = tracking.start_sweep_run(client, spec, space.describe(), parent_run_id)
        expected = _expected_trials(spec, space)
        make = partial(_new_tuner, spec, space, exp_id, run_id, expected, verbose)
        return _fit(spec, client, exp_id, run_id, expected, make, after_fit)


def _fit(
    spec: Spec,
    client: MlflowClient,
    exp_id: str,
    run_id: str,
    expected: int,
    make_tuner: Callable[[], tune.Tuner],
    after_fit: Callable[[], Callable[[], None]] | None = None,
) -> SweepOutcome:
    """Make the Tuner and fit it with the sweep's run open: whatever stops it ends the run
    (:mod:`study.tracking.lifecycle`); a signal, once Tune has stopped, is raised again.

    What ``after_fit`` began (Ray's shutdown) is waited for before this returns, while the
    Tuner and its results are still held: their finalizers release Ray objects, and one that
    runs while Ray is shutting down in another thread ends the process ("The core worker has
    already been shutdown"), after a sweep whose ending took less time than the shutdown."""
    wait: Callable[[], None] | None = None
    try:
        with tracking.ending(client, run_id, "sweep"):
            tuner = make_tuner()
            with tracking.fitting(), trial_actors_in_instance_env():
                results = tuner.fit()
            if after_fit is not None:
                wait = after_fit()
            outcome = _finish(spec, client, exp_id, run_id, results, expected)
            tracking.raise_if_stopped(incomplete=outcome.status == KILLED)
        if outcome.status == KILLED or tracking.is_confirm_round(spec):  # `study confirm` ranks
            return outcome
        _record_best(spec, client, run_id)
        if get_space(spec.space).kind == "grid":
            _record_grid_study(spec)
        return outcome
    finally:
        if wait is not None:
            wait()
        wait_for_imports()


def _record_grid_study(spec: Spec) -> None:
    """A grid sweep's trials as an Optuna study (:func:`record_sweep`); a failure is one
    warning line, never a failed sweep."""
    uri, name = spec.tracking_uri or "", spec.name
    try:
        record_sweep(uri, spec.experiment_name, name, spec.metric, spec.mode, spec.optuna_url)
    except Exception as err:  # the sweep is done: its Optuna record is a convenience
        reason = " ".join(str(err).split())[:300]
        print(f"[optuna] warning: no Optuna study of sweep {name}: {reason}", file=sys.stderr)


def _record_best(spec: Spec, client: MlflowClient, run_id: str) -> None:
    """The best config of this sweep on its parent run (:func:`study.tracking.log_best`); a
    failure is one warning line, never a failed sweep."""
    try:
        runs = trial_runs(spec.tracking_uri or "", spec.experiment_name, sweep_run_id=run_id)
        table = summarize(runs, spec.metric, spec.mode)
        if not table.empty:
            tracking.log_best(client, run_id, spec.metric, table)
    except Exception as err:  # the sweep is done: its summary is a convenience
        reason = " ".join(str(err).split())[:300]
        print(f"[best] warning: no best config on sweep run {run_id}: {reason}", file=sys.stderr)


def _new_tuner(
    spec: Spec, space: SearchSpace, exp_id: str, run_id: str, expected: int, verbose: int
) -> tune.Tuner:
    """The sweep's record (what `study resume` reads), then its Tuner."""
    record = {"spec": spec.model_dump(mode="json"), "sweep_run_id": run_id}
    _write_record(spec, {**record, "experiment_id": exp_id})
    tracking.resumable(f"sweep {spec.name}", f"`study resume {spec.name}`")
    logger = MlflowTrialLogger(spec.tracking_uri, exp_id, run_id, spec.budget.epochs)
    search_alg, num_samples = _search(spec, space)
    return tune.Tuner(
        trainable(spec),
        param_space=_param_space(spec, space),
        tune_config=tune.TuneConfig(
            metric=spec.metric,
            mode=spec.mode,
            search_alg=search_alg,
            scheduler=_scheduler(spec),
            num_samples=num_samples,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=spec.storage_path,
            callbacks=[
                logger,
                ProgressPrinter(spec.metric, spec.mode, expected=expected),
                ImportWhileTraining(),
            ],
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            verbose=verbose,
        ),
    )


def _expected_trials(spec: Spec, space: SearchSpace) -> int:
    if space.kind == "grid":  # the trials Ray creates: a spec's grid axis may replace the space's
        return len(grid_trial_configs(spec, space))
    return spec.budget.num_samples * spec.budget.repeats


def _finish(
    spec: Spec, client: MlflowClient, exp_id: str, sweep_run_id: str, results, expected: int
) -> SweepOutcome:
    """End the sweep's run by the ending rule (:func:`study.tracking.end_sweep_run`)."""
    counts = tracking.SweepCounts.of(results)
    stop = tracking.stop_requested()
    status = tracking.end_sweep_run(client, sweep_run_id, spec.name, counts, expected, stop)
    return SweepOutcome(
        spec.name,
        spec.experiment_name,
        sweep_run_id,
        exp_id,
        spec.tracking_uri or "",
        counts.trials,
        counts.errored,
        spec.experiment_dir,
        counts.diverged,
        status,
    )


def resume(name: str, storage_path: str = "ray_results", verbose: int = 1) -> SweepOutcome:
    """Finish sweep ``name``: unfinished and errored trials continue from their last checkpoint."""
    record = read_record(name, storage_path)
    spec = Spec.model_validate(record["spec"])
    space = get_space(spec.space)
    preflight(spec, provision_data)
    with tracking.driver(f"sweep {name}", f"`study resume {name}`"):
        connect(spec)
        if space.kind != "grid":
            os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(spec.budget.max_concurrent)
        client = tracking.open_client(spec.tracking_uri)
        from .sync import catch_up  # here: study.sync imports this module

        catch_up(name, storage_path)
        tracking.reopen_run(client, record["sweep_run_id"])
        for trial_id in point_at_existing_checkpoints(spec.experiment_dir):
            print(
                f"[resume] trial {trial_id}: the checkpoint Ray's state names is gone; "
                "it continues from its newest checkpoint on storage",
                file=sys.stderr,
            )

        restored = partial(
            tune.Tuner.restore,
            spec.experiment_dir,
            trainable=trainable(spec),
            resume_unfinished=True,
            resume_errored=True,
        )
        exp_id, run_id = record["experiment_id"], record["sweep_run_id"]
        return _fit(spec, client, exp_id, run_id, _expected_trials(spec, space), restored)


def shutdown() -> None:
    disconnect()
