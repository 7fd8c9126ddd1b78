"""Search spaces: the Optuna spaces a sweep explores and the papers' grids.

Every method record (:mod:`trainables.methods`) brings its own: a record's ``space`` becomes
the space named after the method (``drop_activation``), each of its ``grids`` a grid space
(``drop_activation_grid``). Spaces that span methods (``joint``) and the method-less ``none``
are modules here. ``get_space(name)`` returns a :class:`SearchSpace`; ``list_spaces()`` the
names; an unknown name lists the valid ones.
"""

from __future__ import annotations

from importlib import import_module

from trainables.methods import methods

from ._base import SearchSpace
from ._checks import check_space

_MODULES: dict[str, tuple[str, str]] = {
    "joint": ("joint", "SPACE"),
    "joint_grid": ("joint", "GRID"),
    "none": ("baseline", "GRID"),
}


def _from_records() -> dict[str, SearchSpace]:
    spaces = {}
    for method in methods():
        if method.space is not None:
            spaces[method.name] = SearchSpace(
                name=method.name,
                method=method.name,
                description=method.space_description,
                constants=method.switch,
                define=method.space,
            )
        for name, grid in method.grids.items():
            spaces[name] = SearchSpace(
                name=name,
                method=method.name,
                description=grid.description,
                constants={**method.switch, **grid.constants},
                grid=grid.axes,
            )
    return spaces


def list_spaces() -> list[str]:
    return sorted({*_MODULES, *_from_records()})


def get_space(name: str) -> SearchSpace:
    """The space ``name``; an unknown name raises with the valid ones."""
    if name in _MODULES:
        module, attribute = _MODULES[name]
        return getattr(import_module(f"{__name__}.{module}"), attribute)
    spaces = _from_records()
    if name not in spaces:
        raise ValueError(f"unknown search space {name!r}; choose one of {list_spaces()}")
    return spaces[name]


__all__ = ["SearchSpace", "check_space", "get_space", "list_spaces"]
