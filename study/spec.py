"""The sweep spec: a YAML file, overridable field by field from the CLI, validated up front.

Validation happens here, once (scikit-learn's habit): a bad spec names the
field, the value and what is allowed, and no Ray process or MLflow run is
started. Paths and URIs are made absolute here, because Ray runs trials in
their own working directories.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from search_spaces import check_space, get_space, list_spaces
from trainables.config import TrainConfig, apply_variant
from trainables.trial_config import training_values

METRICS = (
    "val_error",
    "val_loss",
    "test_error",
    "test_loss",
    "train_error",
    "train_loss",
    "best_val_error",
    "test_error_at_best",
)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
DEFAULT_TRACKING_URI = "sqlite:///mlruns.db"
DEFAULT_ARTIFACTS = "mlartifacts"
OPTUNA_DB = "optuna.db"
# Trial-config keys that say where or how a trial runs, not what it is: not part of its identity.
PLACEMENT_KEYS = ("data_dir", "device", "num_threads", "seed")
UNMEANING_FIELDS = ("skip", "tracking_uri", "storage_path", "optuna_storage", "address")
SEED_BUDGET = ("repeats", "first_seed", "max_concurrent")  # which seeds run, not what one means


class SpecError(ValueError):
    """A spec that fails validation; ``str()`` lists every problem, one per line."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budget(_Section):
    epochs: int = Field(10, ge=1)
    num_samples: int = Field(1, ge=1, description="configs Optuna samples; ignored by grids")
    repeats: int = Field(1, ge=1, description="seeds first_seed..first_seed+repeats-1 per config")
    first_seed: int = Field(0, ge=0, description="the first seed (`study confirm` adds seeds)")
    max_concurrent: int = Field(2, ge=1)


class Resources(_Section):
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)

    @field_validator("gpus_per_trial")
    @classmethod
    def _whole_above_one(cls, value: float) -> float:
        if value > 1 and not float(value).is_integer():
            raise ValueError(
                f"{value:g} is not allowed: a fraction of a GPU must be below 1; "
                "above 1 use whole GPUs"
            )
        return value


class Scheduler(_Section):
    kind: Literal["fifo", "asha"] = "fifo"
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(3.0, gt=1)


