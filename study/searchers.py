"""Seeds as an axis of an Optuna search, and the bridge from Tune outcomes to Optuna trial states.

Ray's ``Repeater`` almost does this, but it loses its groups on restore, and
it hands the searcher a plain mean even for repeats that ASHA stopped early or
that failed. :class:`SeedRepeater` runs every configuration the inner searcher
suggests with seeds 0..K-1 and then tells it one outcome per configuration:

- COMPLETE with the mean over seeds when every seed ran all its epochs;
- PRUNED when the scheduler stopped any seed early (a truncated value would
  mislead TPE into preferring configs that were never allowed to finish);
- FAIL when any seed errored or diverged.

It also limits concurrency itself and checkpoints all of its state through
Tune's wrapper protocol (``get_state``/``set_state``; the inner searcher is
saved by Tune beside it), so a restored sweep neither loses groups nor
forgets trials that were in flight.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from ray.tune.search import Searcher

COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"


@dataclass
class _SeedGroup:
    primary: str
    config: dict[str, Any]
    seeds: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, tuple[str, float | None]] = field(default_factory=dict)


def classify(
    result: dict[str, Any] | None, error: bool, metric: str, epochs: int
) -> tuple[str, float | None]:
    """One trial's outcome for the searcher: (COMPLETE, value), (PRUNED, None) or (FAILED, None)."""
    if error or not result or result.get("failure") or metric not in result:
        return FAILED, None
    if result.get("training_iteration", epochs) < epochs:
        return PRUNED, None
    return COMPLETE, float(result[metric])


class SeedRepeater(Searcher):
    """Run each config of ``searcher`` with seeds 0..repeats-1, at most ``max_concurrent`` live."""

    def __init__(self, searcher: Searcher, repeats: int, epochs: int, max_concurrent: int) -> None:
        super().__init__(metric=searcher.metric, mode=searcher.mode)
        self.searcher = searcher
        self.repeats = repeats
        self.epochs = epochs
        self.max_concurrent = max_concurrent
        self._groups: list[_SeedGroup] = []
        self._group_of: dict[str, int] = {}
        self._live: set[str] = set()

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        if not self.searcher.set_search_properties(metric, mode, config, **spec):
            return False
        self._metric, self._mode = metric, mode
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if len(self._live) >= self.max_concurrent:
            return None
        group = self._groups[-1] if self._groups else None
        if group is None or len(group.seeds) == self.repeats:
            config = self.searcher.suggest(trial_id)
            if config is None or config == Searcher.FINISHED:
                return config
            group = _SeedGroup(trial_id, dict(config))
            self._groups.append(group)
        group.seeds[trial_id] = len(group.seeds)
        self._group_of[trial_id] = len(self._groups) - 1
        self._live.add(trial_id)
        return {**group.config, "seed": group.seeds[trial_id]}

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        self._live.discard(trial_id)
        if trial_id not in self._group_of:
            return
        group = self._groups[self._group_of[trial_id]]
        group.outcomes[trial_id] = classify(result, error, self.metric, self.epochs)
        if len(group.outcomes) == self.repeats:
            self._tell(group)

    def _tell(self, group: _SeedGroup) -> None:
        states = {state for state, _ in group.outcomes.values()}
        if FAILED in states:
            self.searcher.on_trial_complete(group.primary, result=None, error=True)
        elif PRUNED in states:
            self.searcher.on_trial_complete(group.primary, result=None, error=False)
        else:
            values = [value for _, value in group.outcomes.values()]
            mean = sum(values) / len(values)
            self.searcher.on_trial_complete(group.primary, result={self.metric: mean})

    def get_state(self) -> dict[str, Any]:
        """Everything but the inner searcher, which Tune saves and restores on its own."""
        state = {k: v for k, v in self.__dict__.items() if k != "searcher"}
        return copy.deepcopy(state)

    def set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
