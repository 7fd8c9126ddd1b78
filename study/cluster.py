"""Joining Ray: a local instance by default, a cluster with ``--address``; resources checked first.

A trial asking for resources the cluster does not have would wait forever;
here it is an error that says what was asked and what exists.

A local instance takes seconds to start; :func:`connect_while` does other set-up meanwhile
(opening the tracking store: creating a new SQLite store takes seconds too).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import inspect
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import ray
from ray._private import parameter, ray_constants

from .spec import Spec, SpecError

T = TypeVar("T")
# Process-level settings of a local instance's processes (the environment wins):
# - one malloc arena: a reused worker runs each trial in a new thread, and glibc gives a new
#   thread a new arena, where the trial before it left its freed memory; a worker's peak RSS
#   then grew trial after trial (1.5 GB against 1.2 GB on the main job, the same speed);
# - no usage statistics sent over the network (no default command touches it);
# - no idle workers started ahead: they cost CPU while the driver starts and ~100 MB each after.
#   Trial actors can take them (they carry no runtime environment of their own here), but with
#   ``trainables.tune`` preloaded in them the imports competed with the driver's on 2 cores (a
#   sweep's fixed overhead grew from 10.1 to 13.1 s), and with Ray alone imported the first step
#   came no sooner (2.5 against 2.6 s after Tune's start);
# - ``PL_DISABLE_FORK=1``, what Tune sets on each trainable actor (ray-project/ray#28197), for the
#   whole instance, so that the actors need no runtime environment of their own
#   (:func:`trial_actors_in_instance_env`).
LOCAL_ENV = {
    "MALLOC_ARENA_MAX": "1",
    "PL_DISABLE_FORK": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_enable_worker_prestart": "0",
    "RAY_prestart_worker_first_driver": "0",
}

_started_here = False
_instance_env: dict[str, str] = {}  # LOCAL_ENV's keys as a local instance started here has them
_start: Future[None] | None = None
_release = threading.Event()  # lets start_early's thread end once Ray is shut down
_stopping = threading.Lock()
_freeze_at_exit = False
_TUNE_CONTROLLER = "ray.tune.execution.tune_controller"
_RAY_WORKER = "ray._private.worker"
_RAY_AUTH = "ray._private.authentication.authentication_token_setup"


class _GoneCheckpoint(logging.Filter):
    """Drop Tune's traceback when, after a restart, it deletes an old checkpoint that is already
    gone (deleted after the experiment state was last saved): the new checkpoint is kept and the
    trial goes on, so it is noise in the log of every resumed long run."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        gone = isinstance(error, FileNotFoundError) and "checkpoint_" in str(error)
        return not (gone and str(record.msg).startswith("Trial %s: Error handling checkpoint"))


def quiet_gone_checkpoints() -> None:
    """Install :class:`_GoneCheckpoint` on Tune's controller logger, once."""
    logger = logging.getLogger(_TUNE_CONTROLLER)
    if not any(isinstance(f, _GoneCheckpoint) for f in logger.filters):
        logger.addFilter(_GoneCheckpoint())


def _check(spec: Spec, cpus: float, gpus: float, where: str) -> None:
    asked = spec.resources
    if asked.gpus_per_trial > 0 and gpus == 0:
        raise SpecError(
            f"resources.gpus_per_trial={asked.gpus_per_trial} but {where} has no GPUs; "
            "use gpus_per_trial: 0 to train on CPUs"
        )
    if asked.gpus_per_trial > gpus:
        raise SpecError(
            f"resources.gpus_per_trial={asked.gpus_per_trial} but {where} has {gpus:g} GPUs"
        )
    if asked.cpus_per_trial > cpus:
        raise SpecError(
            f"resources.cpus_per_trial={asked.cpus_per_trial:g} but {where} has {cpus:g} CPUs"
        )


def check_local_resources(spec: Spec) -> None:
    """For a local sweep, check the machine before Ray starts (torch counts GPUs only when the
    spec asks for some: importing it takes seconds)."""
    if spec.address is None:
        gpus = 0.0
        if spec.resources.gpus_per_trial > 0:
            import torch

            gpus = float(torch.cuda.device_count())
        _check(spec, float(os.cpu_count() or 1), gpus, "this machine")


@contextmanager
def loopback_only() -> Iterator[None]:
    """Start a local Ray instance whose GCS, raylet, workers and driver listen on 127.0.0.1.

    Ray binds its servers to the node's IP, and on Linux resolves ``127.0.0.1`` to the
    machine's reachable address; its own switch for local-only nodes
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read once at import) keeps the loopback. It is
    applied while the node starts, unless the user set the variable.
    """
    if os.environ.get(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR) is not None:
        yield
        return
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


