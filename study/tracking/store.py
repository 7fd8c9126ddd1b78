"""The tracking store: a client whose store exists, the study's experiment, params as MLflow takes
them.

A new SQLite store is created (MLflow's schema and its migrations) under a file lock beside the
file, so two drivers starting at the same moment on a new store both succeed; without it one
dies with ``table … already exists`` or an alembic error.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import mlflow
import sqlalchemy.exc
import urllib3.exceptions
from filelock import FileLock
from mlflow.entities import Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..spec import DEFAULT_ARTIFACTS
from . import schema_cache

CREATE_TIMEOUT_S = 120  # creating the schema takes seconds; a lock held longer is stale
# MLflow's HTTP defaults retry a refused request for minutes (7 tries, backoff 2, 120 s timeout):
# bounded here, so a write to a server that is down fails within seconds.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
# What a write raises when the store does not answer or cannot be written.
TRACKING_ERRORS: tuple[type[BaseException], ...] = (
    MlflowException,
    OSError,
    urllib3.exceptions.HTTPError,
    sqlalchemy.exc.OperationalError,
)


def sqlite_path(tracking_uri: str) -> Path | None:
    """The file of a ``sqlite:///`` store; ``None`` for any other store."""
    return (
        Path(tracking_uri.removeprefix("sqlite:///"))
        if tracking_uri.startswith("sqlite:///")
        else None
    )


def open_client(tracking_uri: str | None) -> MlflowClient:
    """A client for ``tracking_uri`` (MLflow's default if ``None``) whose store exists: MLflow
    builds the store as the client is made, so a new SQLite file is made under the lock. An HTTP
    store's retries are bounded (:data:`HTTP_DEFAULTS`, unless the environment sets them)."""
    uri = tracking_uri or mlflow.get_tracking_uri()
    if uri.startswith(("http://", "https://")):
        for key, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
    path = sqlite_path(uri)
    if path is None:
        return MlflowClient(tracking_uri)
    try:
        lock = FileLock(f"{path}.lock", timeout=CREATE_TIMEOUT_S)
        lock.acquire()
    except OSError:  # a directory we cannot write: MLflow's own error will say so
        return MlflowClient(tracking_uri)
    try:
        return _client_for_sqlite(tracking_uri, path)
    finally:
        lock.release()


def _client_for_sqlite(tracking_uri: str | None, path: Path) -> MlflowClient:
    """A client whose SQLite store ``path`` exists: a new one starts from the cached empty
    schema (:mod:`.schema_cache`) or, the first time, is built by MLflow and then cached."""
    if path.exists() and path.stat().st_size > 0:
        return MlflowClient(tracking_uri)
    if schema_cache.seed(path):
        try:
            return MlflowClient(tracking_uri)
        except Exception:  # a cached schema this MLflow does not accept: build it anew
            schema_cache.forget()
            path.unlink(missing_ok=True)
            _drop_engine(str(tracking_uri))
    client = MlflowClient(tracking_uri)
    schema_cache.keep(path)
    return client


def _drop_engine(uri: str) -> None:
    """Forget MLflow's engine for ``uri`` (it caches one per URI, whose connections would still
    see the file just removed)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for cache in ("_engine_map", "_db_uri_sql_alchemy_engine_map"):  # its name, newer and older
        engine = getattr(SqlAlchemyStore, cache, {}).pop(uri, None)
        if engine is not None:
            engine.dispose()


def unreachable(err: BaseException) -> str | None:
    """A short reason (``connection refused at http://host:port``) when ``err`` says an HTTP
    store did not answer; ``None`` for any other error. MLflow's own text repeats a long URL."""
    text = str(err)
    request = re.search(r"API request to (https?://[^/\s]+)\S* failed", text)
    if request is None:
        return None
    errno = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    why = errno.group(1).strip() if errno else "no answer"
    if errno is None and "timed out" in text.lower():
        why = "timed out"
    return f"{why.lower()} at {request.group(1)}"


def describe(err: BaseException) -> str:
    """One short line on a tracking error: :func:`unreachable`'s, else its type and first line."""
    short = unreachable(err)
    if short:
        return short
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}".rstrip(": ")[:300]


def experiment_id(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """The experiment for study ``name``, created on first use (artifacts beside a SQLite store);
    a driver creating it at the same moment is no error."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    store = sqlite_path(tracking_uri)
    if store is not None:
        location = (store.parent / DEFAULT_ARTIFACTS / name).resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as err:
        found = client.get_experiment_by_name(name)
        if err.error_code != "RESOURCE_ALREADY_EXISTS" or found is None:
            raise
        return found.experiment_id


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


def numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
