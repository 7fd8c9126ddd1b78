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

A ratio is paired: each round's step time over the baseline's in the same round,
whose neighbours in time shared the machine's state, then the median over rounds;
its 95% interval is a bootstrap of that median over the rounds (scipy). On a
shared 2-core machine a ratio moves by a few hundredths from run to run; the
interval says how far.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats


@dataclass(frozen=True)
class Timing:
    """One step function's seconds per call, per round in round order, on both clocks."""

    name: str
    wall_s: tuple[float, ...]
    cpu_s: tuple[float, ...] = ()

    @property
    def median_s(self) -> float:
        return statistics.median(self.wall_s)

    @property
    def median_cpu_s(self) -> float:
        return statistics.median(self.cpu_s)

    @property
    def samples(self) -> int:
        return len(self.wall_s)

    def _paired(self, baseline: Timing, clock: str) -> np.ndarray:
        if clock == "cpu":
            return np.asarray(self.cpu_s) / np.asarray(baseline.cpu_s)
        return np.asarray(self.wall_s) / np.asarray(baseline.wall_s)

    def ratio_to(self, baseline: Timing, clock: str = "wall") -> float:
        """The median over rounds of this step's time over the baseline's in the same round."""
        return float(np.median(self._paired(baseline, clock)))

    def ratio_interval(self, baseline: Timing, clock: str = "wall") -> tuple[float, float]:
        """A 95% bootstrap interval of :meth:`ratio_to` over the rounds."""
        ratios = self._paired(baseline, clock)
        if len(ratios) < 3:
            return float("nan"), float("nan")
        found = stats.bootstrap(
            (ratios,), np.median, n_resamples=2000, method="percentile", random_state=0
        )
        return float(found.confidence_interval.low), float(found.confidence_interval.high)


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
    return {n: Timing(n, tuple(wall[n]), tuple(cpu[n])) for n in names}
