"""Search spaces, one module per method: the Optuna spaces a sweep explores and the papers' grids.

``get_space(name)`` returns a :class:`SearchSpace`; ``list_spaces()`` the names.
A new space is one module plus one line in ``_REGISTRY``.
"""

from __future__ import annotations

from importlib import import_module

from ._base import SearchSpace
from ._checks import check_space

_REGISTRY: dict[str, tuple[str, str]] = {
    "drop_activation": ("drop_activation", "SPACE"),
    "drop_activation_grid": ("drop_activation", "GRID"),
    "vcl": ("vcl", "SPACE"),
    "vcl_grid": ("vcl", "GRID"),
    "lrd": ("lrd", "SPACE"),
    "lrd_grid": ("lrd", "GRID"),
    "joint": ("joint", "SPACE"),
    "joint_grid": ("joint", "GRID"),
    "none": ("baseline", "GRID"),
}


def list_spaces() -> list[str]:
    return sorted(_REGISTRY)


def get_space(name: str) -> SearchSpace:
    """The registered space ``name``; an unknown name raises with the valid ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown search space {name!r}; choose one of {list_spaces()}")
    module, attribute = _REGISTRY[name]
    return getattr(import_module(f"{__name__}.{module}"), attribute)


__all__ = ["SearchSpace", "check_space", "get_space", "list_spaces"]
