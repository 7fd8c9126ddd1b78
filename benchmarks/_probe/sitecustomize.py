"""A timing probe for ``benchmarks.sweep``, never imported by regstudy itself.

``benchmarks.sweep`` puts this directory on ``PYTHONPATH`` and sets ``REGSTUDY_SWEEP_PROBE`` for
the ``study sweep`` it times, so every process of that sweep (Ray's trial workers included, which
inherit the driver's environment) runs this file as it starts. In the process that imports
Tune's ``Trainable`` (a trial worker) it times each ``Trainable.train`` call (one training
iteration, Tune's unit of work) and notes the process's CPU seconds so far, RSS and peak RSS:
one JSON line per call in ``$REGSTUDY_SWEEP_PROBE/<pid>.jsonl``. Tune's own results carry
whole-second timestamps; the gaps measured here are tenths of a second. Elsewhere it does nothing.
"""

from __future__ import annotations

import os
import sys

_DIR = os.environ.get("REGSTUDY_SWEEP_PROBE")
_TARGET = "ray.tune.trainable.trainable"


def memory_kib() -> dict[str, int]:
    """This process's RSS and peak RSS (``VmRSS``, ``VmHWM``) in KiB; ``benchmarks.sweep``'s
    plain loop reads its processes with it too."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmHWM:", "VmRSS:")):
                key, value = line.split(":", 1)
                fields[key] = int(value.split()[0])
    return fields


if _DIR:
    import importlib.abc
    import importlib.machinery
    import json
    import time

    def _patch(module) -> None:
        original = module.Trainable.train

        def train(self):
            start = time.time()
            try:
                return original(self)
            finally:
                end = time.time()
                record = {"pid": os.getpid(), "trial": self.trial_id, "start": start, "end": end}
                record["cpu"] = time.process_time()
                record.update(memory_kib())
                with open(os.path.join(_DIR, f"{os.getpid()}.jsonl"), "a") as out:
                    out.write(json.dumps(record) + "\n")

        module.Trainable.train = train

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != _TARGET:
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None:
                return spec
            run = spec.loader.exec_module

            def exec_module(module) -> None:
                run(module)
                _patch(module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _Finder())
