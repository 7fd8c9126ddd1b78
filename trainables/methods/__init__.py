"""The method registry: every regularizer and baseline is a :class:`Method` record.

Built-in records live beside their code and are listed once in ``_BUILTIN``; a package
outside this repository adds its own under the entry-point group ``regstudy.methods``
(``[project.entry-points."regstudy.methods"] dropconnect = "mypkg.dropconnect:RECORD"``),
found the first time the registry is read. See docs/methods.md.
"""

from __future__ import annotations

import threading
from importlib import import_module, metadata

from ._constraints import Bound, Constraint, Each, Interval, Nullable, OneOf, Rule
from ._record import SLOTS, Grid, Knob, Method

ENTRY_POINT_GROUP = "regstudy.methods"
_BUILTIN = (
    "trainables.layers.activations:RELU",
    "trainables.layers.activations:LEAKY_RELU",
    "trainables.layers.activations:ELU",
    "trainables.layers.activations:SELU",
    "trainables.layers.activations:RRELU",
    "trainables.regularizers.drop_activation:RECORD",
    "trainables.layers.norms:BN",
    "trainables.layers.norms:LN",
    "trainables.layers.norms:GN",
    "trainables.layers.norms:NONE",
    "trainables.regularizers.vcl:RECORD",
    "trainables.regularizers.vcl:CLIP_PER_LAYER",
    "trainables.regularizers.lrd:RECORD",
    "trainables.regularizers.lrd:GRADIENT_DROPOUT",
    "trainables.regularizers.noise:GRADIENT_NOISE",
    "trainables.regularizers.noise:LABEL_NOISE",
    "trainables.regularizers.dropconnect:RECORD",
)

_METHODS: dict[str, Method] = {}
_KNOBS: dict[str, tuple[Method, Knob]] = {}
_LOCK = threading.RLock()
_LOADED = False


def register_method(method: Method) -> Method:
    """Add ``method``; its name and every knob name must be new."""
    with _LOCK:
        if method.name in _METHODS:
            raise ValueError(f"method {method.name!r} is already registered")
        clash = sorted(k.name for k in method.knobs if k.name in _KNOBS)
        if clash:
            owners = sorted({_KNOBS[k][0].name for k in clash})
            raise ValueError(f"method {method.name!r}: knobs {clash} already belong to {owners}")
        _METHODS[method.name] = method
        for knob in method.knobs:
            _KNOBS[knob.name] = (method, knob)
    return method


def _load(reference: str) -> Method:
    module, attribute = reference.split(":")
    return getattr(import_module(module), attribute)


def _ensure_loaded() -> None:
    """Register the built-in records, then the plug-ins' (once, on first use)."""
    global _LOADED
    if _LOADED:
        return
    with _LOCK:
        if _LOADED:
            return
        try:
            for reference in _BUILTIN:
                register_method(_load(reference))
            for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
                record = entry.load()
                if not isinstance(record, Method):
                    raise TypeError(
                        f"entry point {entry.name!r} ({entry.value}) of {ENTRY_POINT_GROUP!r} "
                        f"is a {type(record).__name__}, not a trainables.methods.Method"
                    )
                register_method(record)
        except BaseException:
            _METHODS.clear()
            _KNOBS.clear()
            raise
        _LOADED = True


def list_methods(slot: str | None = None) -> list[str]:
    """Registered method names (of one ``slot``: activation, norm or additive)."""
    _ensure_loaded()
    return sorted(n for n, m in _METHODS.items() if slot is None or m.slot == slot)


def get_method(name: str) -> Method:
    _ensure_loaded()
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {list_methods()}")
    return _METHODS[name]


def methods() -> list[Method]:
    _ensure_loaded()
    return list(_METHODS.values())


def knobs() -> dict[str, tuple[Method, Knob]]:
    """Every knob name -> (its method, the knob)."""
    _ensure_loaded()
    return dict(_KNOBS)


__all__ = [
    "ENTRY_POINT_GROUP",
    "SLOTS",
    "Bound",
    "Constraint",
    "Each",
    "Grid",
    "Interval",
    "Knob",
    "Method",
    "Nullable",
    "OneOf",
    "Rule",
    "get_method",
    "knobs",
    "list_methods",
    "methods",
    "register_method",
]
