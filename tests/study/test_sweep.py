"""End-to-end sweeps on real Ray and a real MLflow store, with small budgets."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray
from mlflow.tracking import MlflowClient

from analysis.schema import CONFIG_TAG, FAILURE_TAG, KIND_TAG, PARENT_TAG, SEED_TAG
from study.cli import main
from tests.support import TRAIN, locations, runs, write_spec

pytestmark = pytest.mark.usefixtures("ray_session")


def test_mlflow_holds_one_parent_and_one_run_per_trial(grid_sweep):
    client, parents = runs(grid_sweep, "grid", "sweep")
    _, trials = runs(grid_sweep, "grid", "trial")
    assert len(parents) == 1 and len(trials) == 8
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.params["spec.budget.repeats"] == "2"
    assert {"mlflow.source.git.commit", "host", "version.torch"} <= set(parent.data.tags)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"spec.yaml", "search_space.json"} <= artifacts
    assert all(t.data.tags[PARENT_TAG] == parent.info.run_id for t in trials)
    keys = {
        (t.data.params["activation"], t.data.params["lr"], t.data.tags[SEED_TAG]) for t in trials
    }
    assert len(keys) == 8


def test_finished_trials_have_params_and_per_epoch_metrics(grid_sweep):
    client, trials = runs(grid_sweep, "grid", "trial")
    finished = [t for t in trials if t.data.params["lr"] == "0.05"]
    assert len(finished) == 4 and all(t.info.status == "FINISHED" for t in finished)
    for run in finished:
        history = client.get_metric_history(run.info.run_id, "val_error")
        assert sorted(m.step for m in history) == [1, 2]
        metrics = run.data.metrics
        assert {"best_val_error", "final_val_error", "test_error_at_best", "hp.lr"} <= set(metrics)
        assert metrics["epochs_completed"] == 2
        assert run.data.params["seed"] == run.data.tags[SEED_TAG]
    assert len({t.data.tags[CONFIG_TAG] for t in finished}) == 2


def test_summary_metrics_are_logged_per_epoch_and_not_again_when_the_trial_ends(grid_sweep):
    client, trials = runs(grid_sweep, "grid", "trial")
    finished = [t for t in trials if t.info.status == "FINISHED"]
    assert finished
    for run in finished:
        history = client.get_metric_history(run.info.run_id, "best_val_error")
        assert [m.step for m in history] == [1, 2]


def test_a_trial_run_is_named_by_what_the_sweep_chose_for_it(grid_sweep):
    _, trials = runs(grid_sweep, "grid", "trial")
    names = sorted(t.info.run_name for t in trials)
    assert names[0] == "activation=drop_activation lr=0.05 seed=0", names
    assert len(set(names)) == len(trials) == 8


def test_the_sweep_run_carries_its_best_config_and_the_table(grid_sweep):
    client, (parent,) = runs(grid_sweep, "grid", "sweep")
    metrics, tags = parent.data.metrics, parent.data.tags
    assert {"best.val_error", "best.val_error.ci_low", "best.val_error.ci_high"} <= set(metrics)
    assert metrics["best.n"] == 2
    assert tags["regstudy.best_config"].startswith("activation=")
    assert "lr=0.05" in tags["regstudy.best_config"]
    table = client.download_artifacts(parent.info.run_id, "best/best.csv")
    rows = Path(table).read_text().splitlines()
    assert rows[0].startswith("config_id,") and len(rows) == 1 + 4


def test_a_diverging_trial_fails_with_its_reason_and_the_others_finish(grid_sweep):
    _, trials = runs(grid_sweep, "grid", "trial")
    diverged = [t for t in trials if t.data.params["lr"] == "1000000000000.0"]
    assert len(diverged) == 4
    for run in diverged:
        assert run.info.status == "FAILED"
        assert "training loss became" in run.data.tags[FAILURE_TAG]


def test_best_reads_mlflow_and_counts_failures(grid_sweep, capsys):
    uri = f"sqlite:///{grid_sweep / 'mlruns.db'}"
    assert main(["best", "--experiment", "grid", "--tracking-uri", uri, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4
    assert {r["activation"] for r in rows[:2]} == {"relu", "drop_activation"}
    assert all(r["n"] == 2 and r["failed"] == 0 for r in rows[:2])
    assert all(r["failed"] == 2 and r["n"] == 0 for r in rows[2:])
    assert main(["best", "--experiment", "grid", "--tracking-uri", uri, "--top", "1"]) == 0
    table = capsys.readouterr().out
    assert "val_error (95% CI)" in table and " [0." in table
    assert main(["best", "--experiment", "nope", "--tracking-uri", uri]) == 1
    assert "no MLflow experiment 'nope'" in capsys.readouterr().err


def test_a_sweep_name_in_use_needs_resume_or_overwrite(grid_sweep, capsys):
    spec = grid_sweep / "grid.yaml"
    assert main(["sweep", str(spec), *locations(grid_sweep)]) == 2
    assert "study resume grid" in capsys.readouterr().err


def test_optuna_sweep_runs_each_sampled_config_with_every_seed(tmp_path):
    spec = write_spec(
        tmp_path,
        name="tpe",
        space="drop_activation",
        budget={"epochs": 1, "repeats": 2, "num_samples": 2},
    )
    assert main(["sweep", str(spec), *locations(tmp_path), "--no-best"]) == 0
    assert ray.is_initialized(), "a sweep must leave a Ray session it did not start open"
    _, trials = runs(tmp_path, "tpe", "trial")
    assert len(trials) == 4
    by_config: dict[str, set[str]] = {}
    for run in trials:
        assert run.info.status == "FINISHED"
        assert 0.6 <= float(run.data.params["da_p"]) <= 1.0
        by_config.setdefault(run.data.tags[CONFIG_TAG], set()).add(run.data.tags[SEED_TAG])
    assert list(by_config.values()) == [{"0", "1"}, {"0", "1"}]


def _finished_trials(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            rows = conn.execute(
                "select count(*) from runs r join tags t on r.run_uuid = t.run_uuid "
                f"where t.key = '{KIND_TAG}' and t.value = 'trial' and r.status = 'FINISHED'"
            ).fetchone()
        return rows[0]
    except sqlite3.OperationalError:
        return 0


def test_a_killed_driver_resumes_with_every_trial_once(tmp_path):
    spec = write_spec(
        tmp_path,
        name="killed",
        grid={"da_p": [0.7, 0.8, 0.9, 1.0]},
        train={**TRAIN, "activation": "drop_activation"},
        budget={"epochs": 6, "repeats": 1},
        checkpoint_every=1,
    )
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    command = [sys.executable, "-m", "study", "sweep", str(spec), *locations(tmp_path)]
    driver = subprocess.Popen(command, env=env, start_new_session=True, cwd=tmp_path)
    deadline = time.time() + 300
    while _finished_trials(tmp_path / "mlruns.db") < 1 and time.time() < deadline:
        assert driver.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert _finished_trials(tmp_path / "mlruns.db") < 4

    resume = ["resume", "killed", "--storage-path", str(tmp_path / "ray_results"), "--quiet"]
    assert (
        subprocess.run([sys.executable, "-m", "study", *resume], env=env, cwd=tmp_path).returncode
        == 0
    )

    client, trials = runs(tmp_path, "killed", "trial")
    _, parents = runs(tmp_path, "killed", "sweep")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(trials) == 4
    assert sorted(t.data.params["da_p"] for t in trials) == ["0.7", "0.8", "0.9", "1.0"]
    for run in trials:
        assert run.info.status == "FINISHED"
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_error")]
        assert sorted(steps) == [1, 2, 3, 4, 5, 6]


def _logged_epochs(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            query = "select count(*) from metrics where key = 'val_error' and step > 0"
            return conn.execute(query).fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_sigterm_to_the_sweep_command_ends_its_runs_killed_and_says_how_to_continue(tmp_path):
    """The `study sweep` process's own SIGTERM handler, not Ray's: ``ray.init`` in the main thread
    installs ``sys.exit`` for SIGTERM, which once ended a signalled sweep's run FAILED with
    "SystemExit" and no word on how to continue."""
    spec = write_spec(
        tmp_path,
        name="termed",
        grid={"da_p": [1.0]},
        train={**TRAIN, "activation": "drop_activation"},
        budget={"epochs": 200, "repeats": 1},
    )
    command = [sys.executable, "-m", "study", "sweep", str(spec), *locations(tmp_path)]
    driver = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while _logged_epochs(tmp_path / "mlruns.db") < 1 and time.time() < deadline:
        assert driver.poll() is None, "the sweep ended before it could be signalled"
        time.sleep(0.5)
    driver.send_signal(signal.SIGTERM)
    _, stderr = driver.communicate(timeout=120)

    assert driver.returncode == 128 + signal.SIGTERM
    assert "interrupted by SIGTERM" in stderr and "`study resume termed`" in stderr
    _, trials = runs(tmp_path, "termed", "trial")
    _, parents = runs(tmp_path, "termed", "sweep")
    for run in [*parents, *trials]:
        assert run.info.status == "KILLED"
        assert run.data.tags[FAILURE_TAG].startswith("interrupted by SIGTERM")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_sweep_logs_to_a_real_mlflow_server_over_http(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the Optuna record of an HTTP store goes to ./optuna.db
    import urllib.request

    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "study",
            "server",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
        ],
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "server did not start"
                time.sleep(1)
        spec = write_spec(tmp_path, name="served", budget={"epochs": 1, "repeats": 2})
        command = ["sweep", str(spec), "--tracking-uri", url, "--no-best", "--quiet"]
        assert main([*command, "--storage-path", str(tmp_path / "ray_results")]) == 0
        client = MlflowClient(url)
        exp = client.get_experiment_by_name("served")
        trials = client.search_runs([exp.experiment_id], f"tags.`{KIND_TAG}` = 'trial'")
        assert len(trials) == 2 and all(t.info.status == "FINISHED" for t in trials)
        parent = client.search_runs([exp.experiment_id], f"tags.`{KIND_TAG}` = 'sweep'")[0]
        assert "spec.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
        assert (tmp_path / "server.db").exists()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


class _Results(list):
    """What `_finish` reads of Ray's ResultGrid."""

    def __init__(self, terminated: int, errors: int, other: int) -> None:
        super().__init__(range(terminated + errors + other))
        self.num_terminated, self.num_errors = terminated, errors


