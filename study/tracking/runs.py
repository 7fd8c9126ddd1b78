"""Opening and ending runs: a sweep's parent run, a recipe's run, a script's trial runs.

The ending rule lives here. A run ends FINISHED, KILLED (interrupted: `study resume` or
`study reproduce` continues it) or FAILED, and a run that did not finish carries the reason in
``regstudy.failure``; a run that finishes after all (a resumed sweep, a retried trial) loses the
reason an earlier ending left.
"""

from __future__ import annotations

import json
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from analysis.schema import (
    FAILURE_TAG,
    FINGERPRINT_TAG,
    KIND_TAG,
    PARENT_TAG,
    RECIPE_TAG,
    SCALE_TAG,
    STOPPED_TAG,
    SWEEP_RUN_TAG,
    SWEEP_TAG,
    TAG,
)

from ..spec import Spec
from .store import as_params, experiment_id, flatten

FINISHED = RunStatus.to_string(RunStatus.FINISHED)
KILLED = RunStatus.to_string(RunStatus.KILLED)
FAILED = RunStatus.to_string(RunStatus.FAILED)
BATCH = 900  # metrics per log_batch, under MLflow's 1000


_WRITERS: list[Callable[[], None]] = []  # trial loggers' queued writes, closed by settle_writes


def settle_before_ending(close: Callable[[], None]) -> None:
    """``close`` finishes a trial logger's queued writes (:mod:`.writer`); it is called before
    any run is ended by the ending rule here, whatever stopped the driver."""
    if close not in _WRITERS:
        _WRITERS.append(close)


def settle_writes() -> None:
    """Finish every trial logger's queued writes, so that no trial write lands after the ending
    rule ran (a trial run ended KILLED, then FINISHED by a late write)."""
    while _WRITERS:
        _WRITERS.pop()()


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

    ``parent_run_id`` nests the sweep under a recipe's run, or a confirm round (a spec tagged
    ``confirms``) under the sweep it confirms.
    """
    exp = experiment_id(client, spec.experiment_name, spec.tracking_uri or "")
    tags = {
        SWEEP_TAG: spec.name,
        KIND_TAG: "confirm" if is_confirm_round(spec) else "sweep",
        FINGERPRINT_TAG: spec.fingerprint(),
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


def is_confirm_round(spec: Spec) -> bool:
    """Whether ``spec`` is a round of ``study confirm`` (more seeds of a finished sweep's best)."""
    return "confirms" in spec.tags


def reopen_run(client: MlflowClient, run_id: str) -> None:
    """Mark a run RUNNING again: a resumed sweep, a recipe run again."""
    client.update_run(run_id, status="RUNNING")


def clear_tags(client: MlflowClient, run_id: str, keys: set[str], present: set[str]) -> None:
    """Delete the tags ``keys`` among those the run has (``present``): an earlier ending's."""
    for key in sorted(keys & present):
        client.delete_tag(run_id, key)


def end_run(client: MlflowClient, run_id: str, status: str, reason: str | None = None) -> None:
    """End a run with ``status``; ``reason`` (why it did not finish) goes in ``regstudy.failure``,
    and a run that finishes loses the reason an earlier ending left."""
    if reason:
        client.set_tag(run_id, FAILURE_TAG, reason[:5000])
    else:
        clear_tags(client, run_id, {FAILURE_TAG}, set(client.get_run(run_id).data.tags))
    client.set_terminated(run_id, status=status)


@dataclass(frozen=True)
class SweepCounts:
    """How a sweep's trials ended, read from Tune's results."""

    trials: int
    ended: int
    errored: int
    diverged: int

    @classmethod
    def of(cls, results) -> SweepCounts:
        """From a ``ResultGrid``: errored is Tune's ERROR (crashed); diverged is TERMINATED with
        the failure in its last report."""
        diverged = sum(
            1
            for result in results
            if getattr(result, "error", None) is None
            and (getattr(result, "metrics", None) or {}).get("failure")
        )
        errored = results.num_errors
        return cls(len(results), results.num_terminated + errored, errored, diverged)


def end_sweep_run(
    client: MlflowClient,
    run_id: str,
    name: str,
    counts: SweepCounts,
    expected: int,
    stopped_by: str | None = None,
) -> str:
    """End a sweep's parent run by the rule (docs/study.md) and return its status: FINISHED when
    every trial ended (trained, stopped by the scheduler, or diverged: a FAILED trial run with
    its reason); FAILED when trials crashed (``study resume`` retries them); KILLED when trials
    were left unended. Trial runs still RUNNING end KILLED; the counts are logged beside
    (``trials``, ``trials_diverged``, ``trials_errored``).

    After a stop (``stopped_by``: the signal), Tune reports the trials it stopped as TERMINATED:
    their runs, which no trial end reached, are what tells them apart."""
    settle_writes()
    running = _running_trials(client, run_id)
    ended = counts.ended - (len(running) if stopped_by else 0)
    total = max(counts.trials, expected)
    again = f"`study resume {name}`"
    status, reason = FINISHED, None
    if ended < total:
        how = f"interrupted by {stopped_by or 'Tune'}"
        status, reason = KILLED, f"{how}: {ended} of {total} trials ended; {again} continues it"
    elif counts.errored:
        status, reason = FAILED, f"{counts.errored} of {total} trials crashed; {again} retries them"
    for run in running:
        leftover = "left RUNNING by an earlier driver; Ray's results hold the trial"
        end_run(client, run.info.run_id, KILLED, reason or leftover)
    logged = {
        "trials": counts.trials,
        "trials_diverged": counts.diverged,
        "trials_errored": counts.errored,
    }
    stamp = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), stamp, 0) for k, v in logged.items()])
    end_run(client, run_id, status, reason)
    return status


