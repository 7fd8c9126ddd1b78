"""Preflight: what a sweep needs, checked in seconds before Ray or any MLflow run starts.

Each check returns a :class:`Check` (ok or not, what it found, how to fix it) and never waits
longer than its timeout: an unreachable tracking server or Ray address is a refusal in a few
seconds, not a silent hang after Ray has started. ``sweep``, ``resume`` and ``reproduce`` run
:func:`preflight` (raising on the first failure); ``study doctor`` prints every check.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from analysis.query import health

from .spec import Spec, SpecError

TIMEOUT_S = 5.0
CHECKPOINTS_KEPT = 2  # tune.CheckpointConfig(num_to_keep=2)
STATE_COPIES = 3  # weights plus up to two optimizer moments per parameter


@dataclass(frozen=True)
class Check:
    """One preflight check: its name, whether it passed, what it found, and the fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "✓" if self.ok else "✗"
        fix = f" — {self.fix}" if self.fix and not self.ok else ""
        return f"{mark} {self.name}: {self.detail}{fix}"


def _sqlite_path(uri: str) -> Path:
    return Path(uri.removeprefix("sqlite:///"))


def check_tracking(uri: str, timeout: float = TIMEOUT_S) -> Check:
    """The MLflow store: a SQLite file that is an MLflow database (or can become one), or a
    server that answers."""
    if uri.startswith("sqlite:///"):
        path = _sqlite_path(uri)
        if path.exists():
            try:
                with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout) as db:
                    tables = {r[0] for r in db.execute("select name from sqlite_master")}
            except sqlite3.DatabaseError as err:
                return Check(
                    "tracking store",
                    False,
                    f"{path} is not readable: {err}",
                    "move it away or point --tracking-uri elsewhere",
                )
            if tables and "experiments" not in tables:
                return Check(
                    "tracking store",
                    False,
                    f"{path} is a SQLite file but no MLflow store",
                    "point --tracking-uri at an MLflow database",
                )
            if not os.access(path, os.W_OK):
                return Check(
                    "tracking store",
                    False,
                    f"{path} is read-only",
                    "make it writable or choose another --tracking-uri",
                )
            return Check("tracking store", True, f"{path} (MLflow SQLite store)")
        folder = path.parent
        if not _writable_dir(folder):
            return Check(
                "tracking store",
                False,
                f"cannot create {path}: {folder} is not writable",
                "run where you can write, or pass --tracking-uri",
            )
        return Check("tracking store", True, f"{path} (created on first use)")
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        status, reason = health(uri, timeout)
        if status is None:
            return Check(
                "tracking store",
                False,
                f"{uri} does not answer within {timeout:g} s ({reason})",
                "start it with `study server`, or check --tracking-uri",
            )
        if status != 200:
            return Check(
                "tracking store",
                False,
                f"{uri} answers /health with HTTP {status} ({reason})",
                "check that --tracking-uri is an MLflow server and that it is healthy",
            )
        return Check("tracking store", True, f"{uri} answers")
    return Check("tracking store", True, f"{uri} (not checked: scheme {scheme!r})")


def _writable_dir(folder: Path) -> bool:
    """Whether ``folder`` (or the first existing folder above it) lets us create files."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    if not probe.is_dir():
        return False
    try:
        marker = probe / f".regstudy-probe-{uuid.uuid4().hex}"
        marker.write_bytes(b"")
        marker.unlink()
        return True
    except OSError:
        return False


def checkpoint_bytes(spec: Spec, trials: int, params: int) -> int:
    """What the checkpoints of ``trials`` trials of a ``params``-parameter model will hold."""
    return trials * CHECKPOINTS_KEPT * STATE_COPIES * 4 * params


def check_storage(path: str, needed: int = 0) -> Check:
    """Ray's storage path: creatable, writable, and room for the checkpoints."""
    if "://" in path:
        return Check("storage", True, f"{path} (remote: checked by `study doctor` on a cluster)")
    folder = Path(path)
    if not _writable_dir(folder):
        return Check(
            "storage", False, f"cannot write under {folder}", "choose a writable --storage-path"
        )
    existing = folder
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if needed and free < needed:
        return Check(
            "storage",
            False,
            f"{folder}: {free / 2**30:.1f} GiB free, the checkpoints "
            f"need about {needed / 2**30:.1f} GiB",
            "free space or pick another --storage-path",
        )
    shown = f", {needed / 2**20:.0f} MiB needed" if needed else ""
    return Check("storage", True, f"{folder} ({free / 2**30:.1f} GiB free{shown})")


