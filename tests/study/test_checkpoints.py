"""A resume whose experiment state names a checkpoint Tune already deleted (a driver killed while
the state lagged) continues from the trial's newest checkpoint on storage, each epoch once."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from study.checkpoints import (
    _loads_with_cloudpickle,
    _TrainingRunMetadata,
    newest_state_file,
    reported_checkpoints,
)
from tests.support import locations, runs, write_spec

EPOCHS = 25  # the trial is mid-training when the first state save names a checkpoint


def _trial_states(experiment_dir: Path) -> list[tuple[dict, Path | None]]:
    """Each trial's stored state and the checkpoint the experiment state names for it."""
    path = newest_state_file(experiment_dir) if experiment_dir.is_dir() else None
    if path is None:
        return []
    try:
        state = _loads_with_cloudpickle(path.read_text())
    except json.JSONDecodeError:  # Tune is writing it
        return []
    found = []
    for trial_json, meta_json in state["trial_data"]:
        latest = _TrainingRunMetadata.from_json_state(meta_json).checkpoint_manager
        result = latest.latest_checkpoint_result
        found.append((json.loads(trial_json), Path(result.checkpoint.path) if result else None))
    return found


def _lagging(experiment) -> bool:
    """A state save names a checkpoint and a newer one is already on disk: the lag the repair is
    for (killed at the first save alone, the named checkpoint was sometimes the only one)."""
    return any(
        named and any(other.name > named.name for other in named.parent.glob("checkpoint_*"))
        for _, named in _trial_states(experiment)
    )


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
    experiment = tmp_path / "ray_results" / "lagged"
    deadline = time.time() + 300
    while not _lagging(experiment) and time.time() < deadline:
        assert driver.poll() is None, "the sweep ended before it could be killed"
        time.sleep(0.1)
    os.killpg(driver.pid, signal.SIGKILL)  # a state names a checkpoint, a newer one is on disk
    driver.wait()

    ((trial_state, named),) = _trial_states(experiment)
    assert trial_state["status"] != "TERMINATED", "the trial finished before the kill"
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
    ((repaired, _),) = _trial_states(experiment)
    assert repaired["stub"] is False  # a stub trial needing a new actor is an "Invalid trainable"
    client, (trial,) = runs(tmp_path, "lagged", "trial")
    assert trial.info.status == "FINISHED"
    history = client.get_metric_history(trial.info.run_id, "val_error")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))


def test_reported_checkpoints_are_the_results_written_down_with_one(tmp_path):
    rows = [
        {"training_iteration": 1, "checkpoint_dir_name": "checkpoint_000000"},
        {"training_iteration": 2, "checkpoint_dir_name": None},
        {"training_iteration": 3, "checkpoint_dir_name": "checkpoint_000001"},
    ]
    lines = [json.dumps(row) for row in rows] + ['{"training_iteration": 4, "checkpoint_d']
    (tmp_path / "result.json").write_text("\n".join(lines))
    reported = reported_checkpoints(tmp_path)
    assert {name: row["training_iteration"] for name, row in reported.items()} == {
        "checkpoint_000000": 1,
        "checkpoint_000001": 3,
    }
    assert reported_checkpoints(tmp_path / "absent") == {}
