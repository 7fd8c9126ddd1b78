"""Check a space against what its methods accept, before any trial runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainables.config import TrainConfig

from ._base import SearchSpace


def check_space(space: SearchSpace, base: Mapping[str, Any]) -> None:
    """Raise ValueError if any point at the bounds of ``space``, on top of ``base``, is illegal.

    Keys with a ``/`` (``search/use_vcl``) steer the search itself and are not checked.
    """
    for point in space.extreme_points():
        trial_keys = {k: v for k, v in point.items() if "/" not in k}
        try:
            TrainConfig.from_dict({**base, **trial_keys})
        except ValueError as err:
            raise ValueError(
                f"search space {space.name!r} reaches an illegal config: {err}"
            ) from None