def check_address(address: str | None, timeout: float = TIMEOUT_S) -> Check:
    """A Ray address answers (a TCP connect within ``timeout``); local Ray needs none."""
    if address is None:
        return Check("ray", True, "local instance (started by the sweep)")
    if address == "auto":
        found = os.environ.get("RAY_ADDRESS") or _current_cluster()
        if not found:
            return Check(
                "ray",
                False,
                "--address auto but no running Ray cluster is known here",
                "start one with `ray start --head`, or pass HOST:PORT",
            )
        address = found
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as err:
        return Check(
            "ray",
            False,
            f"{address} does not answer within {timeout:g} s ({err})",
            "check the head's address and port, and that `ray status` works there",
        )
    return Check("ray", True, f"{address} answers")


def _current_cluster() -> str | None:
    marker = Path("/tmp/ray/ray_current_cluster")
    return marker.read_text().strip() if marker.is_file() else None


def check_devices(spec: Spec) -> Check:
    """The devices a local sweep asks for exist on this machine."""
    if spec.address is not None:
        return Check("devices", True, "on the cluster's nodes (`study doctor` checks each)")
    gpus = torch.cuda.device_count()
    if spec.resources.gpus_per_trial > 0 and gpus == 0:
        return Check(
            "devices",
            False,
            f"resources.gpus_per_trial={spec.resources.gpus_per_trial:g} "
            "but this machine has no GPUs",
            "use gpus_per_trial: 0",
        )
    if spec.train.get("device") == "cuda" and gpus == 0:
        return Check(
            "devices",
            False,
            "train.device='cuda' but this machine has no CUDA device",
            "use device: auto or cpu",
        )
    return Check("devices", True, f"{os.cpu_count()} CPUs, {gpus} GPUs")


def check_datasets(spec: Spec, provision: Callable[[Spec], None]) -> Check:
    try:
        provision(spec)
    except SpecError as err:
        return Check("datasets", False, str(err).removeprefix("train.dataset: "))
    return Check("datasets", True, "in place" if spec.address is None else "on the cluster")


def checkpoint_need(spec: Spec) -> int:
    """Bytes the sweep's checkpoints will hold: each trial keeps :data:`CHECKPOINTS_KEPT` of its
    model (parameters counted on the ``meta`` device, once per distinct model)."""
    from .plan import count_params, data_facts, data_key, model_key
    from .trials import sweep_trials

    facts_of: dict[str, Any] = {}
    params_of: dict[str, int] = {}
    total = 0
    for trial in sweep_trials("", spec):
        config = trial.train_config()
        facts = facts_of.setdefault(data_key(config), data_facts(config))
        key = model_key(config, facts)
        if key not in params_of:
            params_of[key] = count_params(config, facts)
        total += checkpoint_bytes(spec, 1, params_of[key])
    return total


def preflight_checks(
    spec: Spec, provision: Callable[[Spec], None], need: Callable[[Spec], int] | None = None
) -> list[Check]:
    """Every check of ``spec``, in order, each within seconds; once all pass and the datasets
    are in place, the storage is checked again for the room ``need`` says the checkpoints take."""
    assert spec.tracking_uri is not None
    checks = [
        check_tracking(spec.tracking_uri),
        check_storage(spec.storage_path),
        check_address(spec.address),
        check_devices(spec),
        check_datasets(spec, provision),
    ]
    if need is not None and all(c.ok for c in checks):
        checks[1] = check_storage(spec.storage_path, need(spec))
    return checks


def preflight(
    spec: Spec, provision: Callable[[Spec], None], need: Callable[[Spec], int] | None = None
) -> None:
    """Raise :class:`SpecError` with the first failed check's line (its fix included)."""
    for check in preflight_checks(spec, provision, need):
        if not check.ok:
            raise SpecError(check.line().removeprefix("✗ "))
