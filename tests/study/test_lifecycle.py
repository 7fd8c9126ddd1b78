"""The run lifecycle: whatever ends a driver, no MLflow run is left RUNNING, the command exits
non-zero with one line, and `study resume` (or `study reproduce`) finishes what it left.

Real Ray, a real SQLite MLflow store, real signals: the in-process sweep receives SIGTERM from a
watcher thread once its third trial trains; the `study reproduce` process gets Ctrl-C (SIGINT to
its process group) once a trial finished.
"""

import io
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import redirect_stderr
from pathlib import Path
from types import SimpleNamespace

import pytest

from analysis.schema import FAILURE_TAG, KIND_TAG, RECIPE_TAG
from study.cli import main
from study.spec import load_spec
from tests.support import locations, runs, write_spec

pytestmark = pytest.mark.usefixtures("ray_session")

# lr 0.05 trains, 1e12 diverges in its first epoch, 1e-5 barely moves (val_error ~0.9): run one
# at a time in this order, the best trial has ended before the third one is interrupted.
LRS = {"0.05": "trains", "1000000000000.0": "diverges", "1e-05": "interrupted"}
EPOCHS = 6

TRIALS = f"from runs r join tags k on r.run_uuid = k.run_uuid and k.key = '{KIND_TAG}'"
THIRD_TRIAL_TRAINING = (
    f"select (select count(*) {TRIALS} and k.value = 'trial') = 3 and exists (select 1 {TRIALS} "
    "and k.value = 'trial' join metrics m on m.run_uuid = r.run_uuid and m.key = 'epoch' "
    "where r.status = 'RUNNING')"
)
A_TRIAL_FINISHED = f"select count(*) {TRIALS} and k.value = 'trial' where r.status = 'FINISHED'"


def _query(db: Path, sql: str):
    if not db.exists():
        return None
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return None


def _when(db: Path, sql: str, act, timeout: float = 600) -> threading.Event:
    """Run ``act()`` from a thread once ``sql`` answers truthy on the store, unless the returned
    event is set first (the driver ended on its own: a signal then would hit the test run)."""
    cancelled = threading.Event()

    def watch() -> None:
        deadline = time.time() + timeout
        while not cancelled.is_set() and time.time() < deadline:
            if _query(db, sql):
                act()
                return
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()
    return cancelled


def _by_lr(directory: Path, experiment: str) -> dict[str, object]:
    _, trials = runs(directory, experiment, "trial")
    return {LRS[t.data.params["lr"]]: t for t in trials}


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """A sweep stopped by SIGTERM while its third trial trains, then `study resume`d."""
    directory = tmp_path_factory.mktemp("stopped")
    spec = write_spec(
        directory,
        name="stopped",
        grid={"lr": [float(lr) for lr in LRS]},
        budget={"epochs": EPOCHS, "max_concurrent": 1},
        checkpoint_every=1,
    )
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    env_before = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    watcher = _when(
        directory / "mlruns.db",
        THIRD_TRIAL_TRAINING,
        lambda: os.kill(os.getpid(), signal.SIGTERM),
    )
    first = io.StringIO()
    try:
        with redirect_stderr(first), pytest.raises(SystemExit) as ended:
            main(["sweep", str(spec), *locations(directory), "--no-best"])
    finally:
        watcher.set()
    client, (parent,) = runs(directory, "stopped", "sweep")
    result = SimpleNamespace(
        code=ended.value.code,
        first_err=first.getvalue(),
        parent_after_stop=parent,
        trials_after_stop=_by_lr(directory, "stopped"),
        handlers_after=(signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)),
        handlers_before=before,
        env_restored=os.environ.get("TUNE_DISABLE_SIGINT_HANDLER") == env_before,
    )
    second = io.StringIO()
    resume = ["resume", "stopped", "--storage-path", str(directory / "ray_results"), "--quiet"]
    with redirect_stderr(second):
        result.resume_code = main(resume)
    result.resume_err = second.getvalue()
    client, (result.parent,) = runs(directory, "stopped", "sweep")
    result.trials = _by_lr(directory, "stopped")
    result.client = client
    return result


