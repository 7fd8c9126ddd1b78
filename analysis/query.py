"""Every MLflow read: trial runs of a study into one ``pyarrow.Table``.

One row per trial run: identity (run, sweep, config id, seed), status and
failure reason, every param as ``param.<key>`` (MLflow's strings, as stored),
numeric hyperparameters as ``hp.<key>`` floats, and every latest metric as
``metric.<key>``. Filters: the experiment (the study name), one sweep's parent
run, a recipe tag. ``table.to_pandas()`` for users who want pandas.

Reading never writes: MLflow's SQLite store creates its database file as soon as a client
touches it, so a ``sqlite:///`` URI whose file does not exist is refused (:class:`StoreNotFound`)
before any client is built, and a mistyped path leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

import pyarrow as pa
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from .schema import (
    CONFIG_TAG,
    CONFIRMS_TAG,
    FAILURE_TAG,
    HPARAM_PREFIX,
    KIND_TAG,
    MACHINE_TAG,
    RECIPE_TAG,
    SEED_TAG,
    STOPPED_TAG,
    SWEEP_RUN_TAG,
    TAG,
    TRIAL_TAG,
)

_PAGE = 1000


class ExperimentNotFound(LookupError):
    """No MLflow experiment by that name at that tracking URI."""


class StoreNotFound(LookupError):
    """A ``sqlite:///`` tracking URI whose database file does not exist, or a tracking server
    that does not answer."""


ANSWER_TIMEOUT_S = 5.0


def health(server_uri: str, timeout: float = ANSWER_TIMEOUT_S) -> tuple[int | None, str]:
    """An MLflow server's ``/health``: the HTTP status it answered with (``None`` when it did not
    answer within ``timeout``) and why it did not. One probe for every command that asks."""
    try:
        with urlopen(f"{server_uri.rstrip('/')}/health", timeout=timeout) as answer:
            return answer.status, ""
    except HTTPError as err:
        return err.code, str(err.reason)
    except (URLError, OSError, ValueError) as err:
        return None, str(getattr(err, "reason", err))


def _answers(tracking_uri: str, timeout: float = ANSWER_TIMEOUT_S) -> str | None:
    """Why an ``http(s)://`` tracking server cannot be read (``None`` when it answers its
    ``/health`` within ``timeout``, whatever its status: MLflow then says what it thinks of the
    request); MLflow's own client retries for minutes first."""
    if not tracking_uri.startswith(("http://", "https://")):
        return None
    status, reason = health(tracking_uri, timeout)
    return reason if status is None else None


def _sqlite_file(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URI (relative to the working directory, as
    SQLAlchemy reads it); None for other stores and in-memory SQLite."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    path = tracking_uri[len(prefix) :].split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path)


def _client(tracking_uri: str) -> MlflowClient:
    """A client for reading; refuses a SQLite URI whose file is missing rather than create it."""
    path = _sqlite_file(tracking_uri) if tracking_uri else None
    if path is not None and not path.is_file():
        raise StoreNotFound(
            f"tracking URI {tracking_uri}: no MLflow database at {path.resolve()}; nothing has "
            "been logged there (point --tracking-uri or MLFLOW_TRACKING_URI at the store your "
            "sweeps logged to)"
        )
    down = _answers(tracking_uri) if tracking_uri else None
    if down is not None:
        raise StoreNotFound(
            f"tracking URI {tracking_uri} does not answer within {ANSWER_TIMEOUT_S:g} s ({down}); "
            "start it with `study server`, or check --tracking-uri"
        )
    return MlflowClient(tracking_uri)


def _search(client: MlflowClient, experiment_id: str, filter_string: str) -> Iterator[Run]:
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=filter_string, max_results=_PAGE, page_token=token
        )
        yield from page
        token = page.token
        if not token:
            return


def _experiment_id(client: MlflowClient, experiment: str, tracking_uri: str) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ExperimentNotFound(
            f"no MLflow experiment {experiment!r} at {tracking_uri}; experiments there: {names}"
        )
    return found.experiment_id


def sweep_runs(tracking_uri: str, experiment: str, recipe: str | None = None) -> list[Run]:
    """The parent runs of a study's sweeps, newest first."""
    client = _client(tracking_uri)
    filters = [f"tags.`{KIND_TAG}` = 'sweep'"]
    if recipe:
        filters.append(f"tags.`{RECIPE_TAG}` = '{recipe}'")
    runs = list(
        _search(client, _experiment_id(client, experiment, tracking_uri), " and ".join(filters))
    )
    return sorted(runs, key=lambda r: r.info.start_time, reverse=True)