@pytest.mark.parametrize(
    ("terminated", "errors", "other", "status"),
    [(2, 0, 0, "FINISHED"), (1, 1, 0, "FAILED"), (1, 0, 1, "KILLED"), (1, 0, 0, "KILLED")],
)
def test_a_sweep_run_is_finished_only_when_every_trial_ended_cleanly(
    tmp_path, terminated, errors, other, status
):
    """An interrupted sweep (trials not ended, or not all created) must not read as finished,
    or `study reproduce` would reuse it; crashed trials leave it FAILED, so it is resumed."""
    from study.runner import _finish
    from study.spec import build_spec

    spec = build_spec({"name": "s", "train": dict(TRAIN), "budget": {"repeats": 2}})
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns.db'}")
    exp = client.create_experiment("s")
    run = client.create_run(exp)
    _finish(spec, client, exp, run.info.run_id, _Results(terminated, errors, other), expected=2)
    assert client.get_run(run.info.run_id).info.status == status


class _ErroredTrial:
    def __init__(self, error_file: str | None, error: str | None = None) -> None:
        self.error_file, self._error = error_file, error

    def get_pickled_error(self):
        return None

    def get_error(self):
        return self._error


def test_a_crashed_trials_reason_is_the_last_line_of_its_error(tmp_path):
    from study.tracking import _error_text

    error_file = tmp_path / "error.txt"
    error_file.write_text("Traceback (most recent call last):\n  ...\nValueError: bad config\n\n")
    assert _error_text(_ErroredTrial(str(error_file))) == "ValueError: bad config"
    missing = str(tmp_path / "absent.txt")
    assert _error_text(_ErroredTrial(missing, "RuntimeError: lost\n")) == "RuntimeError: lost"
    assert _error_text(_ErroredTrial(None)) == "trial errored (no error recorded)"