@contextmanager
def without_idle_helpers() -> Iterator[None]:
    """Start a local instance without the two helper processes a single-node sweep never uses:
    the autoscaler's monitor (a fixed local node has nothing to scale) and the log monitor
    (it streams worker output to the driver, which ``log_to_driver=False`` turns off).

    ``ray start`` has switches for both (``--no-monitor``, ``--include-log-monitor=False``);
    ``ray.init`` builds its node parameters without them, so they are set on the parameters
    while the node starts. The two Python processes cost ~1 s of CPU while the driver starts
    and 1 s of ``ray.shutdown`` (measured: start 5.3 → 4.1-5.4 s, shutdown 1.1 → 0.1-0.3 s
    under load on 2 cores). A Ray whose parameters lack either field starts as it is.
    """
    params = inspect.signature(parameter.RayParams).parameters
    if not {"no_monitor", "include_log_monitor"} <= params.keys():
        yield
        return
    before = parameter.RayParams

    class _Lean(before):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("no_monitor", True)
            kwargs.setdefault("include_log_monitor", False)
            super().__init__(*args, **kwargs)

    parameter.RayParams = _Lean
    try:
        yield
    finally:
        parameter.RayParams = before


@contextmanager
def trial_actors_in_instance_env() -> Iterator[None]:
    """While Tune runs trials on a local instance started here, its trainable actors without the
    runtime environment Tune gives each one (``{"env_vars": {"PL_DISABLE_FORK": "1"}}``), which
    every process of the instance already has (:data:`LOCAL_ENV`).

    Ray starts the worker of an actor that has a runtime environment through its
    ``setup_worker.py``: a Python that imports Ray only to set the variables and exec the real
    worker, which imports Ray again (0.3-0.4 s on the path to each trial process's first step).
    Elsewhere (a cluster, a session the caller opened, variables the instance lacks) Tune's
    environment is kept; so is any variable Tune copies from the driver (cloud credentials).
    """
    from ray.tune.execution import class_cache

    tune_env = class_cache.DEFAULT_ENV_VARS
    if not (_instance_env and tune_env.items() <= _instance_env.items()):
        yield
        return
    class_cache.DEFAULT_ENV_VARS = {}
    try:
        yield
    finally:
        class_cache.DEFAULT_ENV_VARS = tune_env


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in the environment while a local instance starts (its processes inherit them),
    each unless the user set it; the driver's own environment is restored after."""
    added = {key: value for key, value in values.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def start_early(spec: Spec) -> None:
    """Begin :func:`connect`'s Ray start in a thread, so that what the driver imports and sets
    up meanwhile overlaps it. ``ray.init`` is mostly the driver waiting on Ray's own processes
    (0.3 s of its CPU in a 2.6 s start here, 7 s under load), while the imports a sweep's driver
    needs are seconds of CPU. :func:`connect` waits for it; :func:`disconnect` stops what it
    started, whether or not anything connected.

    Only a local instance starts early (joining a cluster is quick, and a wrong address is
    refused by preflight). The thread stays alive until :func:`disconnect`: Ray starts its GCS
    and raylet with ``PR_SET_PDEATHSIG``, which Linux ties to the *thread* that spawned them,
    so a thread that returned after ``ray.init`` would take the instance down with it.
    """
    global _start
    if spec.address is None and _start is None and not ray.is_initialized():
        _quiet_thread_note()
        _release.clear()
        _start = Future()
        hold = threading.Thread(target=_start_and_hold, args=(spec, _start), name="ray-start")
        hold.daemon = True  # a driver that exits without disconnect: Ray's atexit stops it
        hold.start()


def _start_and_hold(spec: Spec, started: Future[None]) -> None:
    try:
        _init(spec)
    except BaseException as err:
        started.set_exception(err)
        return
    started.set_result(None)
    _release.wait()


class _NotMainThread(logging.Filter):
    """Drop ``ray.init``'s note that, started outside the main thread, it set no SIGTERM
    handler: the driver keeps its own (see :func:`_init`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("SIGTERM handler is not set")


class _DefaultAuthNote(logging.Filter):
    """Drop the line Ray logs on every start of a new local instance without ``RAY_AUTH_MODE``
    set: that it enabled token authentication, its default (and the safe one), the first line
    of every sweep's output. Its warning that authentication is *disabled* still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Token authentication is enabled")


def _quiet_default_auth_note() -> None:
    logger = logging.getLogger(_RAY_AUTH)
    if not any(isinstance(f, _DefaultAuthNote) for f in logger.filters):
        logger.addFilter(_DefaultAuthNote())


def _quiet_thread_note() -> None:
    logger = logging.getLogger(_RAY_WORKER)
    if not any(isinstance(f, _NotMainThread) for f in logger.filters):
        logger.addFilter(_NotMainThread())


def _init(spec: Spec) -> None:
    """``ray.init`` for ``spec``, without Ray's SIGTERM handler.

    In the main thread ``ray.init`` replaces the SIGTERM handler with ``sys.exit``, which would
    take over the driver's own (:mod:`study.tracking.lifecycle`: a SIGTERM ends the runs with
    their reason and says how to continue); the handler that was there is put back.
    """
    global _started_here, _instance_env
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None
    try:
        if spec.address is None:
            _quiet_default_auth_note()
            with loopback_only(), without_idle_helpers(), _environment(LOCAL_ENV):
                ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
                _instance_env = {key: os.environ[key] for key in LOCAL_ENV}
        else:
            ray.init(address=spec.address, configure_logging=False, log_to_driver=False)
        _started_here = True
    finally:
        if main:
            signal.signal(signal.SIGTERM, before)


def _wait_for_start() -> None:
    """Wait for :func:`start_early`'s start, if one was begun; its error is raised here."""
    global _start
    if _start is not None:
        try:
            _start.result()
        finally:
            _start = None


def connect(spec: Spec) -> dict[str, float]:
    """Start or join Ray for ``spec``; return its resources, or shut down if they fall short.

    A Ray session already open in this process (a notebook's, a test suite's) is used as it is.
    Trial output stays in the trials' own logs (``log_to_driver=False``): the
    driver prints Tune's status and one line per finished trial instead.
    """
    check_local_resources(spec)
    quiet_gone_checkpoints()
    exit_without_collecting()
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # A diverged trial's last report has no validation metrics; the spec already checked the name.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    _wait_for_start()
    if not ray.is_initialized():
        _init(spec)
    resources = ray.cluster_resources()
    try:
        where = "the Ray cluster" if spec.address else "the local Ray instance"
        _check(spec, resources.get("CPU", 0.0), resources.get("GPU", 0.0), where)
    except SpecError:
        disconnect()
        raise
    return resources


def exit_without_collecting() -> None:
    """At exit, leave what the process holds to the OS: :func:`gc.freeze` as the last exit
    handler but Ray's own. A driver has imported torch, MLflow, Ray Tune and pandas, and the
    interpreter's final collections walk all of it: seconds of every command's end (2.6 s in
    0.5 here). Exit handlers still run and every file is still flushed and closed; only cycles
    of objects nobody refers to any more are not collected before the process ends."""
    global _freeze_at_exit
    if not _freeze_at_exit:
        atexit.register(gc.freeze)
        _freeze_at_exit = True


def connect_while(spec: Spec, work: Callable[[], T]) -> T:
    """:func:`connect` for ``spec``, with ``work`` (opening the tracking store: a new SQLite
    store takes seconds to create) done in a thread meanwhile; ``work``'s result. An error of
    either is raised, ``connect``'s first."""
    with ThreadPoolExecutor(1, thread_name_prefix="while-ray-starts") as pool:
        done = pool.submit(work)
        try:
            connect(spec)
        except BaseException:
            done.cancel()
            raise
        return done.result()


def disconnect() -> None:
    """Shut Ray down if this module started it (waiting for a start still under way, or a
    shutdown in another thread); a session the caller opened stays open."""
    global _started_here
    with _stopping:
        with contextlib.suppress(Exception):  # a start that failed left nothing to stop
            _wait_for_start()
        if _started_here and ray.is_initialized():
            _stop_autoscaler()
            ray.shutdown()
        _started_here = False
        _instance_env.clear()
        _release.set()


def disconnect_in_background() -> Callable[[], None]:
    """:func:`disconnect` in a thread: a local instance's shutdown is a second of the driver
    waiting on Ray's processes to exit, which the sweep's ending (MLflow's and Optuna's, not
    Ray's) can overlap. Returns the function that waits for it (a later :func:`disconnect`
    waits for it too); nothing may release a Ray object until then."""
    stopping = threading.Thread(target=disconnect, name="ray-stop")
    stopping.start()
    return stopping.join


def _stop_autoscaler() -> None:
    """SIGKILL the local instance's autoscaler monitor first. ``ray.shutdown`` stops the GCS
    before it and then waits a whole second for the monitor to exit on SIGTERM, which it never
    does without its GCS, before it SIGKILLs it anyway: a second of every sweep's end. The
    monitor keeps no state (a single machine does not scale)."""
    try:
        node = ray._private.worker._global_node
        monitors = node.all_processes.get(ray_constants.PROCESS_TYPE_MONITOR, [])
        for info in monitors:
            if info.process.poll() is None:
                info.process.kill()
                info.process.wait(timeout=1)
    except Exception:  # another Ray's internals: ray.shutdown stops it the slow way
        pass
