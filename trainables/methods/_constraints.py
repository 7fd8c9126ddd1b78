"""Constraints declared once, from which both the check and the message derive (sklearn's habit).

``Interval(0, 1, closed="right")`` checks ``0 < v <= 1`` and says "a number in (0, 1]"; a bound
may depend on the rest of the config (``Interval(2, Bound(lambda c: c.batch_size // 2,
"batch_size / 2"), integer=True)``), and the message then shows its value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Constraint:
    """What a value may be: ``holds(value, config)`` and ``describe(config)`` say the same."""

    def holds(self, value: Any, config: Any) -> bool:
        raise NotImplementedError

    def describe(self, config: Any) -> str:
        raise NotImplementedError

    def message(self, name: str, value: Any, config: Any) -> str | None:
        """``None`` if ``value`` is allowed, else "name=value is not allowed: must be ..."."""
        try:
            ok = self.holds(value, config)
        except (TypeError, ValueError):
            ok = False
        return None if ok else f"{name}={value!r} is not allowed: {self.describe(config)}"


@dataclass(frozen=True)
class Bound:
    """A bound computed from the config, with the name it is shown by."""

    value: Callable[[Any], float]
    label: str


def _bound(bound: float | Bound | None, config: Any) -> float | None:
    return bound.value(config) if isinstance(bound, Bound) else bound


def _shown(bound: float | Bound | None, config: Any) -> str:
    if isinstance(bound, Bound):
        return f"{bound.label} = {_bound(bound, config):g}"
    return "∞" if bound is None else f"{bound:g}"


@dataclass(frozen=True)
class Interval(Constraint):
    """A number between ``low`` and ``high`` (None: unbounded); ``closed`` says which ends
    belong: "both", "left", "right" or "neither". ``integer`` asks for an int."""

    low: float | Bound | None = None
    high: float | Bound | None = None
    closed: str = "both"
    integer: bool = False

    def holds(self, value: Any, config: Any) -> bool:
        if not (is_integer(value) if self.integer else is_number(value)):
            return False
        low, high = _bound(self.low, config), _bound(self.high, config)
        left = self.closed in ("both", "left")
        right = self.closed in ("both", "right")
        above = low is None or (value >= low if left else value > low)
        below = high is None or (value <= high if right else value < high)
        return above and below

    def describe(self, config: Any) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.high is None and self.low is not None:
            sign = ">=" if self.closed in ("both", "left") else ">"
            return f"must be {kind} {sign} {_shown(self.low, config)}"
        opening = "[" if self.closed in ("both", "left") else "("
        closing = "]" if self.closed in ("both", "right") else ")"
        return (
            f"must be {kind} in {opening}{_shown(self.low, config)}, "
            f"{_shown(self.high, config)}{closing}"
        )


@dataclass(frozen=True)
class OneOf(Constraint):
    """One of ``choices`` (a sequence, or a function of nothing giving one: a registry)."""

    choices: Sequence[Any] | Callable[[], Sequence[Any]]

    def options(self) -> list[Any]:
        return list(self.choices() if callable(self.choices) else self.choices)

    def holds(self, value: Any, config: Any) -> bool:
        return value in self.options()

    def describe(self, config: Any) -> str:
        return f"choose one of {self.options()}"


@dataclass(frozen=True)
class Nullable(Constraint):
    """``None``, or what ``inner`` allows."""

    inner: Constraint

    def holds(self, value: Any, config: Any) -> bool:
        return value is None or self.inner.holds(value, config)

    def describe(self, config: Any) -> str:
        return f"{self.inner.describe(config)}, or null"


@dataclass(frozen=True)
class Each(Constraint):
    """A sequence whose every element ``inner`` allows."""

    inner: Constraint

    def holds(self, value: Any, config: Any) -> bool:
        return isinstance(value, (list, tuple)) and all(self.inner.holds(v, config) for v in value)

    def describe(self, config: Any) -> str:
        return f"each {self.inner.describe(config).removeprefix('must be ')}"


@dataclass(frozen=True)
class Rule(Constraint):
    """A constraint no simpler declaration states, still one object: its check and its words."""

    check: Callable[[Any, Any], bool]
    words: Callable[[Any], str] | str

    def holds(self, value: Any, config: Any) -> bool:
        return bool(self.check(value, config))

    def describe(self, config: Any) -> str:
        return self.words(config) if callable(self.words) else self.words
