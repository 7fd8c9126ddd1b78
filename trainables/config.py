"""One trial's configuration: flat, frozen, checked once at the boundary.

Flat on purpose: every key is one search-space axis, one MLflow param and one column in the
analysis tables. The core keys (data, model, optimization, seed) are declared here, each with
one constraint from which its check and its message derive. Every method knob (``da_p``,
``vcl_n``, ``lrd_p``, a plug-in's own) comes from its method record (:mod:`trainables.methods`):
this file names none of them, and a method added later brings its knobs with it.

A knob acts only while its method is on (``activation="drop_activation"``, ``norm="vcl"``,
``lrd_p < 1``); :meth:`TrainConfig.active_knobs` is the config without the knobs that do
nothing, what MLflow records and what a trial's identity hashes.

Three core keys say how a step runs rather than what it trains (:class:`trainables.train.
StepRuntime`): ``precision`` (``fp32``; ``bf16`` autocast; ``fp16`` autocast with a gradient
scaler), ``compile`` (``torch.compile`` of the step's forward and loss) and ``channels_last``
(NHWC memory for conv nets). Left at their defaults they are absent from ``active_knobs``, so
the configs recorded before them keep their identities; ``compile`` and ``channels_last`` never
enter a checkpoint's identity (a run may resume with them changed), ``precision`` does once set.

A variant of a sweep is applied with :func:`apply_variant`: its mapping-valued fields
(``arch``, ``augment_options``, ``data_options``) merge key by key into the trial's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainables.methods import (
    Constraint,
    Each,
    Interval,
    Method,
    Nullable,
    OneOf,
    Rule,
    get_method,
    knobs,
    list_methods,
    methods,
)

OPTIMIZERS = ("sgd", "rmsprop", "adam", "amsgrad", "radam", "adamw")
SCHEDULES = ("constant", "multistep", "cosine")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")
# Fields that hold a mapping of options: a variant's value merges into them key by key.
MAPPING_FIELDS = ("arch", "augment_options", "data_options")
# Fields that say where or how a trial runs, not what it trains.
PLACEMENT_FIELDS = ("data_dir", "device", "num_threads", "compile", "channels_last")
# How a step runs (trainables/train.py, ``StepRuntime``): recorded only when set away from the
# default, so the configs (and MLflow identities) of every trial before them are unchanged.
RUNTIME_DEFAULTS = {"precision": "fp32", "compile": False, "channels_last": False}

# Initial learning rates of the LRD paper (Table 1 setup), used when ``lr`` is not given.
PAPER_LR = {
    "sgd": 0.1,
    "rmsprop": 1e-3,
    "adam": 1e-3,
    "amsgrad": 1e-3,
    "radam": 0.03,
    "adamw": 1e-3,
}


def _names(kind: str) -> list[str]:
    from trainables.data import list_augmentations, list_datasets
    from trainables.models import list_models

    lists = {
        "dataset": list_datasets,
        "model": list_models,
        "augment": list_augmentations,
    }
    return lists[kind]()


def _model_options(model: str) -> tuple[str, ...]:
    from trainables.models import get_model_entry

    try:
        return get_model_entry(model).options
    except ValueError:
        return ()


def _gammas(value: Any) -> tuple:
    return value if isinstance(value, tuple) else (value,)


@dataclass(frozen=True)
class Field:
    """A core config key: its default and its one constraint."""

    name: str
    default: Any
    constraint: Constraint


_BOOL = Rule(lambda v, _: isinstance(v, bool), "must be true or false")
_POSITIVE_INT = Interval(1, None, integer=True)
FIELDS = (
    Field(
        "dataset",
        "digits",
        Rule(
            lambda v, _: v in _names("dataset") or str(v).startswith("uci:"),
            lambda _: f"choose one of {_names('dataset')}",
        ),
    ),
    Field("data_dir", None, Nullable(Rule(lambda v, _: isinstance(v, str), "must be a path"))),
    Field("val_fraction", 0.1, Interval(0, 1, closed="left")),
    Field("split_seed", 0, Interval(0, None, integer=True)),
    Field("train_subset", None, Nullable(_POSITIVE_INT)),
    Field("eval_subset", None, Nullable(_POSITIVE_INT)),
    Field("augment", (), Each(OneOf(lambda: _names("augment")))),
    Field(
        "augment_options",
        {},
        Rule(
            lambda v, _: all(k.split("_")[0] in _names("augment") for k in v),
            lambda _: f"keys are <augmentation>_<option>, augmentation one of {_names('augment')}",
        ),
    ),
    Field("data_options", {}, Rule(lambda v, _: isinstance(v, Mapping), "must be a mapping")),
    Field("to_rgb32", False, _BOOL),
    Field("model", "pgrid_cnn", OneOf(lambda: _names("model"))),
    Field(
        "arch",
        {},
        Rule(
            lambda v, c: set(v) <= set(_model_options(c.model)),
            lambda c: f"model {c.model!r} takes options {sorted(_model_options(c.model))}",
        ),
    ),
    Field("activation", "relu", OneOf(lambda: list_methods("activation"))),
    Field("norm", "bn", OneOf(lambda: list_methods("norm"))),
    Field("optimizer", "sgd", OneOf(OPTIMIZERS)),
    Field("lr", None, Nullable(Interval(0, None, closed="neither"))),
    Field("momentum", 0.9, Interval(0, 1, closed="left")),
    Field("nesterov", False, _BOOL),
    Field("weight_decay", 5e-4, Interval(0, None)),
    Field("schedule", "multistep", OneOf(SCHEDULES)),
    Field(
        "milestones",
        (),
        Rule(
            lambda v, _: all(isinstance(m, int) and m > 0 for m in v) and list(v) == sorted(set(v)),
            "must be increasing positive epoch numbers",
        ),
    ),
    Field(
        "lr_gamma",
        0.1,
        Rule(
            lambda v, c: (
                all(Interval(0, 1, "right").holds(g, c) for g in _gammas(v))
                and (not isinstance(v, tuple) or len(v) == len(c.milestones))
            ),
            "must be in (0, 1], or one such factor per milestone",
        ),
    ),
    Field("epochs", 10, _POSITIVE_INT),
    Field("batch_size", 128, _POSITIVE_INT),
    Field("eval_batch_size", 1024, _POSITIVE_INT),
    Field("eval_every", 1, _POSITIVE_INT),
    Field("seed", 0, Interval(0, None, integer=True)),
    Field("device", "auto", OneOf(DEVICES)),
    Field("num_threads", None, Nullable(_POSITIVE_INT)),
    Field("precision", "fp32", OneOf(PRECISIONS)),
    Field("compile", False, _BOOL),
    Field("channels_last", False, _BOOL),
)
_CORE = {f.name: f for f in FIELDS}
_TUPLES = ("augment", "milestones", "lr_gamma")


def _normalized(name: str, value: Any) -> Any:
    if name in _TUPLES and isinstance(value, list):
        return tuple(value)
    if name in MAPPING_FIELDS and isinstance(value, Mapping):
        return dict(value)
    return value


def _coerced(default: Any, value: Any) -> Any:
    """A float knob given as an int (``lrd_p: 1``) is the same float."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


