"""What a Tune trial config holds beside a training config: the adapter's own settings, and the
``point`` a confirm phase repeats. Ray-free, so a spec is validated without importing Ray."""

from __future__ import annotations

from typing import Any

from .config import apply_variant

ADAPTER_KEYS = ("checkpoint_every", "search", "variant")
POINT = "point"


def lay_point(config: dict[str, Any]) -> dict[str, Any]:
    """A trial config with its ``point`` (an earlier trial's whole config and a display
    ``name``, from a spec's ``points``) laid over it, so it trains, and is recorded, exactly as
    that trial was, with its own seed."""
    point = config.get(POINT)
    if point is None:
        return config
    rest = {k: v for k, v in config.items() if k != POINT}
    return {**rest, **{k: v for k, v in point.items() if k != "name"}}


def training_values(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The training config's values (its variant applied) and the adapter's settings."""
    config = lay_point(config)
    settings = {k: config[k] for k in ADAPTER_KEYS if k in config}
    values = {k: v for k, v in config.items() if k not in ADAPTER_KEYS}
    return apply_variant(values, settings.get("variant", {})), settings
