"""A resume whose experiment state names a checkpoint Tune already deleted (a driver killed while
the state lagged) continues from the trial's newest checkpoint on storage, each epoch once."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from study.checkpoints import _loads_with_cloudpickle, _TrainingRunMetadata, newest_state_file
from tests.support import locations, runs, store_count, write_spec

EPOCHS = 5
SECOND_EPOCH_LOGGED = "select count(*) from metrics where key = 'epoch' and value >= 2"


def _logged(db: Path) -> int:
    return store_count(db, SECOND_EPOCH_LOGGED)


def _named_checkpoints(experiment_dir: Path) -> list[Path]:
    state = _loads_with_cloudpickle(newest_state_file(experiment_dir).read_text())
    named = []
    for _, meta_json in state["trial_data"]:
        latest = _TrainingRunMetadata.from_json_state(meta_json).checkpoint_manager
        if latest.latest_checkpoint_result is not None:
            named.append(Path(latest.latest_checkpoint_result.checkpoint.path))
    return named


@pytest.mark.slow
def test_a_state_naming_a_deleted_checkpoint_resumes_from_the_newest_on_storage(tmp_path):
    spec = write_spec(
        tmp_path,
        name="lagged",
        budget={"epochs": EPOCHS, "repeats": 1},
        checkpoint_every=1,
    )
    env = {**os.environ, "RAY_worker_niceness": "0", "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    command = [sys.executable, "-m", "study", "sweep", str(spec), *locations(tmp_path)]
    driver = subprocess.Popen(command, env=env, cwd=tmp_path, start_new_session=True)
    deadline = time.time() + 300
    while _logged(tmp_path / "mlruns.db") < 1 and time.time() < deadline:
        assert driver.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.2)
    time.sleep(2)  # a state save names a checkpoint
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()

    experiment = tmp_path / "ray_results" / "lagged"
    (named,) = _named_checkpoints(experiment)
    shutil.rmtree(named)  # the race: the checkpoint the state names is gone, others are not
    assert list(named.parent.glob("checkpoint_*"))

    resume = ["resume", "lagged", "--storage-path", str(tmp_path / "ray_results"), "--quiet"]
    done = subprocess.run(
        [sys.executable, "-m", "study", *resume],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "the checkpoint Ray's state names is gone" in done.stderr
    client, (trial,) = runs(tmp_path, "lagged", "trial")
    assert trial.info.status == "FINISHED"
    history = client.get_metric_history(trial.info.run_id, "val_error")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