class Spec(_Section):
    """A validated sweep: what to train (``train``), what to vary (``space``, ``grid``), and how."""

    name: str = Field(pattern=NAME_PATTERN)
    experiment: str | None = Field(None, pattern=NAME_PATTERN)
    space: str = "none"
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)
    points: list[dict[str, Any]] = Field(
        default_factory=list,
        description="whole trial configs, each with a display name, run with every seed",
    )
    skip: list[str] = Field(
        default_factory=list,
        description="trials of the grid left out as 'CONFIG_ID:SEED': finished in an earlier "
        "store, as a report's run ledger holds them",
    )
    train: dict[str, Any] = Field(default_factory=dict)
    budget: Budget = Budget()
    resources: Resources = Resources()
    scheduler: Scheduler = Scheduler()
    metric: str = "val_error"
    mode: Literal["min", "max"] = "min"
    search_seed: int = Field(0, ge=0)
    checkpoint_every: int = Field(1, ge=1)
    tracking_uri: str | None = None
    storage_path: str = "ray_results"
    optuna_storage: str | None = None
    address: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("space")
    @classmethod
    def _known_space(cls, value: str) -> str:
        if value not in list_spaces():
            raise ValueError(f"unknown search space {value!r}; choose one of {list_spaces()}")
        return value

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; choose one of {list(METRICS)}")
        return value

    @field_validator("grid")
    @classmethod
    def _grid_axes(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for axis, values in value.items():
            if axis == "seed":
                raise ValueError("seeds are an axis of every sweep: use budget.repeats")
            if not values:
                raise ValueError(f"grid axis {axis!r} has no values")
        return value

    @field_validator("optuna_storage")
    @classmethod
    def _storage_url(cls, value: str | None) -> str | None:
        if value is not None and "://" not in value:
            raise ValueError(_not_a_url(value))
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None or value == "auto" or value.startswith("ray://") or ":" in value:
            return value
        raise ValueError(f"address must be 'auto', 'ray://HOST:PORT' or HOST:PORT, got {value!r}")

    @model_validator(mode="after")
    def _trial_configs_are_legal(self) -> Spec:
        base = self.base_config()
        try:
            TrainConfig.from_dict(base)
        except ValueError as err:
            raise ValueError(f"train: {err}") from None
        for axis, values in self.grid.items():
            for value in values:
                try:
                    TrainConfig.from_dict({**base, axis: value})
                except ValueError as err:
                    raise ValueError(f"grid.{axis}: {err}") from None
        for variant, overrides in self.variants.items():
            try:
                TrainConfig.from_dict(apply_variant(base, overrides))
            except ValueError as err:
                raise ValueError(f"variants.{variant}: {err}") from None
        self._points_are_legal(base)
        space = get_space(self.space)
        if self.points and space.grid:
            raise ValueError(
                f"points: whole configs need space 'none', not {self.space!r} (its grid would "
                "cross them)"
            )
        if (self.grid or self.variants or self.points or self.skip) and space.kind != "grid":
            raise ValueError(
                f"grid: extra grid axes need a grid space; {self.space!r} is an Optuna space"
            )
        check_space(space, base)
        if self.metric.startswith("val_") and base.get("val_fraction", 0.1) == 0:
            raise ValueError(
                f"metric={self.metric!r} is not allowed with train.val_fraction=0: it needs a "
                "validation split; choose a test_ or train_ metric, or val_fraction > 0"
            )
        if self.scheduler.kind == "asha" and self.scheduler.grace_period > self.budget.epochs:
            raise ValueError(
                f"scheduler.grace_period={self.scheduler.grace_period} is not allowed: must be "
                f"at most budget.epochs = {self.budget.epochs}"
            )
        if self.address is None:
            self._devices_exist(base)
        return self

    def _points_are_legal(self, base: dict[str, Any]) -> None:
        """Each point is a named whole trial config; points are a sweep's only axis but seeds."""
        if not self.points:
            return
        if self.grid or self.variants:
            raise ValueError("points: whole configs cannot be crossed with grid or variants")
        names = [point.get("name") for point in self.points]
        for i, (name, point) in enumerate(zip(names, self.points)):
            if not isinstance(name, str) or not name:
                raise ValueError(f"points[{i}]: needs a 'name' (how its runs are shown)")
            if name in names[:i]:
                raise ValueError(f"points[{i}]: name {name!r} is used twice")
            try:
                TrainConfig.from_dict(training_values({**base, "point": point})[0])
            except ValueError as err:
                raise ValueError(f"points[{i}] ({name}): {err}") from None

    def _devices_exist(self, base: dict[str, Any]) -> None:
        """A local sweep asking for ``device: cuda`` needs a CUDA device here (a cluster's
        workers may have one: with an ``address`` that is for Ray's resources to say)."""
        asked = [("train.device", base.get("device"))]
        asked += [("grid.device", value) for value in self.grid.get("device", [])]
        asked += [(f"variants.{v}.device", o.get("device")) for v, o in self.variants.items()]
        where = next((field for field, device in asked if device == "cuda"), None)
        if where is None:
            return
        import torch  # only here: validating a spec should not cost torch's import otherwise

        if not torch.cuda.is_available():
            raise ValueError(
                f"{where}='cuda' is not allowed: this machine has no CUDA device; use 'auto' "
                "or 'cpu', or run on a cluster with --address"
            )

    def base_config(self) -> dict[str, Any]:
        """The trial config every trial starts from, before the space and grid vary it."""
        threads = max(1, int(self.resources.cpus_per_trial))
        return {"epochs": self.budget.epochs, "num_threads": threads, **self.train}

    def fingerprint(self) -> str:
        """What each trial of the sweep means, hashed: its spec but where it runs, how many seeds
        and which trials ran elsewhere (``skip``), fields at their defaults left out (so a field
        added later does not change it): a sweep continued from a report's run ledger, or with
        more seeds, matches the one that began it."""
        meaning = self.model_dump(
            mode="json",
            exclude_defaults=True,
            exclude={**dict.fromkeys(UNMEANING_FIELDS, True), "budget": set(SEED_BUDGET)},
        )
        return hashlib.sha1(json.dumps(meaning, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def experiment_name(self) -> str:
        """The MLflow experiment: ``experiment`` if set (recipe sweeps share one), else ``name``."""
        return self.experiment or self.name

    @property
    def optuna_url(self) -> str:
        """The Optuna storage of the sweep's study (:func:`optuna_storage_url`)."""
        return optuna_storage_url(self.tracking_uri or DEFAULT_TRACKING_URI, self.optuna_storage)

    @property
    def experiment_dir(self) -> str:
        return f"{self.storage_path.rstrip('/')}/{self.name}"

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def config_id(config: dict[str, Any]) -> str:
    """A trial's identity without its seed and placement: equal configs, equal ids. Sweeps
    hash the recorded active knobs (:func:`study.tracking.trial_record`), so a knob of a method
    that is off, or a default changed for one, does not split a config in two."""
    identity = {k: v for k, v in config.items() if k not in PLACEMENT_KEYS}
    blob = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _absolute(path: str) -> str:
    if "://" in path:
        return path
    return str(Path(path).expanduser().resolve())


def _absolute_uri(uri: str) -> str:
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri[len(prefix) :]).resolve())
    return uri


def _not_a_url(value: str) -> str:
    return (
        f"{value!r} is not allowed: give an SQLAlchemy URL such as sqlite:///optuna.db "
        "or postgresql://HOST/DB"
    )


def optuna_storage_url(tracking_uri: str, given: str | None = None) -> str:
    """``given`` (a relative SQLite path made absolute), else an Optuna SQLite database beside a
    SQLite MLflow store (``…/mlruns.db`` -> ``…/optuna.db``), else ``optuna.db`` here."""
    if given and "://" not in given:
        raise SpecError(f"optuna_storage: {_not_a_url(given)}")
    if given:
        return _absolute_uri(given)
    prefix = "sqlite:///"
    store = tracking_uri.removeprefix(prefix) if tracking_uri.startswith(prefix) else ""
    if store and store != ":memory:" and "?" not in store:
        return prefix + str(Path(store).resolve().with_name(OPTUNA_DB))
    return prefix + str(Path(OPTUNA_DB).resolve())


def resolve_locations(values: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults that depend on where the command runs, and make paths absolute."""
    values = dict(values)
    tracking = values.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    values["tracking_uri"] = _absolute_uri(tracking or DEFAULT_TRACKING_URI)
    values["storage_path"] = _absolute(values.get("storage_path") or "ray_results")
    if isinstance(values.get("optuna_storage"), str):
        values["optuna_storage"] = _absolute_uri(values["optuna_storage"])
    train = values.get("train") or {}
    if not isinstance(train, dict):
        return values  # not a mapping: validation says so, naming the field
    train = dict(train)
    data_dir = train.get("data_dir") or os.environ.get("REGSTUDY_DATA_DIR") or "data"
    train["data_dir"] = _absolute(data_dir)
    values["train"] = train
    return values


def set_path(values: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``values['a']['b'] = value`` for ``dotted='a.b'``, creating sections as needed."""
    *parents, leaf = dotted.split(".")
    node = values
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise SpecError(f"{dotted}: {key!r} is not a section")
    node[leaf] = value


def build_spec(values: dict[str, Any], overrides: dict[str, Any] | None = None) -> Spec:
    """Validate ``values`` with dotted-path ``overrides`` applied; SpecError lists every problem."""
    values = json.loads(json.dumps(values or {}, default=list))
    for dotted, value in (overrides or {}).items():
        set_path(values, dotted, value)
    try:
        return Spec.model_validate(resolve_locations(values))
    except ValidationError as err:
        raise SpecError(format_errors(err)) from None


def load_spec(path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> Spec:
    """Read a YAML spec and validate it with the CLI's overrides applied."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise SpecError(f"cannot read spec {path}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise SpecError(f"cannot read spec {path}: it is not UTF-8 text") from None
    values = parse_yaml(text, str(path)) or {}
    if not isinstance(values, dict):
        raise SpecError(
            f"{path}: a spec is a YAML mapping of fields (name: ..., train: ...), "
            f"got a {type(values).__name__}"
        )
    return build_spec(values, overrides)


def parse_yaml(text: str, source: str, column_offset: int = 0) -> Any:
    """``text`` read as YAML; a syntax error is a :class:`SpecError` of one line naming
    ``source`` (a file, a ``--set`` argument), the line and column, and what is wrong.
    ``column_offset`` shifts columns of the first line (a value after ``FIELD=``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(_yaml_problem(err, text, source, column_offset)) from None


def _yaml_problem(err: yaml.YAMLError, text: str, source: str, column_offset: int) -> str:
    def at(line: int, column: int) -> str:
        return f"line {line + 1}, column {column + 1 + (column_offset if line == 0 else 0)}"

    if isinstance(err, yaml.reader.ReaderError):  # a character YAML does not allow
        before = text[: err.position]
        where = at(before.count("\n"), len(before) - (before.rfind("\n") + 1))
        char = err.character
        shown = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        return f"{source}: not valid YAML at {where}: {err.reason} (character {shown})"
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    where = at(mark.line, mark.column) if mark is not None else "an unknown place"
    context, opened = getattr(err, "context", None), getattr(err, "context_mark", None)
    if context and opened is not None and mark is not None and opened.index != mark.index:
        problem += f" ({context} at {at(opened.line, opened.column)})"
    elif context:
        problem += f" ({context})"
    return " ".join(f"{source}: not valid YAML at {where}: {problem}".split())


def _is_model(annotation: Any) -> bool:
    """A pydantic model class; not ``dict[str, Model]`` (Python 3.10 calls such an alias a type)."""
    return (
        get_origin(annotation) is None
        and isinstance(annotation, type)
        and issubclass(annotation, BaseModel)
    )


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The fields of the section ``loc`` leads to (``("budget",)`` -> Budget's), if a model."""
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not _is_model(annotation):
            return None
        model = annotation
    return list(model.model_fields)


def format_errors(err: ValidationError, model: type[BaseModel] = Spec) -> str:
    """One line per problem: the field, the value and what is allowed."""
    lines = []
    for error in err.errors():
        loc = error["loc"]
        where = ".".join(str(part) for part in loc)
        message = error["msg"].removeprefix("Value error, ")
        got = error.get("input")
        if error["type"] == "extra_forbidden":
            fields = _fields_at(model, loc[:-1])
            section = ".".join(str(part) for part in loc[:-1]) or "the spec"
            known = f"; the fields of {section} are {fields}" if fields else ""
            lines.append(f"{where}: unknown field (got {got!r}){known}")
            continue
        shown = "" if isinstance(got, dict) or error["type"] == "value_error" else f" (got {got!r})"
        # A whole-spec rule's message already starts with the field it is about.
        lines.append(f"{where}: {message}{shown}" if where else f"{message}{shown}")
    return "\n".join(lines)