@pytest.mark.slow
def test_sigterm_ends_the_sweep_run_and_its_unended_trial_run_killed_with_the_reason(stopped):
    assert stopped.code == 143
    parent = stopped.parent_after_stop
    assert parent.info.status == "KILLED"
    assert parent.data.tags[FAILURE_TAG].startswith("interrupted by SIGTERM: 2 of 3 trials ended")
    trials = stopped.trials_after_stop
    assert {name: t.info.status for name, t in trials.items()} == {
        "trains": "FINISHED",
        "diverges": "FAILED",
        "interrupted": "KILLED",
    }
    assert "SIGTERM" in trials["interrupted"].data.tags[FAILURE_TAG]


@pytest.mark.slow
def test_sigterm_exits_with_one_line_naming_the_command_that_continues(stopped):
    errors = [line for line in stopped.first_err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in stopped.first_err
    assert errors[0].startswith("error: sweep stopped interrupted by SIGTERM; sweep run ")
    assert errors[0].endswith("KILLED; continue with `study resume stopped`")


@pytest.mark.slow
def test_the_signal_handlers_are_the_old_ones_once_the_sweep_ended(stopped):
    assert stopped.handlers_after == stopped.handlers_before
    assert stopped.env_restored


@pytest.mark.slow
def test_a_diverged_trial_is_a_failed_run_and_its_sweep_finishes_counting_it_apart(stopped):
    assert stopped.resume_code == 0
    parent = stopped.parent
    assert parent.info.status == "FINISHED" and FAILURE_TAG not in parent.data.tags
    metrics = parent.data.metrics
    assert (metrics["trials"], metrics["trials_diverged"], metrics["trials_errored"]) == (3, 1, 0)
    diverged = stopped.trials["diverges"]
    assert diverged.info.status == "FAILED"
    assert "training loss became" in diverged.data.tags[FAILURE_TAG]
    assert "[sweep] 2/3 done (1 diverged, 0 errored, 0 running)" in stopped.first_err


@pytest.mark.slow
def test_a_resumed_trial_loses_its_failure_tag_and_logs_each_epoch_once(stopped):
    run = stopped.trials["interrupted"]
    assert run.info.status == "FINISHED" and FAILURE_TAG not in run.data.tags
    history = stopped.client.get_metric_history(run.info.run_id, "val_error")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
    assert all(t.info.status != "RUNNING" for t in stopped.trials.values())


@pytest.mark.slow
def test_the_progress_line_after_resume_counts_the_trials_that_ended_before(stopped):
    (line,) = [ln for ln in stopped.resume_err.splitlines() if ln.startswith("[sweep]")]
    assert line.startswith("[sweep] 3/3 done (1 diverged, 0 errored, 0 running) | best val_error")
    best = stopped.trials["trains"].data.metrics["final_val_error"]
    assert f"best val_error {best:.4f} (" in line


def test_a_record_that_cannot_be_written_ends_the_sweep_run_failed(tmp_path, capsys):
    """An OSError after the sweep's run exists (here its directory is a dangling link, which no
    check before the start can tell from an absent one) ends the run FAILED, with one line."""
    from study.runner import sweep

    storage = tmp_path / "ray_results"
    storage.mkdir()
    (storage / "unwritable").symlink_to(tmp_path / "nowhere" / "deeper")
    spec_path = write_spec(tmp_path, name="unwritable", budget={"epochs": 1})
    overrides = {
        "storage_path": str(storage),
        "tracking_uri": f"sqlite:///{tmp_path / 'mlruns.db'}",
    }
    with pytest.raises(SystemExit) as ended:
        sweep(load_spec(spec_path, overrides), verbose=0)
    assert ended.value.code == 1
    _, (parent,) = runs(tmp_path, "unwritable", "sweep")
    assert parent.info.status == "FAILED"
    assert parent.data.tags[FAILURE_TAG].startswith("FileExistsError: ")
    err = capsys.readouterr().err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: sweep unwritable failed: FileExistsError: ")
    assert line.endswith("FAILED; fix it, then start the sweep again")


RACE = """
import sys, time
from pathlib import Path
from study.spec import build_spec
from study.tracking import open_client, start_sweep_run
uri, barrier, me, n = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
spec = build_spec({"name": "race", "tracking_uri": uri, "train": {"dataset": "digits"}})
(barrier / me).touch()
while len(list(barrier.iterdir())) < n:
    time.sleep(0.0005)
start_sweep_run(open_client(uri), spec, {})
"""


@pytest.mark.slow
def test_drivers_starting_together_on_a_new_store_all_succeed(tmp_path):
    """MLflow creates a new SQLite store's schema on first use: unserialized, all but one of
    several drivers starting together die with `table ... already exists` or an alembic error."""
    uri, barrier, n = f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path / "ready", 4
    barrier.mkdir()
    drivers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, uri, str(barrier), str(i), str(n)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    errors = [d.communicate(timeout=300)[1] for d in drivers]
    assert [d.returncode for d in drivers] == [0] * n, "\n".join(errors)
    _, parents = runs(tmp_path, "race", "sweep")
    assert len(parents) == n


@pytest.mark.slow
def test_ctrl_c_ends_a_reproduce_and_its_sweep_killed_and_reproduce_continues(tmp_path, data_root):
    env = {
        **os.environ,
        "REGSTUDY_DATA_DIR": str(data_root),
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlruns.db'}",
    }
    sets = ["budget.epochs=1", "budget.repeats=2", "budget.max_concurrent=1"]
    sets += ["train.train_subset=256", "train.eval_subset=500"]
    command = [sys.executable, "-m", "study", "reproduce", "lrd_dg", "--quiet"]
    command += [arg for value in sets for arg in ("--set", value)]
    driver = subprocess.Popen(
        command, env=env, cwd=tmp_path, start_new_session=True, stderr=subprocess.PIPE, text=True
    )
    watcher = _when(
        tmp_path / "mlruns.db", A_TRIAL_FINISHED, lambda: os.killpg(driver.pid, signal.SIGINT)
    )
    try:
        err = driver.communicate(timeout=600)[1]
    finally:
        watcher.set()
    assert driver.returncode == 130, err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert line.startswith("error: reproduce lrd_dg quick interrupted by SIGINT; sweep run ")
    assert "KILLED; recipe run " in line and "Traceback" not in err
    assert line.endswith("KILLED; continue with `study reproduce lrd_dg --scale quick`")
    _, (recipe,) = runs(tmp_path, "lrd_dg-quick", "recipe")
    _, (sweep,) = runs(tmp_path, "lrd_dg-quick", "sweep")
    _, trials = runs(tmp_path, "lrd_dg-quick", "trial")
    assert (recipe.info.status, sweep.info.status) == ("KILLED", "KILLED")
    assert recipe.data.tags[FAILURE_TAG] == "interrupted by SIGINT"
    assert all(t.info.status != "RUNNING" for t in trials) and len(trials) < 12

    again = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    _, (recipe,) = runs(tmp_path, "lrd_dg-quick", "recipe")
    _, (sweep,) = runs(tmp_path, "lrd_dg-quick", "sweep")
    _, trials = runs(tmp_path, "lrd_dg-quick", "trial")
    assert recipe.data.tags[RECIPE_TAG] == "lrd_dg"
    assert (recipe.info.status, sweep.info.status) == ("FINISHED", "FINISHED")
    assert FAILURE_TAG not in recipe.data.tags and FAILURE_TAG not in sweep.data.tags
    assert len(trials) == 12 and all(t.info.status == "FINISHED" for t in trials)


@pytest.mark.parametrize(
    "cut_short",
    [EOFError("Ran out of input"), pickle.UnpicklingError("pickle data was truncated")],
    ids=["eof", "unpickling"],
)
def test_a_file_tune_left_cut_short_is_one_line_naming_the_full_disk(cut_short, capsys):
    """On a full disk Tune writes a trial's error file only in part, then fails reading it back
    (seen as ``UnpicklingError`` in ``ResultGrid``): one line, not a traceback."""
    from study.tracking.lifecycle import DriverStopped, driver

    with pytest.raises(DriverStopped) as stopped, driver("sweep full", "`study resume full`"):
        raise cut_short
    assert stopped.value.code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: sweep full failed: {type(cut_short).__name__}: ")
    assert "(a truncated file: is the storage path's disk full?)" in line
    assert line.endswith("fix it, then `study resume full`")
