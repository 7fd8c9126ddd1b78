"""A trial's worker process killed (SIGKILL, as the OOM killer or a lost node would): its run
ends FAILED with the reason, the others finish, and `study resume` continues it from its last
checkpoint, each epoch logged once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.schema import FAILURE_TAG
from tests.support import locations, runs, store_count, write_spec

EPOCHS = 6
EPOCH_LOGGED = "select count(*) from metrics where key = 'epoch' and value >= 2"


def _logged(db: Path) -> int:
    return store_count(db, EPOCH_LOGGED)


def _trial_workers(root: int) -> list[int]:
    """The Tune trial processes (``ray::ImplicitFunc``) under process ``root``."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        pid = int(text.split()[0])
        names[pid] = text[text.index("(") + 1 : text.rindex(")")]
        children.setdefault(int(text.rsplit(")", 1)[1].split()[1]), []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if command.startswith("ray::ImplicitFunc"):
            found.append(pid)
    return found


@pytest.mark.slow
def test_a_killed_trial_worker_fails_its_run_and_resume_continues_it_once(tmp_path):
    spec = write_spec(
        tmp_path,
        name="worker",
        grid={"lr": [0.05, 0.1]},
        budget={"epochs": EPOCHS, "max_concurrent": 1},
        checkpoint_every=1,
    )
    env = {**os.environ, "RAY_worker_niceness": "0"}
    command = [sys.executable, "-m", "study", "sweep", str(spec), *locations(tmp_path)]
    driver = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while _logged(tmp_path / "mlruns.db") < 1 and time.time() < deadline:
        assert driver.poll() is None, driver.stderr.read()
        time.sleep(0.2)
    (worker,) = _trial_workers(driver.pid)
    os.kill(worker, signal.SIGKILL)
    err = driver.communicate(timeout=600)[1]

    assert driver.returncode == 1, err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert line == (
        "error: sweep worker: 1 of 2 trials crashed; "
        "`study resume worker` retries them from their last checkpoints"
    )
    client, trials = runs(tmp_path, "worker", "trial")
    _, (parent,) = runs(tmp_path, "worker", "sweep")
    statuses = sorted(t.info.status for t in trials)
    assert statuses == ["FAILED", "FINISHED"], err
    (killed,) = [t for t in trials if t.info.status == "FAILED"]
    assert killed.data.tags[FAILURE_TAG]
    assert parent.info.status == "FAILED"

    resume = ["resume", "worker", "--storage-path", str(tmp_path / "ray_results"), "--quiet"]
    done = subprocess.run(
        [sys.executable, "-m", "study", *resume], env=env, cwd=tmp_path, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    client, trials = runs(tmp_path, "worker", "trial")
    _, (parent,) = runs(tmp_path, "worker", "sweep")
    assert len(trials) == 2 and parent.info.status == "FINISHED"
    for run in trials:
        assert run.info.status == "FINISHED" and FAILURE_TAG not in run.data.tags
        history = client.get_metric_history(run.info.run_id, "val_error")
        assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
