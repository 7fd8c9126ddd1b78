"""Joining Ray: a local instance by default, a cluster with ``--address``; resources checked first.

A trial asking for resources the cluster does not have would wait forever;
here it is an error that says what was asked and what exists.
"""

from __future__ import annotations

import os

import ray
import torch

from .spec import Spec, SpecError

_started_here = False


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
    """For a local sweep, check the machine before Ray starts."""
    if spec.address is None:
        _check(spec, float(os.cpu_count() or 1), float(torch.cuda.device_count()), "this machine")


def connect(spec: Spec) -> dict[str, float]:
    """Start or join Ray for ``spec``; return its resources, or shut down if they fall short.

    A Ray session already open in this process (a notebook's, a test suite's) is used as it is.
    Trial output stays in the trials' own logs (``log_to_driver=False``): the
    driver prints Tune's status and one line per finished trial instead.
    """
    global _started_here
    check_local_resources(spec)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # A diverged trial's last report has no validation metrics; the spec already checked the name.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    if not ray.is_initialized():
        if spec.address is None:
            ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
        else:
            ray.init(address=spec.address, configure_logging=False, log_to_driver=False)
        _started_here = True
    resources = ray.cluster_resources()
    try:
        where = "the Ray cluster" if spec.address else "the local Ray instance"
        _check(spec, resources.get("CPU", 0.0), resources.get("GPU", 0.0), where)
    except SpecError:
        disconnect()
        raise
    return resources


def disconnect() -> None:
    """Shut Ray down if :func:`connect` started it; a session the caller opened stays open."""
    global _started_here
    if _started_here and ray.is_initialized():
        ray.shutdown()
    _started_here = False
