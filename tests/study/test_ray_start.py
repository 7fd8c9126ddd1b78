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
        import psutil
        commands = [p.cmdline() for p in psutil.Process().children(recursive=True)]
        workers = [c for c in commands if c and (c[0].startswith("ray::IDLE") or
                   ("python" in c[0] and any(a.endswith("default_worker.py") for a in c)))]
        assert workers == [], "idle workers started ahead (no trial can use them)"
        helpers = [a for c in commands for a in c if a.endswith(("monitor.py", "log_monitor.py"))]
        assert helpers == [], "the autoscaler's or the log monitor started (nothing uses them)"
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


def test_the_lean_start_sets_ray_s_own_switches_and_puts_its_parameters_back():
    from ray._private import parameter

    from study.cluster import without_idle_helpers

    before = parameter.RayParams
    with without_idle_helpers():
        lean = parameter.RayParams()
        asked = parameter.RayParams(no_monitor=False)
    assert (lean.no_monitor, lean.include_log_monitor) == (True, False)
    assert asked.no_monitor is False, "a caller's own choice is kept"
    assert parameter.RayParams is before


def test_trial_actors_on_an_instance_started_here_carry_no_runtime_env_of_their_own():
    """Tune's per-actor ``PL_DISABLE_FORK=1`` is the instance's own there, so a trial's worker
    starts without Ray's setup_worker.py and still sees the variable; Tune's is put back after."""
    _run(
        """
        import os
        from ray.tune.execution import class_cache

        class Probe:
            def look(self):
                context = ray.get_runtime_context()
                return os.environ.get("PL_DISABLE_FORK"), context.runtime_env.get("env_vars")

        tune_env = class_cache.DEFAULT_ENV_VARS
        cluster.start_early(spec)
        cluster.connect(spec)
        with cluster.trial_actors_in_instance_env():
            actor = class_cache._ActorClassCache().get(Probe).remote()
        assert ray.get(actor.look.remote(), timeout=120) == ("1", None)
        assert class_cache.DEFAULT_ENV_VARS is tune_env
        cluster.disconnect()
        with cluster.trial_actors_in_instance_env():  # no instance of this module's any more
            assert class_cache.DEFAULT_ENV_VARS is tune_env
        """
    )


def test_trial_actors_keep_tune_s_runtime_env_on_a_session_opened_elsewhere():
    from ray.tune.execution import class_cache

    from study.cluster import trial_actors_in_instance_env

    tune_env = class_cache.DEFAULT_ENV_VARS
    with trial_actors_in_instance_env():
        assert class_cache.DEFAULT_ENV_VARS is tune_env
        assert tune_env == {"PL_DISABLE_FORK": "1"}, "Tune's own actor environment changed"