class TrainConfig:
    """Everything one trial needs: data, model, optimization, the methods' knobs, seed.

    Frozen; built from keyword arguments (every core key and every registered knob) and
    validated as it is built: the first illegal value raises a ``ValueError`` naming the key,
    the value and what is allowed. A knob is checked when its method is on, or when it was set
    to something other than its default.
    """

    __slots__ = ("_values",)

    def __init__(self, **values: Any) -> None:
        table = knobs()
        unknown = sorted(set(values) - set(_CORE) - set(table))
        if unknown:
            known = sorted(set(_CORE) | set(table))
            raise ValueError(f"unknown config keys {unknown}; known keys are {known}")
        filled = {f.name: _normalized(f.name, values.get(f.name, f.default)) for f in FIELDS}
        for name, (_, knob) in table.items():
            filled[name] = _coerced(knob.default, values.get(name, knob.default))
        object.__setattr__(self, "_values", filled)
        self._check()

    def _check(self) -> None:
        for field in FIELDS:
            message = field.constraint.message(field.name, self._values[field.name], self)
            if message:
                raise ValueError(message)
        table = knobs()
        # Knobs set away from their default first: a wrongly typed one must be refused before
        # a method's "is it on?" test reads it.
        for name, (_, knob) in table.items():
            if self._values[name] != knob.default:
                self._raise_if_illegal(knob)
        for method in self.active_methods():
            for knob in method.knobs:
                self._raise_if_illegal(knob)

    def _raise_if_illegal(self, knob) -> None:
        message = knob.check(self._values[knob.name], self)
        if message:
            raise ValueError(message)

    def __getattr__(self, name: str) -> Any:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError(f"TrainConfig has no key {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("TrainConfig is frozen: use .replace(...)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TrainConfig) and self._values == other._values

    def __hash__(self) -> int:
        return hash(json.dumps(self._values, sort_keys=True, default=str))

    def __repr__(self) -> str:
        changed = {k: v for k, v in self._values.items() if v != _default(k)}
        return "TrainConfig(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    def __reduce__(self):
        return (_rebuild, (self.to_dict(),))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a (possibly partial) mapping; unknown keys raise with the known ones.

        Retired fields of older configs (a checkpoint's, a recorded trial's) are read as the
        training they meant: ``vcl_clip`` becomes ``clip_per_layer`` under ``norm="vcl"``
        (where it acted) and is dropped otherwise (where it did nothing).
        """
        return cls(**_read_retired(values))

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._values)

    def replace(self, **changes: Any) -> TrainConfig:
        return TrainConfig(**{**self._values, **changes})

    @property
    def learning_rate(self) -> float:
        return PAPER_LR[self.optimizer] if self.lr is None else self.lr

    def active_methods(self) -> list[Method]:
        """The records that act in this trial: its activation, its norm, and every additive
        method its knobs switch on."""
        chosen = [get_method(self.activation), get_method(self.norm)]
        return chosen + [m for m in methods() if m.slot == "additive" and m.is_active(self)]

    @property
    def needs_full_batches(self) -> bool:
        """Batch statistics (batchnorm, VCL's two subsets) need every training batch whole: a
        last batch of one sample would fail batchnorm, one under 2n would fail VCL."""
        return any(m.full_batches for m in self.active_methods())

    def augment_options_in_use(self) -> dict[str, float]:
        """The ``augment_options`` of the augmentations in ``augment`` (``cutout_size`` only
        with ``cutout``), so one option set can serve variants with and without an op."""
        return {k: v for k, v in self.augment_options.items() if k.split("_")[0] in self.augment}

    def activation_options(self) -> dict[str, Any]:
        """The activation module's arguments (``{"p": 0.95}`` for Drop-Activation)."""
        return get_method(self.activation).arguments(self)

    def norm_options(self) -> dict[str, Any]:
        """The norm layer's arguments (``{"n": 2, "per": "neuron"}`` for VCL)."""
        return get_method(self.norm).arguments(self)

    def active_knobs(self) -> dict[str, Any]:
        """The config without what does nothing: knobs of methods that are off, SGD's momentum
        under another optimizer, milestones without a multistep schedule, and the runtime
        options (precision, compile, channels-last) left at their defaults."""
        inactive = set(knobs()) | {k for k, v in RUNTIME_DEFAULTS.items() if self._values[k] == v}
        if self.optimizer != "sgd":
            inactive |= {"momentum", "nesterov"}
        if self.schedule != "multistep":
            inactive |= {"milestones", "lr_gamma"}
        values = {k: v for k, v in self.to_dict().items() if k not in inactive}
        for method in self.active_methods():
            values.update({k.name: self._values[k.name] for k in method.knobs})
        values["lr"] = self.learning_rate
        return values

    def identity(self) -> dict[str, Any]:
        """What makes two trials the same training: the active knobs without where it runs.

        A checkpoint resumes under a config of equal identity, so a default changed since for a
        knob that is off (or a moved data directory) does not strand a run."""
        return {k: v for k, v in self.active_knobs().items() if k not in PLACEMENT_FIELDS}


def _default(name: str) -> Any:
    if name in _CORE:
        return _CORE[name].default
    return knobs()[name][1].default


def _rebuild(values: dict[str, Any]) -> TrainConfig:
    return TrainConfig.from_dict(values)


def apply_variant(values: Mapping[str, Any], variant: Mapping[str, Any]) -> dict[str, Any]:
    """A trial config's ``values`` with a sweep variant's overrides on top.

    Mapping-valued fields (:data:`MAPPING_FIELDS`) merge key by key, the variant's keys
    winning: ``{arch: {dropout: 0.1}}`` on ``{arch: {depth: 34}}`` gives
    ``{arch: {depth: 34, dropout: 0.1}}``. Any other field is replaced. A variant that names
    another ``model`` replaces ``arch`` whole (the base's options belong to the base's model).
    The variant's ``name`` labels it and is not a config key.
    """
    merged = dict(values)
    new_model = "model" in variant and variant["model"] != values.get("model")
    for key, value in variant.items():
        if key == "name":
            continue
        base = merged.get(key)
        mergeable = key in MAPPING_FIELDS and not (key == "arch" and new_model)
        if mergeable and isinstance(value, Mapping) and isinstance(base, Mapping):
            merged[key] = {**base, **value}
        else:
            merged[key] = value
    return merged


def _read_retired(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """``values`` with retired fields mapped to today's (see :meth:`TrainConfig.from_dict`)."""
    if "vcl_clip" not in values:
        return values
    values = dict(values)
    clip = values.pop("vcl_clip")
    if values.get("norm", _CORE["norm"].default) == "vcl" and "clip_per_layer" not in values:
        values["clip_per_layer"] = clip
    return values
