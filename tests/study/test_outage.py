"""A tracking store that is down: the sweep trains on, the driver ends within seconds with one
line naming `study sync`, and `study sync` then writes every trial and epoch exactly once.

The trial logger's backlog is tested on its own (a store that fails, then answers); a sweep on a
SQLite store whose client fails from the moment its trials start is the fast end-to-end case;
the slow one kills a real `mlflow server` at the first trial start and restarts it for the sync.
"""

import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from contextlib import redirect_stderr
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import study.runner
import study.tracking.trials as trials_module
from analysis.schema import FAILURE_TAG, KIND_TAG
from study.cli import main
from study.server import server_command
from study.tracking import MlflowTrialLogger, open_client
from tests.support import locations, write_spec

EPOCHS = 2
LRS = [0.05, 0.02]
ROWS = "select count(*) from metrics"
DOWN = "(sqlite3.OperationalError) unable to open database file"
WRITES = ("search_runs", "create_run", "log_batch", "get_run", "get_metric_history")
WRITES += ("update_run", "set_terminated", "set_tag", "delete_tag")


def _metric_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(ROWS).fetchone()[0]


class _Flaky:
    """A client that raises like a store that does not answer while ``down``."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client
        self.down = False
        self.calls = 0

    def __getattr__(self, name: str):
        method = getattr(self.client, name)

        def call(*args, **kwargs):
            self.calls += 1
            if self.down:
                raise MlflowException(DOWN)
            return method(*args, **kwargs)

        return call


class _Clock:
    """``time`` for the logger, its monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()


def _trial(trial_id: str) -> SimpleNamespace:
    config = {"dataset": "digits", "model": "pgrid_cnn", "seed": 1, "lr": 0.05}
    return SimpleNamespace(trial_id=trial_id, config=config, last_result=None, storage=None)


def _report(epoch: int) -> dict:
    return {"epoch": epoch, "val_error": 0.5 / epoch, "train_loss": 1.0 / epoch, "config": {}}


def test_a_logger_keeps_what_it_could_not_write_and_writes_it_once_in_order(
    tmp_path, monkeypatch, capsys
):
    db = tmp_path / "mlruns.db"
    client = open_client(f"sqlite:///{db}")
    exp = client.create_experiment("backlog")
    parent = client.create_run(exp, tags={KIND_TAG: "sweep"}).info.run_id
    logger = MlflowTrialLogger(f"sqlite:///{db}", exp, parent, epochs=3)
    flaky = _Flaky(client)
    logger._client = flaky
    clock = _Clock()
    monkeypatch.setattr(trials_module, "time", clock)
    trial = _trial("t1")

    logger.on_trial_start(0, [], trial)
    logger.on_trial_result(0, [], trial, _report(1))
    flaky.down = True
    logger.on_trial_result(0, [], trial, _report(2))
    calls = flaky.calls
    logger.on_trial_result(0, [], trial, _report(3))
    trial.last_result = _report(3) | {"best_val_error": 0.1}
    logger.on_trial_complete(0, [], trial)
    assert flaky.calls == calls, "tried again before the retry interval"
    assert logger.pending == 3

    clock.now += logger.RETRY_S + 1
    logger.on_experiment_end([])  # still down: kept
    assert logger.pending == 3
    flaky.down = False
    logger.on_experiment_end([])
    assert logger.pending == 0

    (run,) = client.search_runs([exp], filter_string="tags.`regstudy.kind` = 'trial'")
    history = client.get_metric_history(run.info.run_id, "epoch")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert len(client.get_metric_history(run.info.run_id, "best_val_error")) == 1
    assert client.get_run(run.info.run_id).info.status == "FINISHED"
    err = capsys.readouterr().err.splitlines()
    (down,) = [line for line in err if "unreachable" in line]
    assert down.startswith("[tracking] MLflow at sqlite:///") and "`study sync" in down
    assert [line for line in err if "answers again: 3 kept writes done" in line]


def test_an_ending_replayed_after_a_half_written_one_logs_nothing_twice(tmp_path, monkeypatch):
    """The store took the summary metrics but not the run's end: the replay ends it, and
    does not log the summary again."""
    db = tmp_path / "mlruns.db"
    client = open_client(f"sqlite:///{db}")
    exp = client.create_experiment("half")
    parent = client.create_run(exp).info.run_id
    logger = MlflowTrialLogger(f"sqlite:///{db}", exp, parent, epochs=1)
    monkeypatch.setattr(trials_module, "time", _Clock())
    logger.RETRY_S = 0.0
    trial = _trial("t2")
    logger.on_trial_result(0, [], trial, _report(1))
    real = client.set_terminated
    failing = iter([True])

    def set_terminated(run_id, status=None):
        if next(failing, False):
            raise MlflowException(DOWN)
        real(run_id, status=status)

    monkeypatch.setattr(client, "set_terminated", set_terminated)
    logger._client = client
    trial.last_result = _report(1) | {"best_val_error": 0.5}
    logger.on_trial_complete(0, [], trial)
    assert logger.pending == 1
    before = _metric_rows(db)
    logger.on_experiment_end([])
    assert logger.pending == 0 and _metric_rows(db) == before
    (run,) = client.search_runs([exp], filter_string="tags.`regstudy.trial_id` = 't2'")
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "epoch")) == 1


def _spec(directory: Path, name: str) -> Path:
    return write_spec(
        directory,
        name=name,
        grid={"lr": LRS},
        budget={"epochs": EPOCHS, "max_concurrent": 2},
        train={"dataset": "digits", "model": "pgrid_cnn", "batch_size": 64, "train_subset": 256},
    )


