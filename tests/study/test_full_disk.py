"""The storage fills up while a sweep trains (a real full filesystem: a small tmpfs, filled once
the first trial reports): no run is left RUNNING, and the driver ends with one line."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from analysis.schema import FAILURE_TAG
from tests.support import runs, store_count, write_spec

EPOCH_LOGGED = "select count(*) from metrics where key = 'epoch'"


def _logged(db: Path) -> int:
    return store_count(db, EPOCH_LOGGED)


@pytest.fixture
def small_filesystem(tmp_path):
    """A 64 MiB tmpfs (mounting needs root: skipped elsewhere)."""
    mount = tmp_path / "storage"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_ends_every_run_and_the_driver_with_one_line(tmp_path, small_filesystem):
    spec = write_spec(
        tmp_path,
        name="full",
        grid={"lr": [0.05, 0.1]},
        budget={"epochs": 30, "max_concurrent": 1},
        checkpoint_every=1,
    )
    db = tmp_path / "mlruns.db"
    command = [
        sys.executable, "-m", "study", "sweep", str(spec), "--quiet", "--no-best",
        "--tracking-uri", f"sqlite:///{db}", "--storage-path", str(small_filesystem),
    ]  # fmt: skip
    env = {**os.environ, "RAY_worker_niceness": "0"}
    driver = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while _logged(db) < 1 and time.time() < deadline:
        assert driver.poll() is None, driver.stderr.read()
        time.sleep(0.2)
    filler = small_filesystem / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)
    err = driver.communicate(timeout=600)[1]

    assert driver.returncode != 0, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err.split(lines[0])[-1]
    _, trials = runs(tmp_path, "full", "trial")
    _, (parent,) = runs(tmp_path, "full", "sweep")
    assert parent.info.status in ("FAILED", "KILLED") and parent.data.tags.get(FAILURE_TAG)
    assert trials and all(t.info.status != "RUNNING" for t in trials)
    assert any("No space left on device" in t.data.tags.get(FAILURE_TAG, "") for t in trials) or (
        "No space left on device" in lines[0]
    )