def _running_trials(client: MlflowClient, parent_run_id: str) -> list:
    exp_id = client.get_run(parent_run_id).info.experiment_id
    return client.search_runs(
        [exp_id],
        filter_string=(
            f"tags.`{SWEEP_RUN_TAG}` = '{parent_run_id}' and attributes.status = 'RUNNING'"
        ),
        max_results=50000,
    )


def end_running_trials(client: MlflowClient, parent_run_id: str, status: str, reason: str) -> int:
    """End every trial run of sweep (or recipe) ``parent_run_id`` still RUNNING, with the reason;
    returns how many. A resumed sweep reattaches to them and reopens them."""
    settle_writes()
    running = _running_trials(client, parent_run_id)
    for run in running:
        end_run(client, run.info.run_id, status, reason)
    return len(running)


def end_trial_run(
    client: MlflowClient,
    run_id: str,
    metrics: list[Metric],
    failure: str | None,
    stopped_at: int | None,
    earlier_tags: set[str],
) -> None:
    """End a trial's run: summary metrics, FAILED with ``failure`` as its reason or FINISHED
    (``stopped_at``: the epoch a scheduler stopped it at); a trial retried after an earlier
    ending loses that ending's tags (``earlier_tags``: those its run had when reattached)."""
    tags: dict[str, str] = {}
    if failure:
        tags[FAILURE_TAG] = failure[:5000]
    elif stopped_at is not None:
        tags[STOPPED_TAG] = str(stopped_at)
    clear_tags(client, run_id, {FAILURE_TAG, STOPPED_TAG} - set(tags), earlier_tags)
    client.log_batch(run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()])
    client.set_terminated(run_id, status=FAILED if failure else FINISHED)


def open_recipe_run(client: MlflowClient, exp_id: str, recipe: str, scale: str) -> str:
    """The recipe's run at this scale, RUNNING: found by its tags (the newest), else created."""
    run_id = find_recipe_run(client, exp_id, recipe)
    if run_id is None:
        tags = {KIND_TAG: "recipe", RECIPE_TAG: recipe, SCALE_TAG: scale, "host": platform.node()}
        return client.create_run(exp_id, tags=tags, run_name=f"{recipe}-{scale}").info.run_id
    reopen_run(client, run_id)
    return run_id


def find_recipe_run(client: MlflowClient, exp_id: str, recipe: str) -> str | None:
    found = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{KIND_TAG}` = 'recipe' and tags.`{RECIPE_TAG}` = '{recipe}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0].info.run_id if found else None


def log_report(client: MlflowClient, exp_id: str, recipe: str, scale: str, paths: list[Path]):
    """Log a rendered report under the recipe's run; a recipe never reproduced here gets a run
    for it, ended at once (a report alone leaves nothing RUNNING)."""
    run_id = find_recipe_run(client, exp_id, recipe)
    created = run_id is None
    if created:
        run_id = open_recipe_run(client, exp_id, recipe, scale)
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path="report")
    if created:
        end_run(client, run_id, FINISHED)


def log_artifacts(client: MlflowClient, run_id: str, paths: list[Path], artifact_path: str) -> None:
    """Log files under ``artifact_path`` of a run, ended or not (an analysis of a sweep run)."""
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path=artifact_path)


def log_finished_trial(
    client: MlflowClient,
    exp_id: str,
    tags: dict[str, str],
    params: list[Param],
    metrics: list[Metric],
    artifacts: dict[str, Any],
) -> str:
    """A trial a script ran in-process, recorded whole: created, params and metrics in batches,
    JSON artifacts, FINISHED; a write that fails ends it FAILED with the reason."""
    run_id = client.create_run(exp_id, tags=tags).info.run_id
    try:
        for start in range(0, max(len(metrics), 1), BATCH):
            chunk = metrics[start : start + BATCH]
            client.log_batch(run_id, metrics=chunk, params=params if start == 0 else [])
        with tempfile.TemporaryDirectory() as directory:
            for name, content in artifacts.items():
                path = Path(directory) / f"{name}.json"
                path.write_text(json.dumps(content))
                client.log_artifact(run_id, str(path))
    except BaseException as err:
        status = KILLED if isinstance(err, KeyboardInterrupt) else FAILED
        end_run(client, run_id, status, f"{type(err).__name__}: {err}")
        raise
    client.set_terminated(run_id, status=FINISHED)
    return run_id


BEST_CONFIG_TAG = f"{TAG}.best_config"
BEST_TABLE = "best/best.csv"


def log_best(client: MlflowClient, run_id: str, metric: str, table: pd.DataFrame) -> None:
    """Put a sweep's result on its parent run: the best config's mean, 95% interval and seeds as
    ``best.METRIC*`` metrics, the config as a tag, and every config's row as ``best/best.csv``."""
    best = table.iloc[0]
    stats = ("config_id", "runs", "finished", "failed", "stopped_early", "seeds", "n", "mean")
    stats += ("std", "sem", "ci_low", "ci_high", "rank")
    knobs = " ".join(f"{k}={best[k]}" for k in table.columns if k not in stats)
    stamp = int(time.time() * 1000)
    values = {
        f"best.{metric}": best["mean"],
        f"best.{metric}.ci_low": best["ci_low"],
        f"best.{metric}.ci_high": best["ci_high"],
        "best.n": best["n"],
    }
    metrics = [Metric(k, float(v), stamp, 0) for k, v in values.items() if pd.notna(v)]
    tags = [RunTag(BEST_CONFIG_TAG, knobs or str(best["config_id"]))]
    client.log_batch(run_id, metrics=metrics, tags=tags)
    client.log_text(run_id, table.to_csv(index=False), BEST_TABLE)
