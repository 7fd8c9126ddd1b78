"""A new SQLite tracking store starts as a copy of the cached empty schema
(:mod:`study.tracking.schema_cache`) and is then the store MLflow would have built."""

import sqlite3
from pathlib import Path

import pytest

from study.tracking import open_client, schema_cache


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _schema(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute("select type, name, sql from sqlite_master").fetchall())


def _rows(db: Path, table: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"select * from {table}").fetchall()


def test_the_first_new_store_is_built_by_mlflow_and_cached_without_its_own_rows(tmp_path):
    built = tmp_path / "built.db"
    open_client(f"sqlite:///{built}")
    cached = schema_cache.cached_schema()
    assert cached.is_file()
    assert _schema(cached) == _schema(built)
    assert _rows(cached, "experiments") == [] and len(_rows(built, "experiments")) == 1
    assert _rows(cached, "alembic_version") == _rows(built, "alembic_version")


def test_a_store_from_the_cache_is_the_store_mlflow_builds(tmp_path):
    built, copied = tmp_path / "built.db", tmp_path / "copied.db"
    open_client(f"sqlite:///{built}")
    assert schema_cache.seed(tmp_path / "probe.db")
    client = open_client(f"sqlite:///{copied}")

    assert _schema(copied) == _schema(built)
    assert _rows(copied, "alembic_version") == _rows(built, "alembic_version")
    default = client.get_experiment("0")
    assert default.name == "Default"
    assert (
        default.artifact_location
        == open_client(f"sqlite:///{built}").get_experiment("0").artifact_location
    )
    experiment = client.create_experiment("works")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "val_error", 0.5, step=1)
    assert client.get_metric_history(run.info.run_id, "val_error")[0].value == 0.5


def test_a_cached_file_that_is_not_a_schema_is_dropped_and_the_store_built(tmp_path):
    cached = schema_cache.cached_schema()
    cached.parent.mkdir(parents=True)
    with sqlite3.connect(cached) as conn:
        conn.execute("create table experiments (x)")  # not MLflow's schema
    client = open_client(f"sqlite:///{tmp_path / 'store.db'}")
    assert client.get_experiment("0").name == "Default"
    assert _schema(cached) == _schema(tmp_path / "store.db")


def test_a_cached_schema_mlflow_refuses_is_dropped_and_the_store_built(tmp_path):
    """A whole-looking schema at another migration (an MLflow that changed under one version
    number): MLflow refuses the copy, and the store is built anew."""
    open_client(f"sqlite:///{tmp_path / 'first.db'}")
    cached = schema_cache.cached_schema()
    with sqlite3.connect(cached) as conn:
        conn.execute("update alembic_version set version_num = 'not-a-revision'")
    client = open_client(f"sqlite:///{tmp_path / 'store.db'}")
    assert client.get_experiment("0").name == "Default"
    assert _rows(tmp_path / "store.db", "alembic_version") == _rows(
        tmp_path / "first.db", "alembic_version"
    )
    assert _rows(cached, "alembic_version") == _rows(tmp_path / "first.db", "alembic_version")


def test_a_cache_that_cannot_be_written_only_costs_time(tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    client = open_client(f"sqlite:///{tmp_path / 'store.db'}")
    assert client.get_experiment("0").name == "Default"
    assert not schema_cache.cached_schema().exists()
