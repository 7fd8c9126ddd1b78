"""``study doctor``: every preflight check of a spec, and on a cluster what each node sees.

Locally it prints the checks :func:`study.preflight.preflight_checks` makes. With an address it
also runs one tiny task on every alive node: each writes a marker file under the storage path,
then every node reads every marker (proving the storage is shared, as a multi-node sweep needs),
counts its GPUs, and checks that it reaches the tracking store.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from .preflight import Check, check_tracking, checkpoint_need, preflight_checks
from .spec import Spec

_TIMEOUT_S = 60


def node_checks(spec: Spec) -> list[Check]:
    """Per node: the shared storage path, its GPUs, the tracking store (Ray must be joined)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    probe = f"{spec.storage_path.rstrip('/')}/.regstudy-doctor-{uuid.uuid4().hex[:8]}"

    def on(node: dict[str, Any], fn, *args):
        strategy = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        return ray.remote(num_cpus=0)(fn).options(scheduling_strategy=strategy).remote(*args)

    written = ray.get([on(n, _write_marker, probe, n["NodeID"]) for n in nodes], timeout=_TIMEOUT_S)
    seen = ray.get([on(n, _node_view, probe, spec.tracking_uri) for n in nodes], timeout=_TIMEOUT_S)
    if "://" not in probe:
        shutil.rmtree(probe, ignore_errors=True)
    checks = []
    expected = {node_id for node_id, ok in written if ok}
    for node, (markers, gpus, tracking) in zip(nodes, seen):
        name = f"node {node['NodeManagerAddress']} ({node['NodeID'][:8]})"
        missing = expected - markers
        checks.append(
            Check(
                f"{name} storage",
                not missing and node["NodeID"] in expected,
                f"{spec.storage_path}: sees the markers of {len(markers)} of {len(nodes)} nodes",
                "use storage every node shares (NFS, or s3://...) as --storage-path",
            )
        )
        asked = spec.resources.gpus_per_trial
        checks.append(
            Check(
                f"{name} GPUs",
                asked == 0 or gpus > 0,
                f"{gpus} visible",
                "install the GPU driver there, or ask for gpus_per_trial: 0",
            )
        )
        checks.append(Check(f"{name} {tracking.name}", tracking.ok, tracking.detail, tracking.fix))
    return checks


def _write_marker(probe: str, node_id: str) -> tuple[str, bool]:
    try:
        Path(probe).mkdir(parents=True, exist_ok=True)
        (Path(probe) / node_id).write_text(node_id)
        return node_id, True
    except OSError:
        return node_id, False


def _node_view(probe: str, tracking_uri: str) -> tuple[set[str], int, Check]:
    import torch

    folder = Path(probe)
    markers = set(os.listdir(folder)) if folder.is_dir() else set()
    return markers, torch.cuda.device_count(), check_tracking(tracking_uri)


def doctor(spec: Spec, provision) -> list[Check]:
    """The local checks, then (with an address that answers) each node's."""
    checks = preflight_checks(spec, provision, checkpoint_need)
    if spec.address is None or not all(c.ok for c in checks):
        return checks
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=spec.address, configure_logging=False, log_to_driver=False)
    try:
        return checks + node_checks(spec)
    finally:
        if started:
            ray.shutdown()
