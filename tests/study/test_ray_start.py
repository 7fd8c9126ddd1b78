"""Starting a local Ray instance for a sweep's driver (:mod:`study.cluster`), in a process of its
own: the test session's Ray is already up, and these are about what a fresh driver does."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
PRELUDE = """
import signal, threading, time
import ray
from study import cluster
from study.spec import build_spec

train = {"dataset": "digits", "model": "pgrid_cnn"}
spec = build_spec({"name": "start", "train": train, "resources": {"cpus_per_trial": 1}}, {})
"""


def _run(body: str) -> None:
    code = PRELUDE + textwrap.dedent(body)
    env = {**os.environ, "RAY_ADDRESS": "local"}  # never a `ray start` cluster of this machine
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SIGTERM handler is not set" not in done.stderr
    assert "Token authentication" not in done.stderr  # a line on every sweep's start


@pytest.mark.parametrize("early", [True, False], ids=["started early", "started by connect"])
def test_the_instance_outlives_the_start_and_disconnect_stops_it(early):
    """Ray starts its GCS and raylet with PR_SET_PDEATHSIG, tied to the spawning thread: an
    early start's thread must outlive ``ray.init``, or the instance dies with it."""
    _run(
        f"""
        handler = signal.getsignal(signal.SIGTERM)
        if {early}:
            cluster.start_early(spec)
        cluster.connect(spec)
        time.sleep(2)  # past the moment a finished starting thread would take the GCS down
        assert ray.get(ray.remote(lambda: 41 + 1).remote(), timeout=60) == 42
        assert signal.getsignal(signal.SIGTERM) is handler, "Ray's sys.exit took SIGTERM over"
        cluster.disconnect()
        assert not ray.is_initialized()
        time.sleep(0.5)
        assert not [t for t in threading.enumerate() if t.name == "ray-start"]
        """
    )


def test_a_driver_that_fails_before_connecting_still_stops_the_early_start():
    """A refusal after the early start (preflight, a name in use) disconnects: the start is
    waited for and shut down, not left to the exit handlers."""
    _run(
        """
        cluster.start_early(spec)
        cluster.disconnect()
        assert not ray.is_initialized()
        """
    )


def test_the_first_trials_run_on_the_workers_started_ahead_with_the_trainer_imported():
    """A local raylet starts one idle worker per CPU, which imports ``trainables.tune`` while the
    driver sets up; Tune's actors (without their Lightning variable) run on those workers."""
    _run(
        """
        import os
        import sys
        import tempfile

        import psutil
        from ray import tune

        # A 2-CPU machine, whatever runs the test: the main job's two trials fill it.
        ray._private.utils.get_num_cpus = lambda *args, **kwargs: 2
        cluster.start_early(spec)
        cluster.connect(spec)

        def idle_workers():
            found = set()
            for p in psutil.Process().children(recursive=True):
                try:
                    if p.cmdline()[:1] == ["ray::IDLE"]:
                        found.add(p.pid)
                except psutil.Error:
                    pass
            return found

        cpus = int(ray.cluster_resources()["CPU"])  # one idle worker per CPU of the instance
        deadline = time.time() + 120
        while len(idle_workers()) < cpus and time.time() < deadline:
            time.sleep(0.2)
        ahead = idle_workers()
        assert len(ahead) == cpus, ahead

        def probe(config):
            tune.report({"pid": os.getpid(), "preloaded": "trainables.tune" in sys.modules})

        cluster.let_trials_use_idle_workers()
        storage = tempfile.mkdtemp()
        grid = {"x": tune.grid_search([1, 2])}
        results = tune.Tuner(
            tune.with_resources(probe, {"cpu": 1}),
            param_space=grid,
            run_config=tune.RunConfig(storage_path=storage, verbose=0),
        ).fit()
        ran_on = {r.metrics["pid"] for r in results}
        assert ran_on <= ahead, (ran_on, ahead)
        assert all(r.metrics["preloaded"] for r in results)
        cluster.disconnect()
        """
    )


@pytest.mark.parametrize(
    ("cpus", "budget", "resources", "ahead"),
    [
        (2, {"max_concurrent": 2}, {"cpus_per_trial": 1}, True),  # the main job here
        (4, {"max_concurrent": 2}, {"cpus_per_trial": 1}, False),  # two workers would idle
        (2, {"max_concurrent": 2}, {"cpus_per_trial": 2}, False),  # one trial at a time
        (2, {"max_concurrent": 4}, {"cpus_per_trial": 0.5}, True),
    ],
)
def test_workers_start_ahead_only_where_the_first_trials_take_them_all(
    monkeypatch, cpus, budget, resources, ahead
):
    import ray

    from study import cluster
    from study.spec import build_spec

    monkeypatch.setattr(ray._private.utils, "get_num_cpus", lambda *args, **kwargs: cpus)
    train = {"dataset": "digits", "model": "pgrid_cnn"}
    spec = build_spec({"name": "n", "train": train, "budget": budget, "resources": resources}, {})
    env = cluster.local_environment(spec)
    assert env["MALLOC_ARENA_MAX"] == "1"
    if ahead:
        assert env["RAY_preload_python_modules"] == "trainables.tune"
        assert "RAY_prestart_worker_first_driver" not in env
    else:
        assert env["RAY_prestart_worker_first_driver"] == "0"
        assert "RAY_preload_python_modules" not in env
