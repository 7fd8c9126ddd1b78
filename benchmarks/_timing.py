"""Side-by-side timing: variants interleaved round by round, medians compared as ratios.

Shared machines drift; running every variant once per round, in rotating
order, exposes all of them to the same drift, and the median of each
variant's step times is robust to the odd slow step. Performance claims are
ratios of these medians, never absolute times.

Two clocks are read around every call: wall time (``perf_counter``, after a
device synchronisation on accelerators) and the process's CPU time
(``process_time``). On a CPU shared with other busy processes the wall clock
also counts the time this process waited for a core; the CPU clock counts only
the work it did, so its ratios are the steadier measure of what a variant
costs there (with one thread, where no thread spins waiting for another). On an
accelerator only the wall clock means anything.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Timing:
    name: str
    median_s: float
    median_cpu_s: float
    samples: int

    def ratio_to(self, baseline: Timing, clock: str = "wall") -> float:
        if clock == "cpu":
            return self.median_cpu_s / baseline.median_cpu_s
        return self.median_s / baseline.median_s


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(
    steps: dict[str, Callable[[], object]],
    rounds: int,
    warmup: int = 2,
    device: torch.device | None = None,
) -> dict[str, Timing]:
    """Median seconds per call of each step function (wall and CPU), interleaved over ``rounds``."""
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
    _sync(device)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start, start_cpu = time.perf_counter(), time.process_time()
            steps[name]()
            _sync(device)
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    return {
        n: Timing(n, statistics.median(wall[n]), statistics.median(cpu[n]), len(wall[n]))
        for n in names
    }
