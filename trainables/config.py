"""One trial's configuration: a frozen, flat dataclass checked once, at the boundary.

Flat on purpose: every field is one search-space axis, one MLflow param and
one column in the analysis tables. Method knobs (``da_p``, ``vcl_n``,
``vcl_gamma``, ``lrd_p``, ...) default to "off" or to the paper's value and
only act when their method is on (``activation="drop_activation"``,
``norm="vcl"``, ``lrd_p < 1``). ``clip_per_layer`` (per-layer gradient clipping, VCL's
stabiliser) is a knob of its own, for any arm, off unless set.

A variant of a sweep is applied with :func:`apply_variant`: its mapping-valued fields
(``arch``, ``augment_options``, ``data_options``) merge key by key into the trial's.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS = ("sgd", "rmsprop", "adam", "amsgrad", "radam", "adamw")
SCHEDULES = ("constant", "multistep", "cosine")
DEVICES = ("auto", "cpu", "cuda")
# Fields that hold a mapping of options: a variant's value merges into them key by key.
MAPPING_FIELDS = ("arch", "augment_options", "data_options")
# Fields that say where a trial runs, not what it trains.
PLACEMENT_FIELDS = ("data_dir", "device", "num_threads")

# Initial learning rates of the LRD paper (Table 1 setup), used when ``lr`` is not given.
PAPER_LR = {
    "sgd": 0.1,
    "rmsprop": 1e-3,
    "adam": 1e-3,
    "amsgrad": 1e-3,
    "radam": 0.03,
    "adamw": 1e-3,
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything one trial needs: data, model, optimization, regularizers, seed."""

    dataset: str = "digits"
    data_dir: str | None = None
    val_fraction: float = 0.1
    split_seed: int = 0
    train_subset: int | None = None
    eval_subset: int | None = None
    augment: tuple[str, ...] = ()
    augment_options: Mapping[str, float] = field(default_factory=dict)
    data_options: Mapping[str, Any] = field(default_factory=dict)
    to_rgb32: bool = False

    model: str = "pgrid_cnn"
    arch: Mapping[str, Any] = field(default_factory=dict)
    activation: str = "relu"
    da_p: float = 0.95
    leaky_slope: float = 0.2
    norm: str = "bn"
    vcl_n: int = 2
    vcl_per: str = "neuron"
    vcl_gamma: float = 0.01

    optimizer: str = "sgd"
    lr: float | None = None
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    clip_per_layer: float | None = None
    schedule: str = "multistep"
    milestones: tuple[int, ...] = ()
    lr_gamma: float | tuple[float, ...] = 0.1
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 1024
    eval_every: int = 1

    lrd_p: float = 1.0
    grad_dropout_p: float = 1.0
    grad_noise_eta: float = 0.0
    grad_noise_gamma: float = 0.55
    label_noise: float = 0.0

    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("augment", "milestones", "lr_gamma"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(value))
        for name in ("arch", "augment_options", "data_options"):
            object.__setattr__(self, name, dict(getattr(self, name)))
        for name, (allowed, description) in _RULES.items():
            value = getattr(self, name)
            if not _holds(allowed, value, self):
                raise ValueError(f"{name}={value!r} is not allowed: {description(self)}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build from a (possibly partial) mapping; unknown keys raise with the known ones.

        Retired fields of older configs (a checkpoint's, a recorded trial's) are read as the
        training they meant: ``vcl_clip`` becomes ``clip_per_layer`` under ``norm="vcl"``
        (where it acted) and is dropped otherwise (where it did nothing).
        """
        values = _read_retired(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; known keys are {sorted(known)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    @property
    def learning_rate(self) -> float:
        return PAPER_LR[self.optimizer] if self.lr is None else self.lr

    @property
    def uses_vcl(self) -> bool:
        return self.norm == "vcl"

    @property
    def needs_full_batches(self) -> bool:
        """Batch statistics (batchnorm, VCL's two subsets) need every training batch whole: a
        last batch of one sample would fail batchnorm, one under 2n would fail VCL."""
        return self.norm in ("bn", "vcl")

    def augment_options_in_use(self) -> dict[str, float]:
        """The ``augment_options`` of the augmentations in ``augment`` (``cutout_size`` only
        with ``cutout``), so one option set can serve variants with and without an op."""
        return {k: v for k, v in self.augment_options.items() if k.split("_")[0] in self.augment}

    def activation_options(self) -> dict[str, Any]:
        return _ACTIVATION_OPTIONS.get(self.activation, _no_options)(self)

    def norm_options(self) -> dict[str, Any]:
        return _NORM_OPTIONS.get(self.norm, _no_options)(self)

    def active_knobs(self) -> dict[str, Any]:
        """The config without knobs of methods that are off: what MLflow records and groups by."""
        inactive = set()
        if self.activation != "drop_activation":
            inactive.add("da_p")
        if self.activation != "leaky_relu":
            inactive.add("leaky_slope")
        if not self.uses_vcl:
            inactive |= {"vcl_n", "vcl_per", "vcl_gamma"}
        if self.clip_per_layer is None:
            inactive.add("clip_per_layer")
        if self.grad_noise_eta == 0:
            inactive.add("grad_noise_gamma")
        if self.optimizer != "sgd":
            inactive |= {"momentum", "nesterov"}
        if self.schedule != "multistep":
            inactive |= {"milestones", "lr_gamma"}
        values = {k: v for k, v in self.to_dict().items() if k not in inactive}
        values["lr"] = self.learning_rate
        return values

    def identity(self) -> dict[str, Any]:
        """What makes two trials the same training: the active knobs without where it runs.

        A checkpoint resumes under a config of equal identity, so a default changed since for a
        knob that is off (or a moved data directory) does not strand a run."""
        return {k: v for k, v in self.active_knobs().items() if k not in PLACEMENT_FIELDS}


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
    norm = values.get("norm", TrainConfig.norm)
    if norm == "vcl" and "clip_per_layer" not in values:
        values["clip_per_layer"] = clip
    return values


def _no_options(config: TrainConfig) -> dict[str, Any]:
    return {}


_ACTIVATION_OPTIONS: dict[str, Callable[[TrainConfig], dict[str, Any]]] = {
    "drop_activation": lambda c: {"p": c.da_p},
    "leaky_relu": lambda c: {"slope": c.leaky_slope},
}
_NORM_OPTIONS: dict[str, Callable[[TrainConfig], dict[str, Any]]] = {
    "vcl": lambda c: {"n": c.vcl_n, "per": c.vcl_per},
}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _holds(allowed: Callable[..., bool], value: Any, config: TrainConfig) -> bool:
    try:
        return bool(allowed(value, config))
    except TypeError:
        return False


def _registered(kind: str) -> Callable[[Any, TrainConfig], bool]:
    return lambda value, _: value in _names(kind)


def _names(kind: str) -> list[str]:
    from trainables.data import list_augmentations, list_datasets
    from trainables.layers import list_activations, list_norms
    from trainables.models import list_models

    lists = {
        "dataset": list_datasets,
        "model": list_models,
        "activation": list_activations,
        "norm": list_norms,
        "augment": list_augmentations,
    }
    return lists[kind]()


def _model_options(model: str) -> tuple[str, ...]:
    from trainables.models import get_model_entry

    try:
        return get_model_entry(model).options
    except ValueError:
        return ()


def _one_of(values: tuple[str, ...]) -> Callable[[TrainConfig], str]:
    return lambda _: f"choose one of {list(values)}"


_RULES: dict[str, tuple[Callable[[Any, TrainConfig], bool], Callable[[TrainConfig], str]]] = {
    "dataset": (
        lambda v, _: v in _names("dataset") or str(v).startswith("uci:"),
        lambda _: f"choose one of {_names('dataset')}",
    ),
    "val_fraction": (lambda v, _: _number(v) and 0 <= v < 1, lambda _: "must be in [0, 1)"),
    "split_seed": (lambda v, _: _integer(v) and v >= 0, lambda _: "must be an integer >= 0"),
    "train_subset": (
        lambda v, _: v is None or (_integer(v) and v >= 1),
        lambda _: "must be a positive number of training examples, or null for all",
    ),
    "eval_subset": (
        lambda v, _: v is None or (_integer(v) and v >= 1),
        lambda _: "must be a positive number of validation/test examples, or null for all",
    ),
    "augment": (
        lambda v, _: all(a in _names("augment") for a in v),
        lambda _: f"each must be one of {_names('augment')}",
    ),
    "augment_options": (
        lambda v, _: all(k.split("_")[0] in _names("augment") for k in v),
        lambda _: f"keys are <augmentation>_<option>, augmentation one of {_names('augment')}",
    ),
    "model": (_registered("model"), lambda _: f"choose one of {_names('model')}"),
    "arch": (
        lambda v, c: set(v) <= set(_model_options(c.model)),
        lambda c: f"model {c.model!r} takes options {sorted(_model_options(c.model))}",
    ),
    "activation": (_registered("activation"), lambda _: f"choose one of {_names('activation')}"),
    "da_p": (
        lambda v, _: _number(v) and 0 < v <= 1,
        lambda _: "Drop-Activation p must be in (0, 1]",
    ),
    "leaky_slope": (lambda v, _: _number(v) and 0 <= v < 1, lambda _: "must be in [0, 1)"),
    "norm": (_registered("norm"), lambda _: f"choose one of {_names('norm')}"),
    "vcl_n": (
        lambda v, c: _integer(v) and v >= 2 and 2 * v <= c.batch_size,
        lambda c: f"VCL n must be an integer in [2, batch_size / 2 = {c.batch_size // 2}]",
    ),
    "vcl_per": (lambda v, _: v in ("channel", "neuron"), _one_of(("channel", "neuron"))),
    "vcl_gamma": (lambda v, _: _number(v) and v >= 0, lambda _: "must be >= 0"),
    "optimizer": (lambda v, _: v in OPTIMIZERS, _one_of(OPTIMIZERS)),
    "lr": (lambda v, _: v is None or (_number(v) and v > 0), lambda _: "must be > 0 or null"),
    "momentum": (lambda v, _: _number(v) and 0 <= v < 1, lambda _: "must be in [0, 1)"),
    "weight_decay": (lambda v, _: _number(v) and v >= 0, lambda _: "must be >= 0"),
    "clip_per_layer": (
        lambda v, _: v is None or (_number(v) and v > 0),
        lambda _: "must be > 0 (the largest L2 norm of each layer's gradient), or null for none",
    ),
    "schedule": (lambda v, _: v in SCHEDULES, _one_of(SCHEDULES)),
    "milestones": (
        lambda v, _: all(_integer(m) and m > 0 for m in v) and list(v) == sorted(set(v)),
        lambda _: "must be increasing positive epoch numbers",
    ),
    "lr_gamma": (
        lambda v, c: (
            all(_number(g) and 0 < g <= 1 for g in (v if isinstance(v, tuple) else (v,)))
            and (not isinstance(v, tuple) or len(v) == len(c.milestones))
        ),
        lambda _: "must be in (0, 1], or one such factor per milestone",
    ),
    "epochs": (lambda v, _: _integer(v) and v >= 1, lambda _: "must be an integer >= 1"),
    "batch_size": (lambda v, _: _integer(v) and v >= 1, lambda _: "must be an integer >= 1"),
    "eval_batch_size": (lambda v, _: _integer(v) and v >= 1, lambda _: "must be an integer >= 1"),
    "eval_every": (
        lambda v, _: _integer(v) and v >= 1,
        lambda _: "must be an integer >= 1 (epochs between evaluations; the last is always one)",
    ),
    "lrd_p": (lambda v, _: _number(v) and 0 < v <= 1, lambda _: "LRD p must be in (0, 1]"),
    "grad_dropout_p": (lambda v, _: _number(v) and 0 < v <= 1, lambda _: "must be in (0, 1]"),
    "grad_noise_eta": (lambda v, _: _number(v) and v >= 0, lambda _: "must be >= 0"),
    "grad_noise_gamma": (lambda v, _: _number(v) and v >= 0, lambda _: "must be >= 0"),
    "label_noise": (lambda v, _: _number(v) and 0 <= v < 1, lambda _: "must be in [0, 1)"),
    "seed": (lambda v, _: _integer(v) and v >= 0, lambda _: "must be an integer >= 0"),
    "device": (lambda v, _: v in DEVICES, _one_of(DEVICES)),
    "num_threads": (
        lambda v, _: v is None or (_integer(v) and v >= 1),
        lambda _: "must be an integer >= 1 or null",
    ),
}
