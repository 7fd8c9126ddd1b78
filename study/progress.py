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


def _diverged(trial) -> bool:
    return trial.status != "ERROR" and bool((trial.last_result or {}).get("failure"))


class ProgressPrinter(Callback):
    """Prints ``[sweep] 7/27 done (1 diverged, 0 errored, 2 running) | best val_error 0.0810
    (da_p=0.95, …)`` each time a trial ends.

    Everything is counted from the trials Tune hands over, so after ``study resume`` the trials
    that ended before the interruption (restored with their status and last result) count in
    "done" and in "best" too. A diverged trial (its last report names the failure) is done but
    never best; an errored one crashed. Tune pickles this callback with the experiment: it keeps
    no state of its own.
    """

    def __init__(self, metric: str, mode: str, expected: int) -> None:
        self.metric, self.mode, self.expected = metric, mode, expected

    def _best(self, trials) -> tuple[float, dict[str, Any]] | None:
        sign = 1.0 if self.mode == "min" else -1.0
        scored = [
            (float(value), trial)
            for trial in trials
            if isinstance(value := (trial.last_result or {}).get(self.metric), (int, float))
            and math.isfinite(value)
        ]
        if not scored:
            return None
        value, trial = min(scored, key=lambda pair: sign * pair[0])
        return value, dict(trial.config)

    def line(self, trials, ended, ended_with_error: bool) -> str:
        others = [t for t in trials if t is not ended]
        done = [t for t in others if t.status in ("TERMINATED", "ERROR")] + [ended]
        errored = {id(t) for t in done if t.status == "ERROR"} | (
            {id(ended)} if ended_with_error else set()
        )
        diverged = {id(t) for t in done if id(t) not in errored and _diverged(t)}
        running = sum(t.status == "RUNNING" for t in others)
        best = self._best(t for t in done if id(t) not in errored | diverged)
        shown = ""
        if best is not None:
            shown = f" | best {self.metric} {best[0]:.4f} ({_describe(best[1])})"
        counts = f"{len(diverged)} diverged, {len(errored)} errored, {running} running"
        return f"[sweep] {len(done)}/{self.expected} done ({counts}){shown}"

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        print(self.line(trials, trial, False), file=sys.stderr, flush=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        print(self.line(trials, trial, True), file=sys.stderr, flush=True)
