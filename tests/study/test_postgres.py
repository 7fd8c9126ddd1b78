"""MLflow on PostgreSQL: `study server --backend-store-uri postgresql://…` on a real PostgreSQL
(Debian's `postgresql` package, its own data directory, stopped at the end) keeps a sweep's run
and every trial run with its params, each epoch once, FINISHED; read back over HTTP and from
PostgreSQL's own tables. Without the driver, `study server` exits 2 naming the extra."""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import make_url

import study.server
from analysis.schema import KIND_TAG
from study.cli import main
from study.server import POSTGRES_EXTRA, server_command
from tests.support import write_spec

EPOCHS = 2
LRS = [0.05, 0.02]
USER, DATABASE = "regstudy", "mlflow"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _postgres_bin() -> Path | None:
    """The folder of initdb/pg_ctl: on PATH, else the newest under /usr/lib/postgresql."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    installed = [Path(path).parent for path in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    installed.sort(
        key=lambda bin_dir: int(bin_dir.parent.name) if bin_dir.parent.name.isdigit() else 0
    )
    return installed[-1] if installed else None


def _as_owner() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its tools as the `postgres` user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no `postgres` user to run PostgreSQL as")
    return ["runuser", "-u", "postgres", "--"]


def _connect(port: int, dbname: str):
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=port, user=USER, dbname=dbname)
    conn.autocommit = True
    return conn


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"


@pytest.fixture
def postgres() -> Iterator[SimpleNamespace]:
    """A PostgreSQL server of its own on 127.0.0.1 (and a Unix socket in its folder), trusting
    local connections, with an empty database; stopped and removed at the end."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no initdb): apt-get install postgresql")
    owner = _as_owner()
    # not under tmp_path: pytest makes it private to this user, and the server may run as another
    home = Path(tempfile.mkdtemp(prefix="regstudy-pg-"))
    if owner:
        shutil.chown(home, "postgres", "postgres")
    data, log, port = home / "data", home / "postgres.log", _free_port()
    options = f"-h 127.0.0.1 -p {port} -k {home} -c fsync=off -c full_page_writes=off"
    try:
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust"]
        _run([*owner, *initdb, "-E", "UTF8", "--locale=C", "--no-sync"])
        start = [str(bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(data)]
        _run([*owner, *start, "-l", str(log), "-o", options])
        with closing(_connect(port, "postgres")) as conn:
            conn.cursor().execute(f"create database {DATABASE}")
        yield SimpleNamespace(port=port, uri=f"postgresql://{USER}@127.0.0.1:{port}/{DATABASE}")
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*owner, str(bin_dir / "pg_ctl"), "stop", "-m", "immediate", "-D", str(data)],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def mlflow_on_postgres(postgres, tmp_path) -> Iterator[str]:
    """``study server`` (one worker, no GenAI job runner) on the PostgreSQL store, artifacts in
    tmp_path; its URL."""
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "study", "server", "--backend-store-uri", postgres.uri),
            *("--artifacts-destination", str(tmp_path / "artifacts"), "--port", str(port)),
            *("--workers", "1"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # 7 fewer processes
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "mlflow server did not answer in 120 s"
                time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _query(postgres: SimpleNamespace, sql: str, *args) -> list[tuple]:
    with closing(_connect(postgres.port, DATABASE)) as conn, conn.cursor() as cursor:
        cursor.execute(sql, args)
        return cursor.fetchall()


@pytest.mark.usefixtures("ray_session")
def test_a_sweep_logged_through_a_server_on_postgresql_is_whole_in_its_tables(
    postgres, mlflow_on_postgres, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # the Optuna record of an HTTP store goes to ./optuna.db
    name = "on_postgres"
    spec = write_spec(
        tmp_path,
        name=name,
        grid={"lr": LRS},
        budget={"epochs": EPOCHS},
        train={"dataset": "digits", "model": "pgrid_cnn", "batch_size": 64, "train_subset": 256},
    )
    argv = ["sweep", str(spec), "--tracking-uri", mlflow_on_postgres, "--no-best", "--quiet"]
    assert main([*argv, "--storage-path", str(tmp_path / "ray_results")]) == 0

    client = MlflowClient(mlflow_on_postgres)
    exp = client.get_experiment_by_name(name).experiment_id
    (sweep,) = client.search_runs([exp], filter_string=f"tags.`{KIND_TAG}` = 'sweep'")
    trials = client.search_runs([exp], filter_string=f"tags.`{KIND_TAG}` = 'trial'")
    assert sweep.info.status == "FINISHED" and sweep.data.metrics["trials"] == len(LRS)
    assert "spec.yaml" in {a.path for a in client.list_artifacts(sweep.info.run_id)}
    assert list((tmp_path / "artifacts").rglob("spec.yaml")), "artifacts left the destination"
    assert sorted(float(t.data.params["lr"]) for t in trials) == sorted(LRS)
    for run in trials:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == sweep.info.run_id
        for key in ("epoch", "val_error", "train_loss"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert sorted(steps) == list(range(1, EPOCHS + 1)), (key, steps)
    history_points = sum(
        len(client.get_metric_history(run.info.run_id, key))
        for run in [sweep, *trials]
        for key in run.data.metrics
    )

    stored = _query(
        postgres,
        "select r.run_uuid, r.status from runs r join experiments e using (experiment_id)"
        " where e.name = %s",
        name,
    )
    ids = {run.info.run_id for run in [sweep, *trials]}
    assert sorted(stored) == sorted((run_id, "FINISHED") for run_id in ids)
    for run in [sweep, *trials]:
        params = _query(
            postgres, "select key, value from params where run_uuid = %s", run.info.run_id
        )
        assert dict(params) == run.data.params
    for run in trials:
        epochs = _query(
            postgres,
            "select step from metrics where run_uuid = %s and key = 'epoch' order by step",
            run.info.run_id,
        )
        assert [step for (step,) in epochs] == list(range(1, EPOCHS + 1))
    ((rows,),) = _query(
        postgres, "select count(*) from metrics where run_uuid = any(%s)", list(ids)
    )
    assert rows == history_points
    ((twice,),) = _query(
        postgres,
        "select count(*) from (select 1 from metrics where run_uuid = any(%s)"
        " group by run_uuid, key, step having count(*) > 1) as repeated",
        list(ids),
    )
    assert twice == 0


def test_a_postgres_uri_reaches_mlflow_with_a_driver_installed_here():
    """``postgresql://`` is SQLAlchemy's default driver (psycopg 3 from SQLAlchemy 2.1) where that
    is installed, else psycopg2 from ``regstudy[postgres]``; host, user and database as given."""
    uri = "postgresql://team@db.internal:5432/mlflow"
    command = server_command(uri, "s3://bucket/mlflow", "0.0.0.0", 5000)
    given = make_url(command[5])
    given.get_dialect().import_dbapi()
    assert given.set(drivername="postgresql") == make_url(uri)
    assert command[6:8] == ["--artifacts-destination", "s3://bucket/mlflow"]
    named = "postgresql+psycopg2://team@db.internal:5432/mlflow"
    assert server_command(named, "artifacts", "127.0.0.1", 5000)[5] == named


@pytest.mark.parametrize("scheme", ["postgresql", "postgresql+psycopg2"])
def test_server_on_postgres_without_a_driver_exits_2_naming_the_extra(scheme, monkeypatch, capsys):
    def execv(*args):
        raise AssertionError("mlflow was started without a PostgreSQL driver")

    for module in ("psycopg", "psycopg2"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it now fails
    monkeypatch.setattr(study.server.os, "execv", execv)
    uri = f"{scheme}://team:secret@db.internal:5432/mlflow"
    assert main(["server", "--backend-store-uri", uri]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("error: --backend-store-uri ") and line.endswith(POSTGRES_EXTRA)
    assert "secret" not in line and captured.out == ""