def _sweep(argv: list[str]) -> SimpleNamespace:
    """Run ``study sweep`` in-process; its exit code, stderr and wall time."""
    err = io.StringIO()
    start = time.monotonic()
    with redirect_stderr(err), pytest.raises(SystemExit) as ended:
        main(argv)
    return SimpleNamespace(
        code=ended.value.code, err=err.getvalue(), seconds=time.monotonic() - start
    )


def _ray_epochs(storage: Path, name: str) -> list[list[int]]:
    """Each trial's epochs, from Ray's own results on disk."""
    results = sorted((storage / name).glob("*/result.json"))
    return [[json.loads(line)["epoch"] for line in r.read_text().splitlines()] for r in results]


def _sync(name: str, storage: Path, capsys) -> str:
    assert main(["sync", name, "--storage-path", str(storage)]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    return line


def _check_synced(client: MlflowClient, name: str) -> None:
    """One run per trial with every epoch once, FINISHED; the sweep run FINISHED."""
    exp = client.get_experiment_by_name(name).experiment_id
    trials = client.search_runs([exp], filter_string=f"tags.`{KIND_TAG}` = 'trial'")
    assert sorted(float(t.data.params["lr"]) for t in trials) == sorted(LRS)
    for run in trials:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "epoch")]
        assert sorted(steps) == list(range(1, EPOCHS + 1))
        assert run.info.status == "FINISHED" and run.data.metrics["epochs_completed"] == EPOCHS
    (sweep,) = client.search_runs([exp], filter_string=f"tags.`{KIND_TAG}` = 'sweep'")
    assert sweep.info.status == "FINISHED" and FAILURE_TAG not in sweep.data.tags
    assert sweep.data.metrics["trials"] == len(LRS)


def _failed_naming_sync(ended: SimpleNamespace, name: str) -> None:
    assert ended.code == 1, ended.err
    errors = [line for line in ended.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in ended.err, ended.err
    assert errors[0].startswith(f"error: sweep {name} failed: ")
    assert f"`study sync {name} --storage-path " in errors[0]
    warned = [line for line in ended.err.splitlines() if line.startswith("[tracking] MLflow")]
    assert len(warned) == 1 and "unreachable" in warned[0], ended.err


@pytest.mark.usefixtures("ray_session")
def test_a_sweep_whose_store_fails_once_trials_start_trains_and_sync_fills_mlflow(tmp_path, capsys):
    name = "outage_fast"
    db, storage = tmp_path / "mlruns.db", tmp_path / "ray_results"
    made = study.runner._new_tuner

    with pytest.MonkeyPatch.context() as patch:

        def new_tuner(*args):
            tuner = made(*args)
            for method in WRITES:
                patch.setattr(MlflowClient, method, _refuse)
            return tuner

        patch.setattr(study.runner, "_new_tuner", new_tuner)
        ended = _sweep(["sweep", str(_spec(tmp_path, name)), *locations(tmp_path), "--no-best"])

    _failed_naming_sync(ended, name)
    assert _ray_epochs(storage, name) == [list(range(1, EPOCHS + 1))] * len(LRS)
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name(name).experiment_id
    assert client.search_runs([exp], filter_string=f"tags.`{KIND_TAG}` = 'trial'") == []

    capsys.readouterr()
    first = _sync(name, storage, capsys)
    assert first.startswith(f"sync {name}: 2 trials; 2 runs created, 4 epochs written, 2 runs")
    _check_synced(client, name)
    rows = _metric_rows(db)
    second = _sync(name, storage, capsys)
    assert "0 runs created, 0 epochs written, 0 runs ended" in second
    assert _metric_rows(db) == rows


def _refuse(*args, **kwargs):
    raise MlflowException(DOWN)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Server:
    """A real ``mlflow server`` (one worker) on 127.0.0.1, on a SQLite backend."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 240) -> None:
        backend = f"sqlite:///{self.directory / 'mlruns.db'}"
        command = server_command(backend, str(self.directory / "artifacts"), "127.0.0.1", self.port)
        log = (self.directory / "server.log").open("a")
        self.process = subprocess.Popen(
            [*command, "--workers", "1"], stdout=log, stderr=log, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.directory / "server.log").read_text()
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2):
                    return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"mlflow server at {self.uri} did not answer in {timeout} s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_sweep_whose_server_is_down_throughout_training_is_synced_once_it_is_back(
    tmp_path, capsys
):
    name = "outage"
    server = _Server(tmp_path)
    storage = tmp_path / "ray_results"
    start = MlflowTrialLogger.on_trial_start
    try:
        server.start()

        def kill_then_start(self, *args, **kwargs):
            server.kill()  # the sweep's run exists; no trial has reported yet
            return start(self, *args, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(MlflowTrialLogger, "on_trial_start", kill_then_start)
            argv = ["sweep", str(_spec(tmp_path, name)), *locations(tmp_path), "--no-best"]
            argv[argv.index("--tracking-uri") + 1] = server.uri
            ended = _sweep(argv)

        _failed_naming_sync(ended, name)
        assert ended.seconds < 150, f"the driver took {ended.seconds:.0f} s"
        assert _ray_epochs(storage, name) == [list(range(1, EPOCHS + 1))] * len(LRS)

        server.start()
        capsys.readouterr()
        first = _sync(name, storage, capsys)
        assert f"sync {name}: 2 trials; 2 runs created, 4 epochs written, 2 runs ended" in first
        _check_synced(MlflowClient(server.uri), name)
        rows = _metric_rows(tmp_path / "mlruns.db")
        second = _sync(name, storage, capsys)
        assert "0 runs created, 0 epochs written, 0 runs ended" in second
        assert _metric_rows(tmp_path / "mlruns.db") == rows
    finally:
        server.kill()
