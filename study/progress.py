"""A one-line progress report each time a trial ends: counts, and the best config so far."""

from __future__ import annotations

import math
import sys
from typing import Any

from ray.tune import Callback

from trainables.tune import split_config

_SHOWN = ("activation", "norm", "optimizer", "model")


def _describe(config: dict[str, Any]) -> str:
    """The trial's choices and the knobs of the methods that act in it (from their records)."""
    try:
        train, settings = split_config(config)
    except ValueError:
        return ", ".join(f"{k}={v}" for k, v in config.items() if not isinstance(v, dict))
    shown = {k: getattr(train, k) for k in _SHOWN}
    for method in train.active_methods():
        shown.update({k.name: getattr(train, k.name) for k in method.knobs})
    if "variant" in settings:
        shown["variant"] = settings["variant"].get("name")
    shown["seed"] = train.seed
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def _failed(trial) -> bool:
    return trial.status == "ERROR" or bool((trial.last_result or {}).get("failure"))


class ProgressPrinter(Callback):
    """Prints ``[sweep] 7/27 done (1 failed, 2 running) | best val_error 0.0810 (da_p=0.95)``."""

    def __init__(self, metric: str, mode: str, expected: int) -> None:
        self.metric, self.mode, self.expected = metric, mode, expected
        self.best: tuple[float, dict[str, Any]] | None = None

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best[0] if self.mode == "min" else value > self.best[0]

    def line(self, trials, ended, ended_with_error: bool) -> str:
        others = [t for t in trials if t is not ended]
        finished = [t for t in others if t.status in ("TERMINATED", "ERROR")]
        failed = sum(_failed(t) for t in finished) + (ended_with_error or _failed(ended))
        running = sum(t.status == "RUNNING" for t in others)
        best = ""
        if self.best is not None:
            best = f" | best {self.metric} {self.best[0]:.4f} ({_describe(self.best[1])})"
        done = len(finished) + 1
        return f"[sweep] {done}/{self.expected} done ({failed} failed, {running} running){best}"

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        value = (trial.last_result or {}).get(self.metric)
        if isinstance(value, (int, float)) and math.isfinite(value) and self._better(value):
            self.best = (float(value), dict(trial.config))
        print(self.line(trials, trial, False), file=sys.stderr, flush=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        print(self.line(trials, trial, True), file=sys.stderr, flush=True)
