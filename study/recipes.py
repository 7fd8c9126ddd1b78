"""Recipes: one file per paper artifact, each a set of sweeps at two scales plus how to report them.

``recipes/NAME.yaml`` holds ``defaults`` (spec fields every sweep shares),
``scales`` (``quick`` and ``paper``, and any others it wants, each with its
``parts``: partial specs, one sweep each; ``extends: OTHER_PART`` starts from
another part) and ``report`` (what :mod:`analysis.reports` renders). A script
recipe names ``script: NAME.py``, which defines ``run(...)`` and ``build_report(...)``.

Every sweep of a recipe at a scale logs to the MLflow experiment
``NAME-SCALE`` under one parent run of kind ``recipe``, and is named
``NAME-SCALE-PART`` in Ray's storage, so a second ``study reproduce`` resumes
what is unfinished and reuses what is done.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from analysis.reports import check_report

from .spec import NAME_PATTERN, Spec, SpecError, build_spec, format_errors, parse_yaml

SCALES = ("quick", "paper")


def recipes_dir() -> Path:
    """``$REGSTUDY_RECIPES``, else the ``recipes/`` folder beside the packages."""
    return Path(os.environ.get("REGSTUDY_RECIPES", Path(__file__).resolve().parents[1] / "recipes"))


class ScaleSpec(BaseModel):
    """One scale of a recipe. Its cost is computed, not typed: ``study reproduce NAME --scale S
    --plan`` (:mod:`study.plan`); ``machine`` describes the machine the scale is meant for."""

    model_config = ConfigDict(extra="forbid")

    machine: str = "this 2-core CPU machine"
    parts: dict[str, dict[str, Any]] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)


class Recipe(BaseModel):
    """A parsed recipe file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    title: str
    paper: str
    artifact: str
    description: str = ""
    assumptions: list[str] = Field(
        default_factory=list, description="what the paper leaves open and the recipe assumes"
    )
    defaults: dict[str, Any] = Field(default_factory=dict)
    scales: dict[str, ScaleSpec]
    report: dict[str, Any] = Field(default_factory=dict)
    script: Path | None = None
    param_count_differs: str | None = Field(
        None,
        min_length=1,
        description="why the arms of a comparison build models of different parameter counts "
        "(e.g. batchnorm's affine parameters against none); unset, they must all be equal",
    )

    @field_validator("scales")
    @classmethod
    def _both_scales(cls, value: dict[str, ScaleSpec]) -> dict[str, ScaleSpec]:
        missing = [s for s in SCALES if s not in value]
        if missing:
            raise ValueError(f"a recipe needs the scales {list(SCALES)}; missing {missing}")
        return value

    def experiment(self, scale: str) -> str:
        return f"{self.name}-{scale}"

    def scale(self, scale: str) -> ScaleSpec:
        if scale not in self.scales:
            raise SpecError(f"recipe {self.name!r} has scales {list(self.scales)}, not {scale!r}")
        return self.scales[scale]

    def specs(
        self, scale: str, overrides: dict[str, Any] | None = None, parts: list[str] | None = None
    ) -> dict[str, Spec]:
        """The validated sweep spec of every part (or of ``parts``) at ``scale``."""
        chosen = self.scale(scale).parts
        unknown = sorted(set(parts or []) - set(chosen))
        if unknown:
            raise SpecError(
                f"recipe {self.name!r} at {scale} has parts {list(chosen)}, not {unknown}"
            )
        specs = {}
        for part in chosen:
            if parts and part not in parts:
                continue
            merged = _merge(self.defaults, self._resolve(chosen, part))
            merged.update(
                name=f"{self.name}-{scale}-{part}",
                experiment=self.experiment(scale),
                tags={"recipe": self.name, "scale": scale, "part": part},
            )
            try:
                specs[part] = build_spec(merged, overrides)
            except SpecError as err:
                where = f"recipe {self.name!r}, {scale} part {part!r}"
                raise SpecError(_each_line(where, str(err))) from None
        return specs

    @staticmethod
    def _resolve(parts: dict[str, dict[str, Any]], part: str, seen: tuple[str, ...] = ()) -> dict:
        """A part's values, with ``extends: OTHER`` resolved by deep-merging onto OTHER's values."""
        values = dict(parts[part])
        base = values.pop("extends", None)
        if base is None:
            return values
        if base not in parts or base in seen:
            raise SpecError(f"part {part!r} extends {base!r}, which is unknown or circular")
        return _merge(Recipe._resolve(parts, base, (*seen, part)), values)


WHOLE = frozenset({"arch"})


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: sections (dicts) merge key by key, anything else is replaced.

    An ``arch`` is replaced whole: a part that names a new architecture must not inherit the
    options of its base's (a ResNeXt extending a DenseNet part takes no ``growth_rate``).
    """
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in WHOLE:
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def list_recipes() -> list[str]:
    """The recipe names: every ``*.yaml`` in :func:`recipes_dir` but data files named ``_*``."""
    return sorted(p.stem for p in recipes_dir().glob("*.yaml") if not p.name.startswith("_"))


OUT_OF_SCOPE_FILE = "_out_of_scope.yaml"


class OutOfScope(BaseModel):
    """A paper artifact no recipe reproduces, and why."""

    model_config = ConfigDict(extra="forbid")

    paper: str
    artifact: str
    reason: str


def out_of_scope() -> list[OutOfScope]:
    """The papers' artifacts no recipe reproduces (``recipes/_out_of_scope.yaml``), and why."""
    path = recipes_dir() / OUT_OF_SCOPE_FILE
    if not path.exists():
        return []
    entries = parse_yaml(path.read_text(), str(path)) or []
    if not isinstance(entries, list):
        raise SpecError(f"{path}: a YAML list of entries, got a {type(entries).__name__}")
    found = []
    for i, entry in enumerate(entries):
        try:
            found.append(OutOfScope.model_validate(entry))
        except ValidationError as err:
            raise SpecError(_each_line(f"{path}[{i}]", format_errors(err, OutOfScope))) from None
    return found


def _each_line(where: str, problems: str) -> str:
    """``problems`` (one per line), each prefixed with ``where``: every line stands alone."""
    return "\n".join(f"{where}: {line}" for line in problems.splitlines())


def load_recipe(name: str) -> Recipe:
    """Read and validate ``recipes/NAME.yaml``; an unknown name lists the known ones."""
    path = recipes_dir() / f"{name}.yaml"
    if not path.exists():
        raise SpecError(f"unknown recipe {name!r}; choose one of {list_recipes()}")
    values = parse_yaml(path.read_text(), str(path)) or {}
    if not isinstance(values, dict):
        raise SpecError(f"recipe {name!r} ({path}): a YAML mapping, got a {type(values).__name__}")
    try:
        recipe = Recipe.model_validate({"name": name, **values})
    except ValidationError as err:
        problems = format_errors(err, Recipe)
        raise SpecError(_each_line(f"recipe {name!r} ({path})", problems)) from None
    if recipe.script is not None:
        recipe = recipe.model_copy(update={"script": recipes_dir() / recipe.script})
    elif recipe.report:
        try:
            check_report(recipe.report)
        except ValueError as err:
            raise SpecError(f"recipe {name!r} ({path}): {err}") from None
    return recipe


def load_script(recipe: Recipe) -> ModuleType:
    """The ``run(context)`` module of a script recipe."""
    assert recipe.script is not None
    spec = importlib.util.spec_from_file_location(f"recipes.{recipe.name}", recipe.script)
    if spec is None or spec.loader is None:
        raise SpecError(f"cannot import recipe script {recipe.script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look their module up by name
    spec.loader.exec_module(module)
    return module
