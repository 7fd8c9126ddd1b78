"""Swap a model's activation modules for new ones, e.g. every ReLU for Drop-Activation."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn


def _included(name: str, include: Sequence[str] | None) -> bool:
    if include is None:
        return True
    return any(name == prefix or name.startswith(prefix + ".") for prefix in include)


def replace_activations(
    model: nn.Module,
    factory: Callable[[], nn.Module],
    include: Sequence[str] | None = None,
    target: type[nn.Module] | tuple[type[nn.Module], ...] = nn.ReLU,
) -> int:
    """Replace every ``target`` module of ``model`` by ``factory()``; return how many were replaced.

    ``include`` limits the swap to submodules whose qualified names start with
    one of its prefixes, e.g. ``("layer3", "layer4")`` for the Drop-Activation
    paper's ImageNet rule (last two stages only). Raises ``ValueError`` if
    nothing matched, which almost always means a wrong prefix or class.
    """
    if isinstance(include, str):
        include = (include,)
    matches = [
        name
        for name, module in model.named_modules()
        if name and isinstance(module, target) and _included(name, include)
    ]
    for name in matches:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, factory())
    if not matches:
        targets = target if isinstance(target, tuple) else (target,)
        raise ValueError(
            f"replace_activations found no {' or '.join(t.__name__ for t in targets)} modules"
            + (f" under {list(include)}" if include is not None else "")
            + f" in {type(model).__name__}"
        )
    return len(matches)
