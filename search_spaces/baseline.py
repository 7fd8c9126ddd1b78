"""No method knob: the base config alone, so a sweep is just its seeds (and any extra grid axes)."""

from ._base import SearchSpace

GRID = SearchSpace(
    name="none",
    method="baseline",
    description="the base config as given; only seeds and extra axes vary",
    grid={},
)
