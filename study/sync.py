"""``study sync NAME``: write what MLflow missed of a sweep, from Ray's results on disk.

Ray's storage is the source of truth: each trial's ``result.json`` holds every report, the
experiment's state each trial's status. The replay goes through the trial logger's own methods
(:class:`study.tracking.MlflowTrialLogger`), so it writes what the callback would have: the
trial's run (found by its tags, or created), the epochs after the last one MLflow has, and its
ending by the same rules; the sweep's run then ends by the runner's rule. A run that already
holds everything is left alone, so a second sync writes nothing.

Run it when no driver runs the sweep: ``study resume`` runs it first itself.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune import ExperimentAnalysis
from ray.tune.experiment import Trial
from ray.tune.result import EXPR_RESULT_FILE

from search_spaces import get_space

from .checkpoints import result_rows
from .runner import _expected_trials, read_record
from .spec import Spec
from .tracking.runs import FAILED, FINISHED, KILLED, SweepCounts, end_run, end_sweep_run
from .tracking.store import TRACKING_ERRORS, describe
from .tracking.trials import MlflowTrialLogger, _error_text, epoch_of

_ENDED = (Trial.TERMINATED, Trial.ERROR)
_COUNTS = ("trials", "trials_diverged", "trials_errored")


@dataclass(frozen=True)
class SyncOutcome:
    """What a sync wrote: runs created, epochs logged, runs ended; the sweep run's status."""

    name: str
    trials: int
    runs_created: int
    epochs_written: int
    runs_ended: int
    sweep_run_id: str
    sweep_status: str

    @property
    def wrote(self) -> bool:
        return bool(self.runs_created or self.epochs_written or self.runs_ended)

    def line(self) -> str:
        return (
            f"sync {self.name}: {self.trials} trials; {self.runs_created} runs created, "
            f"{self.epochs_written} epochs written, {self.runs_ended} runs ended; "
            f"sweep run {self.sweep_run_id} {self.sweep_status}"
        )


@dataclass
class _Tally:
    created: int = 0
    epochs: int = 0
    ended: int = 0


def sync(name: str, storage_path: str = "ray_results") -> SyncOutcome:
    """Write into MLflow every trial result of sweep ``name`` it lacks, exactly once, and end
    the runs whose trials ended in Ray."""
    record = read_record(name, storage_path)
    spec = Spec.model_validate(record["spec"])
    logger = MlflowTrialLogger(
        spec.tracking_uri or "", record["experiment_id"], record["sweep_run_id"], spec.budget.epochs
    )
    trials = _ray_trials(spec.experiment_dir)
    tally = _Tally()
    for trial in trials:
        _sync_trial(logger, trial, _rows(trial), name, tally)
    status = _end_sweep(logger, spec, _counts(trials))
    return SyncOutcome(
        name,
        len(trials),
        tally.created,
        tally.epochs,
        tally.ended,
        record["sweep_run_id"],
        status,
    )


def catch_up(name: str, storage_path: str) -> SyncOutcome | None:
    """:func:`sync` before a resume; ``None`` when the store does not answer (the resume then
    fails on it, naming it). What it wrote is said in one line on stderr."""
    try:
        outcome = sync(name, storage_path)
    except TRACKING_ERRORS as err:
        print(f"[tracking] sync skipped: {describe(err)}", file=sys.stderr, flush=True)
        return None
    if outcome.wrote:
        print(f"[tracking] {outcome.line()}", file=sys.stderr, flush=True)
    return outcome


def _ray_trials(experiment_dir: str) -> list:
    """The sweep's trials as Ray last saved them (status, config, last result, storage)."""
    try:
        return ExperimentAnalysis(experiment_dir).trials
    except ValueError:  # no experiment state: Tune never saved one
        raise FileNotFoundError(
            f"{experiment_dir}: no experiment state of Ray's (the sweep stopped before Tune "
            "saved one); nothing to sync"
        ) from None


def _rows(trial) -> list[dict[str, Any]]:
    """Every report of the trial, in the order Ray wrote them (a line cut short is dropped)."""
    storage = trial.storage
    path = Path(storage.trial_fs_path, EXPR_RESULT_FILE).as_posix()
    try:
        with storage.storage_filesystem.open_input_stream(path) as stream:
            text = stream.readall().decode()
    except (FileNotFoundError, OSError):
        return []
    return result_rows(text)


def _failure(trial, last: dict[str, Any]) -> str | None:
    """Why an ended trial did not finish: its error's last line, or its divergence."""
    if trial.status == Trial.ERROR:
        text = str(trial.get_error() or "")
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return lines[-1] if lines else _error_text(trial)
    return last.get("failure") or None


def _sync_trial(
    logger: MlflowTrialLogger, trial, rows: list[dict[str, Any]], name: str, tally: _Tally
) -> None:
    """One trial: its run, the epochs MLflow lacks, its ending (KILLED for a trial Ray has not
    ended: ``study resume`` continues it); nothing when its run holds all of that already."""
    ended = trial.status in _ENDED
    last = rows[-1] if rows else dict(trial.last_result or {})
    failure = _failure(trial, last) if ended else None
    run = logger.find_run(trial)
    if run is None and not rows and not ended:
        return
    if run is not None and not _behind(logger, run, rows):
        status = run.info.status
        if (ended and status == (FAILED if failure else FINISHED)) or (
            not ended and status != "RUNNING"
        ):
            return
    tally.created += run is None
    logger.run_for(trial)
    tally.epochs += sum(logger.log_result(trial, row) for row in rows)
    if ended:
        logger.finish(trial, last, failure)
    else:
        reason = f"left unended by its driver; Ray's results hold it; `study resume {name}`"
        end_run(logger.client, logger.run_for(trial), KILLED, reason)
    tally.ended += 1


def _behind(logger: MlflowTrialLogger, run, rows: list[dict[str, Any]]) -> bool:
    """Whether Ray holds an epoch the run lacks."""
    history = logger.client.get_metric_history(run.info.run_id, "epoch")
    logged = int(max((m.value for m in history), default=0))
    return any(epoch_of(row) > logged for row in rows)


def _counts(trials: list) -> SweepCounts:
    """How the trials ended, from Ray's statuses (as :meth:`SweepCounts.of` reads a result grid)."""
    errored = sum(t.status == Trial.ERROR for t in trials)
    terminated = [t for t in trials if t.status == Trial.TERMINATED]
    diverged = sum(bool((t.last_result or {}).get("failure")) for t in terminated)
    return SweepCounts(len(trials), len(terminated) + errored, errored, diverged)


def _end_sweep(logger: MlflowTrialLogger, spec: Spec, counts: SweepCounts) -> str:
    """End the sweep's run by the runner's rule, unless it is ended with these counts already;
    returns its status."""
    client, run_id = logger.client, logger.sweep_run_id
    run = client.get_run(run_id)
    held = run.data.metrics
    logged = (counts.trials, counts.diverged, counts.errored)
    if run.info.status != "RUNNING" and all(
        held.get(key) == value for key, value in zip(_COUNTS, logged)
    ):
        return run.info.status
    expected = _expected_trials(spec, get_space(spec.space))
    return end_sweep_run(client, run_id, spec.name, counts, expected)