def confirm_runs(tracking_uri: str, experiment: str, sweep_run_id: str) -> list[Run]:
    """The confirm rounds (``study confirm``) of one sweep, oldest first."""
    client = _client(tracking_uri)
    filters = f"tags.`{KIND_TAG}` = 'confirm' and tags.`{CONFIRMS_TAG}` = '{sweep_run_id}'"
    runs = list(_search(client, _experiment_id(client, experiment, tracking_uri), filters))
    return sorted(runs, key=lambda r: r.info.start_time)


def _sweep_columns(sweep: Run) -> dict[str, Any]:
    prefix = f"{TAG}."
    return {
        f"sweep.{key.removeprefix(prefix)}": value
        for key, value in sweep.data.tags.items()
        if key.startswith(prefix) and key != KIND_TAG
    }


def metric_histories(tracking_uri: str, run_ids: list[str], key: str) -> pa.Table:
    """Per-epoch values of metric ``key`` for each run: columns run_id, step, value."""
    client = _client(tracking_uri)
    rows = [
        {"run_id": run_id, "step": m.step, "value": float(m.value)}
        for run_id in run_ids
        for m in client.get_metric_history(run_id, key)
    ]
    schema = pa.schema([("run_id", pa.string()), ("step", pa.int64()), ("value", pa.float64())])
    return pa.Table.from_pylist(rows, schema=schema)


def _row(run: Run) -> dict[str, Any]:
    tags = run.data.tags
    row: dict[str, Any] = {
        "run_id": run.info.run_id,
        "status": run.info.status,
        "sweep_run_id": tags.get(SWEEP_RUN_TAG),
        "config_id": tags.get(CONFIG_TAG),
        "trial_id": tags.get(TRIAL_TAG),
        "seed": int(tags[SEED_TAG]) if SEED_TAG in tags else None,
        "failure": tags.get(FAILURE_TAG),
        "machine": tags.get(MACHINE_TAG),
        "stopped_early": STOPPED_TAG in tags,
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
    }
    row.update({f"param.{k}": v for k, v in run.data.params.items()})
    for key, value in run.data.metrics.items():
        hparam = key.startswith(HPARAM_PREFIX)
        row[key if hparam else f"metric.{key}"] = float(value)
    return row


def trial_runs(
    tracking_uri: str,
    experiment: str,
    sweep_run_id: str | None = None,
    recipe: str | None = None,
    confirmed: bool = True,
) -> pa.Table:
    """All trial runs of ``experiment`` (optionally of one sweep, or of a recipe's sweeps).

    One sweep's runs include those its confirm rounds added (more seeds of its best configs),
    unless ``confirmed`` is false. Each row also carries its sweep's ``regstudy.*`` tags as
    ``sweep.<key>`` columns (a recipe's ``part``, ``scale``, ...), so rows can be grouped by part.
    """
    client = _client(tracking_uri)
    exp_id = _experiment_id(client, experiment, tracking_uri)
    sweeps = {run.info.run_id: run for run in sweep_runs(tracking_uri, experiment, recipe)}
    trials = f"tags.`{KIND_TAG}` = 'trial'"
    if sweep_run_id:
        family = {sweep_run_id: sweeps.get(sweep_run_id)}
        if confirmed:
            rounds = confirm_runs(tracking_uri, experiment, sweep_run_id)
            family.update({run.info.run_id: family[sweep_run_id] for run in rounds})
        found = (
            run
            for member in family
            for run in _search(client, exp_id, f"{trials} and tags.`{SWEEP_RUN_TAG}` = '{member}'")
        )
        sweeps = family
    else:
        found = _search(client, exp_id, trials)
    rows = []
    for run in found:
        sweep = sweeps.get(run.data.tags.get(SWEEP_RUN_TAG))
        if recipe and sweep is None:
            continue
        row = _row(run)
        if sweep is not None:
            row.update(_sweep_columns(sweep))
        rows.append(row)
    if not rows:
        return pa.table({"run_id": pa.array([], pa.string())})
    columns = sorted({key for row in rows for key in row})
    return pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows])
