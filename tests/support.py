"""Helpers for end-to-end tests: write a spec, point a sweep at a temp store, read runs."""

import sqlite3
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from analysis.schema import KIND_TAG
from study.cli import main

TRAIN = {"dataset": "digits", "model": "pgrid_cnn", "batch_size": 64, "lr": 0.05}


def write_spec(directory: Path, **values) -> Path:
    spec = {"train": dict(TRAIN), "resources": {"cpus_per_trial": 1}, **values}
    spec["budget"] = {"max_concurrent": 2, **values.get("budget", {})}
    path = directory / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def locations(directory: Path) -> list[str]:
    return [
        "--tracking-uri",
        f"sqlite:///{directory / 'mlruns.db'}",
        "--storage-path",
        str(directory / "ray_results"),
        "--quiet",
    ]


def runs(directory: Path, experiment: str, kind: str):
    client = MlflowClient(f"sqlite:///{directory / 'mlruns.db'}")
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`{KIND_TAG}` = '{kind}'", max_results=1000
    )


def run_grid_sweep(directory: Path) -> Path:
    """A grid sweep with a diverging learning rate: 2 activations x 2 lrs x 2 seeds, 2 epochs."""
    spec = write_spec(
        directory,
        name="grid",
        grid={"activation": ["relu", "drop_activation"], "lr": [0.05, 1.0e12]},
        budget={"epochs": 2, "repeats": 2},
    )
    assert main(["sweep", str(spec), *locations(directory)]) == 0
    return directory


def store_count(db: Path, sql: str) -> int:
    """A ``select count(*)`` on a sweep's SQLite store while it runs: 0 until the store and its
    tables exist (for tests that act once a sweep has reached a point). A store the sweep has
    locked reads as 0 at once (no 5 s wait), so a poll keeps its pace."""
    try:
        with sqlite3.connect(db, timeout=0.05) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.Error:
        return 0
