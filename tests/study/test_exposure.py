"""A local sweep's Ray listens on the loopback only: nothing of it is reachable from the network."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

PROBE = textwrap.dedent(
    """
    import ray
    from study.cluster import connect, disconnect
    from study.spec import build_spec

    connect(build_spec({"name": "exposure"}))
    ray.get(ray.remote(lambda: 1).remote())
    print(ray.get_runtime_context().gcs_address)
    input()
    disconnect()
    """
)
LISTEN = "0A"


def listening_sockets() -> dict[str, str]:
    """Socket inode -> local IP of every listening TCP socket (``/proc/net/tcp``, ``tcp6``)."""
    found = {}
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            address, state, inode = fields[1].split(":")[0], fields[3], fields[9]
            if state == LISTEN:
                found[inode] = _ip(address, width)
    return found


def _ip(hex_address: str, width: int) -> str:
    if width == 8:
        return ".".join(str(int(hex_address[i : i + 2], 16)) for i in (6, 4, 2, 0))
    if hex_address[:24] == "0000000000000000FFFF0000":
        return _ip(hex_address[24:], 8)
    return "::" if set(hex_address) == {"0"} else hex_address


def descendants(root: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        pid, ppid = int(text.split()[0]), int(text.rsplit(")", 1)[1].split()[1])
        parents[pid] = ppid
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def sockets_of(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def test_a_local_ray_instance_listens_on_127_0_0_1_only():
    env = {"RAY_worker_niceness": "0", "PATH": "/usr/bin:/bin"}
    probe = subprocess.Popen(
        [sys.executable, "-c", PROBE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        gcs = probe.stdout.readline().strip()
        listening = listening_sockets()
        ips = {
            listening[inode]
            for pid in descendants(probe.pid)
            for inode in sockets_of(pid)
            if inode in listening
        }
    finally:
        probe.communicate("\n", timeout=120)
    assert gcs.startswith("127.0.0.1:"), gcs
    assert ips and ips <= {"127.0.0.1"}, ips


def test_the_traceback_of_an_already_deleted_old_checkpoint_is_dropped_after_a_restart():
    import logging

    from study.cluster import _TUNE_CONTROLLER, quiet_gone_checkpoints

    quiet_gone_checkpoints()
    quiet_gone_checkpoints()
    logger = logging.getLogger(_TUNE_CONTROLLER)
    assert len(logger.filters) == 1

    def record(error: Exception, msg: str = "Trial %s: Error handling checkpoint %s"):
        try:
            raise error
        except Exception:
            return logger.makeRecord(
                logger.name, logging.ERROR, "f", 1, msg, ("t", "c"), sys.exc_info()
            )

    gone = FileNotFoundError("Path not found: (fs, /r/trial/checkpoint_000068)")
    assert not logger.filter(record(gone))
    assert logger.filter(record(OSError(28, "No space left on device")))
    assert logger.filter(record(gone, "Trial %s: something else %s"))
