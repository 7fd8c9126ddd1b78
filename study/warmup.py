"""Imports a sweep's ending needs, done while its trials train instead of after the last one.

After Tune returns, the driver summarises the trials (``scipy.stats``'s intervals) and the CLI
draws the p-grid curve (matplotlib): ~1 s of imports between the last training step and the
sweep's end, on a driver that sat idle for the whole sweep. :class:`ImportWhileTraining` starts
them in a thread once the first trial has reported, so they stay off the path to the first
training step too (on a small machine the trial workers' own imports need every core then).
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Sequence
from typing import Any

from ray.tune import Callback

ENDING_IMPORTS = ("scipy.stats", "analysis.plots")
_started: list[threading.Thread] = []


class ImportWhileTraining(Callback):
    """Tune callback: import ``modules`` in a daemon thread after the first trial result (also
    when Tune restores the callback with a resumed sweep). A module that fails to import is left
    for the ending to import, and report, itself."""

    def __init__(self, modules: Sequence[str] = ENDING_IMPORTS) -> None:
        self.modules = tuple(modules)
        self._began = False

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        if not self._began:
            self._began = True
            thread = threading.Thread(target=_import, args=(self.modules,), name="warm-imports")
            thread.daemon = True
            _started.append(thread)
            thread.start()


def _import(modules: tuple[str, ...]) -> None:
    for name in modules:
        if name not in sys.modules:
            try:
                importlib.import_module(name)
            except Exception:  # the ending imports it again and says what is wrong
                return


def wait_for_imports() -> None:
    """Wait for every import thread begun, so that the process never exits in the middle of
    an import (a sweep stopped early may end without the modules)."""
    while _started:
        _started.pop().join()
