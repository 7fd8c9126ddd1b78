"""One MLflow run per trial, nested under the sweep's parent run, written by a Tune callback.

Identity survives a restart: a trial's run is found again by tags
(``regstudy.sweep_run_id`` + ``regstudy.trial_id``), and epochs already logged are not logged
twice, so a resumed sweep neither duplicates nor orphans runs. Ray's own
``MLflowLoggerCallback`` keeps that map in memory, which is why it is not used.

A trial that trained all its epochs (or was stopped by the scheduler) ends FINISHED; one that
diverged (its last report carries ``failure``) or crashed ends FAILED with the reason in
``regstudy.failure``. A trial retried by ``study resume`` that then finishes loses the reason its
earlier ending left.

While Tune runs, the writes are off the path that schedules trials: the callbacks hand them to a
thread that writes them in order and in batches (a trial's epochs that arrived together in one
``log_batch``; :mod:`.writer`), and that is drained and joined when the experiment ends and
before any of the sweep's runs are ended.

A store that does not answer never stops Tune: what could not be written is kept, in order, and
written once the store answers again (tried at most every :attr:`MlflowTrialLogger.RETRY_S`);
what is still kept when the driver ends, Ray's own results hold, and ``study sync NAME``
(:mod:`study.sync`, through the same methods) writes it.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Run, RunTag
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
    TRIAL_TAG,
)
from trainables.trial_config import POINT
from trainables.tune import split_config

from ..spec import _absolute, config_id
from .lifecycle import syncs_with
from .runs import BATCH, end_trial_run, reopen_run, settle_before_ending
from .store import TRACKING_ERRORS, as_params, describe, flatten, numeric, open_client
from .writer import Write, WriteBehind


def _epoch_keys(result: dict[str, Any]) -> list[str]:
    """The per-epoch metrics: the trainer's, and each active method's ``<name>_penalty``."""
    penalties = sorted(k for k in result if k.endswith("_penalty") and k not in EPOCH_METRICS)
    return [*EPOCH_METRICS, *penalties]


def epoch_of(result: dict[str, Any]) -> int:
    """The epoch a report is of (Tune's iteration when it names none)."""
    return int(result.get("epoch", result.get("training_iteration", 0)))


def sync_command(trial) -> str:
    """`` `study sync NAME` `` for the sweep ``trial`` belongs to (its storage path named when it
    is not the default)."""
    storage = getattr(trial, "storage", None)
    if storage is None:
        return "`study sync NAME`"
    path = storage.storage_fs_path
    if storage.storage_filesystem.type_name != "local":
        path = f"{storage.storage_filesystem.type_name}://{path}"
    flag = "" if path == _absolute("ray_results") else f" --storage-path {path}"
    return f"`study sync {storage.experiment_dir_name}{flag}`"


def run_name(trial) -> str:
    """A trial run's name: what its sweep chose for it (``da_p=0.95 seed=1``), the values of its
    grid axes or its sampled knobs, in Ray's order; the trial id when there are none."""
    chosen = getattr(trial, "evaluated_params", None) or {}
    shown = " ".join(_shown(key.rsplit("/", 1)[-1], value) for key, value in chosen.items())
    return shown or trial.trial_id


def _shown(key: str, value: Any) -> str:
    """``lr=0.05``; a confirm round's point by its own label (``lr=0.05``, not ``point=…``)."""
    if key == POINT and isinstance(value, dict):
        return str(value.get("name", value))
    return f"{key}={_short(value)}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return str(value.get("name", value))
    return str(value)


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
    """A Tune callback mirroring every trial into a nested run under the sweep's parent run.

    Tune pickles it with the experiment (``tuner.pkl``) and ``study resume`` unpickles it: only
    the four constructor fields travel, everything else is rebuilt (:meth:`__setstate__`), so a
    sweep pickled by an earlier version resumes under this one.
    """

    RETRY_S = 30.0  # while the store does not answer, seconds between attempts

    def __init__(self, tracking_uri: str, experiment_id: str, sweep_run_id: str, epochs: int):
        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.sweep_run_id = sweep_run_id
        self.epochs = epochs
        self._fresh()

    def _fresh(self) -> None:
        self._client: MlflowClient | None = None
        self._runs: dict[str, str] = {}
        self._logged_epochs: dict[str, int] = {}
        self._earlier_tags: dict[str, set[str]] = {}
        self._writes = WriteBehind(
            self._plan,
            TRACKING_ERRORS,
            clock=lambda: time.monotonic(),
            retry_s=lambda: self.RETRY_S,
            on_down=self._down,
            on_back=self._back,
        )
        self._sync: str | None = None

    def __getstate__(self) -> dict[str, Any]:
        keep = ("tracking_uri", "experiment_id", "sweep_run_id", "epochs")
        return {key: self.__dict__[key] for key in keep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._fresh()

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = open_client(self.tracking_uri)
        return self._client

    @property
    def pending(self) -> int:
        """Writes not done yet: queued, or kept because the store did not answer."""
        return self._writes.pending

    def find_run(self, trial) -> Run | None:
        """The trial's run, found by its tags; ``None`` if it has none."""
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=(
                f"tags.`{SWEEP_RUN_TAG}` = '{self.sweep_run_id}' "
                f"and tags.`{TRIAL_TAG}` = '{trial.trial_id}'"
            ),
            max_results=1,
        )
        return found[0] if found else None

    def run_for(self, trial) -> str:
        """The trial's run: remembered, found again by its tags (and reopened), or created."""
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        found = self.find_run(trial)
        if found:
            run_id = found.info.run_id
            if not found.data.params:  # created by a write that failed half-way
                self._log_record(run_id, trial)
            history = self.client.get_metric_history(run_id, "epoch")
            self._logged_epochs[trial.trial_id] = int(max((m.value for m in history), default=0))
            self._earlier_tags[trial.trial_id] = set(found.data.tags) & {FAILURE_TAG, STOPPED_TAG}
            if found.info.status != "RUNNING":
                reopen_run(self.client, run_id)
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
        run = self.client.create_run(self.experiment_id, tags=tags, run_name=run_name(trial))
        self._log_record(run.info.run_id, trial)
        return run.info.run_id

    def _log_record(self, run_id: str, trial) -> None:
        """The trial's config as params, its numbers also as ``hp.*`` metrics."""
        flat = flatten(trial_record(dict(trial.config)))
        hparams = [
            Metric(f"{HPARAM_PREFIX}{k}", float(v), 0, 0) for k, v in flat.items() if numeric(v)
        ]
        self.client.log_batch(run_id, metrics=hparams, params=as_params(flat))

    def setup(self, **info) -> None:
        """Tune starts: from now until the experiment ends, a thread does the writes."""
        syncs_with(None)
        self._writes.start()
        settle_before_ending(self._writes.close)

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._write(self.run_for, trial)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._write(self.log_result, trial, {k: v for k, v in result.items() if k != "config"})

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result = dict(trial.last_result or {})
        self._write(self.finish, trial, result, result.get("failure") or None)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._write(self.finish, trial, dict(trial.last_result or {}), _error_text(trial))

    def on_experiment_end(self, trials, **info) -> None:
        """The writes still waiting, one last attempt whatever the retry interval; the thread
        is joined."""
        self._writes.close()

    def _write(self, action: Callable[..., Any], trial, *args: Any) -> None:
        """``action(trial, *args)`` after the writes handed over before it; kept with them while
        the store does not answer (tried again after :attr:`RETRY_S`)."""
        if self._sync is None:
            self._sync = sync_command(trial)
            syncs_with(self._sync)
        self._writes.submit((trial.trial_id, action, (trial, *args)))

    def _plan(self, batch: list[Write]) -> Iterator[tuple[Callable[[], Any], list[int]]]:
        """The calls for a batch of writes: trial by trial (each trial's in order; trials are
        independent runs), a trial's consecutive epochs merged into one :meth:`log_results`."""
        by_trial: dict[str, list[int]] = {}
        for index, (trial_id, _, _) in enumerate(batch):
            by_trial.setdefault(trial_id, []).append(index)
        for indices in by_trial.values():
            start = 0
            while start < len(indices):
                _, action, args = batch[indices[start]]
                end = start + 1
                if action == self.log_result:
                    while end < len(indices) and batch[indices[end]][1] == self.log_result:
                        end += 1
                    results = [batch[i][2][1] for i in indices[start:end]]
                    yield partial(self.log_results, args[0], results), indices[start:end]
                else:
                    yield partial(action, *args), [indices[start]]
                start = end

    def _back(self, done: int) -> None:
        print(
            f"[tracking] MLflow at {self.tracking_uri} answers again: {done} kept writes done",
            file=sys.stderr,
            flush=True,
        )

    def _down(self, err: BaseException, first: bool) -> None:
        """The store refused a write (tried again after :attr:`RETRY_S`): forget what was read
        of the runs, since a write that failed may have landed, so it is read again (and not
        repeated)."""
        self._runs.clear()
        self._logged_epochs.clear()
        if not first:
            return
        reason = describe(err)
        where = "" if self.tracking_uri in reason else f" at {self.tracking_uri}"
        print(
            f"[tracking] MLflow{where} unreachable ({reason}): trial results stay in Ray's "
            f"storage; they are written when it answers again, or by {self._sync}",
            file=sys.stderr,
            flush=True,
        )

    def log_result(self, trial, result: dict[str, Any]) -> bool:
        """Log one report's metrics at ``step=epoch``; an epoch the run has already is skipped.
        Returns whether it logged."""
        return self.log_results(trial, [result]) > 0

    def log_results(self, trial, results: list[dict[str, Any]]) -> int:
        """Log reports' metrics at ``step=epoch``, whole epochs per ``log_batch`` (one call for a
        few); an epoch the run has already is skipped. Returns how many epochs it logged."""
        run_id = self.run_for(trial)
        newest = self._logged_epochs.get(trial.trial_id, 0)
        stamp = int(time.time() * 1000)
        epochs: list[tuple[int, list[Metric]]] = []
        tags: dict[str, str] = {}
        for result in results:
            epoch = epoch_of(result)
            if epoch <= newest:
                continue
            newest = epoch
            keys = (*_epoch_keys(result), *SUMMARY_METRICS, "epoch")
            metrics = [
                Metric(k, float(result[k]), stamp, epoch) for k in keys if numeric(result.get(k))
            ]
            epochs.append((epoch, metrics))
            if "node_id" in result:
                tags["node_id"] = str(result["node_id"])
            if result.get("machine"):
                tags[MACHINE_TAG] = str(result["machine"])
        run_tags = [RunTag(k, v) for k, v in tags.items()]
        for chunk in _whole_epochs(epochs):
            metrics = [m for _, ms in chunk for m in ms]
            self.client.log_batch(run_id, metrics=metrics, tags=run_tags)
            self._logged_epochs[trial.trial_id] = chunk[-1][0]
        return len(epochs)

    def finish(self, trial, result: dict[str, Any], failure: str | None) -> None:
        """End the trial's run: FAILED with ``failure``, else FINISHED. A summary metric the run
        holds already at that value (an ending replayed) is not logged again."""
        run_id = self.run_for(trial)
        stamp = int(time.time() * 1000)
        final = {f"final_{k}": result[k] for k in _epoch_keys(result) if numeric(result.get(k))}
        summary = {k: result[k] for k in SUMMARY_METRICS if numeric(result.get(k))}
        summary["epochs_completed"] = result.get("epoch", 0)
        held = self.client.get_run(run_id).data.metrics
        metrics = [
            Metric(k, float(v), stamp, 0)
            for k, v in {**final, **summary}.items()
            if not _same(held.get(k), float(v))
        ]
        epoch = result.get("epoch", self.epochs)
        stopped_at = epoch if not failure and 0 < epoch < self.epochs else None
        earlier = self._earlier_tags.pop(trial.trial_id, set())
        end_trial_run(self.client, run_id, metrics, failure, stopped_at, earlier)


def _whole_epochs(epochs: list[tuple[int, list[Metric]]]) -> Iterator[list]:
    """Epochs packed into ``log_batch`` calls of at most :data:`BATCH` metrics, an epoch never
    split: a call that fails leaves whole epochs logged before it, which a replay skips."""
    chunk: list[tuple[int, list[Metric]]] = []
    size = 0
    for epoch, metrics in epochs:
        if chunk and size + len(metrics) > BATCH:
            yield chunk
            chunk, size = [], 0
        chunk.append((epoch, metrics))
        size += len(metrics)
    if chunk:
        yield chunk


def _same(held: float | None, value: float) -> bool:
    return held is not None and (held == value or (math.isnan(held) and math.isnan(value)))


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
