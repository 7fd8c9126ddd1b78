"""Every MLflow write of a sweep, from the driver only (one writer: no SQLite lock contention).

Layout: one experiment per study name; one parent run per sweep (the spec as
params and as a YAML artifact, the search space, git commit, package
versions, host); one nested run per trial (its config as params, its seed,
per-epoch metrics with ``step=epoch``, summary metrics, FINISHED or FAILED
with the reason as a tag).

Identity survives a restart: a trial's run is found again by tags
(``regstudy.sweep_run_id`` + ``regstudy.trial_id``), and epochs already logged
are not logged twice, so a resumed sweep neither duplicates nor orphans runs.
Ray's own ``MLflowLoggerCallback`` keeps that map in memory, which is why it
is not used.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient
from ray.tune import Callback

from analysis.schema import (
    CONFIG_TAG,
    EPOCH_METRICS,
    FAILURE_TAG,
    HPARAM_PREFIX,
    KIND_TAG,
    MACHINE_TAG,
    PARENT_TAG,
    SEED_TAG,
    STOPPED_TAG,
    SUMMARY_METRICS,
    SWEEP_RUN_TAG,
    SWEEP_TAG,
    TAG,
    TRIAL_TAG,
)
from trainables.tune import split_config

from .spec import DEFAULT_ARTIFACTS, Spec, config_id

_BATCH = 900


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists and tuples kept as values."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def param_key(key: str) -> str:
    """An MLflow-legal param name: characters outside ``[A-Za-z0-9_-. :/]`` become ``_``."""
    return re.sub(r"[^\w\-. :/]", "_", key)


def param_value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)


def as_params(values: dict[str, Any]) -> list[Param]:
    """Flat values as MLflow params: legal names, JSON for containers, within MLflow's length."""
    return [Param(param_key(k), param_value(v)[:6000]) for k, v in values.items()]


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The experiment for study ``name``, created on first use (artifacts beside a SQLite store)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if tracking_uri.startswith("sqlite:///"):
        store = Path(tracking_uri.removeprefix("sqlite:///"))
        location = (store.parent / DEFAULT_ARTIFACTS / name).resolve().as_uri()
    return client.create_experiment(name, artifact_location=location)


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _versions() -> dict[str, str]:
    names = ("regstudy", "torch", "torchvision", "ray", "optuna", "mlflow", "pyarrow")
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def start_sweep_run(
    client: MlflowClient, spec: Spec, space: dict[str, Any], parent_run_id: str | None = None
) -> str:
    """Create the sweep's parent run with the spec, space, code version and host recorded.

    ``parent_run_id`` nests the sweep under a recipe's run.
    """
    exp = experiment_id(client, spec.experiment_name, spec.tracking_uri or "")
    tags = {
        SWEEP_TAG: spec.name,
        KIND_TAG: "sweep",
        "mlflow.source.git.commit": _git_commit(),
        "host": platform.node(),
        **{f"version.{k}": v for k, v in _versions().items()},
    }
    tags.update({f"{TAG}.{key}": value for key, value in spec.tags.items()})
    if parent_run_id:
        tags[PARENT_TAG] = parent_run_id
    run = client.create_run(
        exp, tags=tags, run_name=f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    run_id = run.info.run_id
    params = flatten(spec.model_dump(mode="json"), "spec.")
    client.log_batch(run_id, params=as_params(params))
    client.log_text(run_id, spec.to_yaml(), "spec.yaml")
    client.log_dict(run_id, space, "search_space.json")
    return run_id


def _epoch_keys(result: dict[str, Any]) -> list[str]:
    """The per-epoch metrics: the trainer's, and each active method's ``<name>_penalty``."""
    penalties = sorted(k for k in result if k.endswith("_penalty") and k not in EPOCH_METRICS)
    return [*EPOCH_METRICS, *penalties]


def trial_record(config: dict[str, Any]) -> dict[str, Any]:
    """What a trial's run records of its Ray config: the active knobs of its training config
    (a method that is off leaves none: no ``da_p`` on a ReLU arm), its seed, the name of its
    variant and the search's own switches. Numbers stay numbers (also logged as ``hp.*``)."""
    train, settings = split_config(config)
    recorded: dict[str, Any] = {**train.active_knobs(), "seed": train.seed}
    if "variant" in settings:
        recorded["variant"] = {"name": settings["variant"].get("name")}
    if "search" in settings:
        recorded["search"] = settings["search"]
    return recorded


class MlflowTrialLogger(Callback):
    """A Tune callback mirroring every trial into a nested run under the sweep's parent run."""

    def __init__(self, tracking_uri: str, experiment_id: str, sweep_run_id: str, epochs: int):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.sweep_run_id = sweep_run_id
        self.epochs = epochs
        self._client: MlflowClient | None = None
        self._runs: dict[str, str] = {}
        self._logged_epochs: dict[str, int] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_client=None, _runs={}, _logged_epochs={})
        return state

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def run_for(self, trial) -> str:
        """The trial's run: remembered, found again by its tags, or created."""
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=(
                f"tags.`{SWEEP_RUN_TAG}` = '{self.sweep_run_id}' "
                f"and tags.`{TRIAL_TAG}` = '{trial.trial_id}'"
            ),
            max_results=1,
        )
        if found:
            run_id = found[0].info.run_id
            history = self.client.get_metric_history(run_id, "epoch")
            self._logged_epochs[trial.trial_id] = int(max((m.value for m in history), default=0))
            if found[0].info.status != "RUNNING":
                self.client.update_run(run_id, status="RUNNING")
        else:
            run_id = self._create_trial_run(trial)
            self._logged_epochs[trial.trial_id] = 0
        self._runs[trial.trial_id] = run_id
        return run_id

    def _create_trial_run(self, trial) -> str:
        recorded = trial_record(dict(trial.config))
        seed = recorded["seed"]
        tags = {
            PARENT_TAG: self.sweep_run_id,
            SWEEP_RUN_TAG: self.sweep_run_id,
            TRIAL_TAG: trial.trial_id,
            CONFIG_TAG: config_id(recorded),
            SEED_TAG: str(seed),
            KIND_TAG: "trial",
        }
        run = self.client.create_run(
            self.experiment_id, tags=tags, run_name=f"{trial.trial_id}-seed{seed}"
        )
        run_id = run.info.run_id
        flat = flatten(recorded)
        params = as_params(flat)
        hparams = [
            Metric(f"{HPARAM_PREFIX}{k}", float(v), 0, 0) for k, v in flat.items() if _numeric(v)
        ]
        self.client.log_batch(run_id, metrics=hparams, params=params)
        return run_id

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.run_for(trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        run_id = self.run_for(trial)
        epoch = int(result.get("epoch", result.get("training_iteration", 0)))
        if epoch <= self._logged_epochs.get(trial.trial_id, 0):
            return
        stamp = int(time.time() * 1000)
        metrics = [
            Metric(key, float(result[key]), stamp, epoch)
            for key in (*_epoch_keys(result), *SUMMARY_METRICS, "epoch")
            if _numeric(result.get(key))
        ]
        tags = [RunTag("node_id", str(result["node_id"]))] if "node_id" in result else []
        if result.get("machine"):
            tags.append(RunTag(MACHINE_TAG, str(result["machine"])))
        for start in range(0, len(metrics), _BATCH):
            self.client.log_batch(run_id, metrics=metrics[start : start + _BATCH], tags=tags)
        self._logged_epochs[trial.trial_id] = epoch

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = trial.last_result or {}
        failure = result.get("failure") or None
        self._finish(trial, result, failure)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._finish(trial, trial.last_result or {}, _error_text(trial))

    def _finish(self, trial, result: dict[str, Any], failure: str | None) -> None:
        run_id = self.run_for(trial)
        stamp = int(time.time() * 1000)
        final = {f"final_{k}": result[k] for k in _epoch_keys(result) if _numeric(result.get(k))}
        summary = {k: result[k] for k in SUMMARY_METRICS if _numeric(result.get(k))}
        summary["epochs_completed"] = result.get("epoch", 0)
        metrics = [Metric(k, float(v), stamp, 0) for k, v in {**final, **summary}.items()]
        tags = []
        if failure:
            tags.append(RunTag(FAILURE_TAG, failure[:5000]))
        elif 0 < result.get("epoch", self.epochs) < self.epochs:
            tags.append(RunTag(STOPPED_TAG, str(result["epoch"])))
        self.client.log_batch(run_id, metrics=metrics, tags=tags)
        status = RunStatus.to_string(RunStatus.FAILED if failure else RunStatus.FINISHED)
        self.client.set_terminated(run_id, status=status)


def _error_text(trial) -> str:
    """The last line of the trial's error: Ray writes it to the trial's local directory
    before callbacks run, and syncs it to storage only later."""
    path = trial.error_file
    text = Path(path).read_text() if path and Path(path).is_file() else ""
    if not text:
        try:
            text = str(trial.get_pickled_error() or trial.get_error() or "")
        except Exception:
            text = ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "trial errored (no error recorded)"
