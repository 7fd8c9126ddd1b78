"""Side-by-side timing: variants interleaved round by round, medians compared as ratios.

Shared machines drift; running every variant once per round, in rotating
order, exposes all of them to the same drift, and the median of each
variant's step times is robust to the odd slow step. Performance claims are
ratios of these medians, never absolute times.
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
    samples: int

    def ratio_to(self, baseline: Timing) -> float:
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
    """Median seconds per call of each step function, measured interleaved over ``rounds``."""
    names = list(steps)
    for name in names:
        for _ in range(warmup):
            steps[name]()
    _sync(device)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            start = time.perf_counter()
            steps[name]()
            _sync(device)
            samples[name].append(time.perf_counter() - start)
    return {n: Timing(n, statistics.median(samples[n]), len(samples[n])) for n in names}
