"""A new SQLite store from a copy of an empty one.

MLflow builds a new store's schema by running every one of its migrations: 1.5 s of CPU here, on
the path of every first sweep in a directory and every test that makes a store. The schema is the
same for every store of one MLflow version, so the first new store also leaves an empty copy of
itself in the user's cache (``$XDG_CACHE_HOME/regstudy``, else ``~/.cache/regstudy``), and the
next new store starts as a copy of it: a file copy, after which MLflow only checks the schema is
at its head and adds its Default experiment (the copy holds none, so its artifact location is
the new store's own). A copy MLflow does not accept is removed and the store built as before.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import mlflow

# Rows a new store holds that belong to it, not to the schema.
_OWN_ROWS = ("experiment_tags", "experiments")
_TABLES = {"alembic_version", "experiments", "runs", "metrics", "params", "tags"}


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "regstudy"


def cached_schema() -> Path:
    """Where this MLflow version's empty store is kept."""
    return cache_dir() / f"mlflow-{mlflow.__version__}-sqlite-schema.db"


def _looks_whole(schema: Path) -> bool:
    """An MLflow schema with its migration stamp and none of a store's own rows."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{schema}?mode=ro", uri=True)) as db:
            tables = {name for (name,) in db.execute("select name from sqlite_master")}
            if not _TABLES.issubset(tables):
                return False
            stamps = db.execute("select count(*) from alembic_version").fetchone()[0]
            own = sum(db.execute(f"select count(*) from {t}").fetchone()[0] for t in _OWN_ROWS)
    except sqlite3.Error:
        return False
    return stamps == 1 and own == 0


def seed(path: Path) -> bool:
    """Start the new store ``path`` as a copy of the cached empty one; False if there is none
    (or it is not one: it is then dropped)."""
    schema = cached_schema()
    if not schema.is_file():
        return False
    if not _looks_whole(schema):
        forget()
        return False
    try:
        shutil.copyfile(schema, path)
    except OSError:
        path.unlink(missing_ok=True)
        return False
    return True


def keep(path: Path) -> None:
    """Leave an empty copy of the just-built store ``path`` in the cache (best effort: a cache
    that cannot be written only means the next new store is built the slow way)."""
    schema = cached_schema()
    with contextlib.suppress(OSError, sqlite3.Error):
        schema.parent.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(dir=schema.parent, suffix=".db")
        os.close(handle)
        try:
            shutil.copyfile(path, staging)
            with contextlib.closing(sqlite3.connect(staging)) as db, db:
                for table in _OWN_ROWS:
                    db.execute(f"DELETE FROM {table}")
            os.replace(staging, schema)  # whole or not at all, whoever else writes it meanwhile
        finally:
            Path(staging).unlink(missing_ok=True)


def forget() -> None:
    """Drop the cached schema (one MLflow refused, or not a schema)."""
    with contextlib.suppress(OSError):
        cached_schema().unlink(missing_ok=True)
