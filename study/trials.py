"""The trials a sweep runs, as plain configs: shared by the runner (Tune's param space) and the
planner (``study reproduce --plan``), so both compose a trial config the same way; and every
trial of a recipe, in the order it runs, for the planner (:func:`plan_trials`).

A trial config is the spec's base config, plus ``checkpoint_every``, plus the space's
constants, then one value of every grid axis: the space's grid, the spec's ``grid``, the
spec's ``variants`` (axis ``variant``, a named set of overrides that
:func:`trainables.tune.split_config` applies on top) and the seed. Optuna spaces sample their
knobs instead; each sample runs with seeds 0..repeats-1 (:class:`study.searchers.SeedRepeater`).

Importing this module imports neither Ray nor torch.
"""

from __future__ import annotations

import ast
import itertools
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from analysis import ledger
from search_spaces import SearchSpace, get_space

from .spec import Spec

if TYPE_CHECKING:  # recipes import the report renderers: seconds a sweep's driver never needs
    from .recipes import Recipe

VARIANT = "variant"
POINT = "point"
SEED = "seed"


def base_trial_config(spec: Spec, space: SearchSpace) -> dict[str, Any]:
    """What every trial of ``spec`` starts from: base config, ``checkpoint_every``, constants."""
    config: dict[str, Any] = {**spec.base_config(), "checkpoint_every": spec.checkpoint_every}
    config.update(space.constants)
    return config


def grid_axes(spec: Spec, space: SearchSpace) -> dict[str, list[Any]]:
    """The axes a grid sweep crosses, in declaration order: the space's grid, the spec's
    ``grid``, ``variant`` (each ``{"name": NAME, **overrides}``), ``point`` (whole configs,
    :func:`trainables.tune.lay_point`) and ``seed``."""
    axes = {axis: list(values) for axis, values in {**(space.grid or {}), **spec.grid}.items()}
    if spec.variants:
        axes[VARIANT] = [{"name": name, **values} for name, values in spec.variants.items()]
    if spec.points:
        axes[POINT] = [dict(point) for point in spec.points]
    first = spec.budget.first_seed
    axes[SEED] = list(range(first, first + spec.budget.repeats))
    if spec.skip:
        left_out = set(spec.skip)
        base = base_trial_config(spec, space)
        return {POINT: [c for c in _cells(axes) if trial_key({**base, POINT: c}) not in left_out]}
    return axes


def _crossings(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every crossing of ``axes`` (axis -> value), in the order Ray's ``BasicVariantGenerator``
    creates the trials: it sorts the grid axes by name and varies the first one fastest
    (``ray.tune.search.variant_generator``: ``parse_spec_vars``, ``_grid_search_generator``)."""
    slowest_first = sorted(axes, reverse=True)
    return [
        dict(zip(slowest_first, values))
        for values in itertools.product(*(axes[axis] for axis in slowest_first))
    ]


def _cells(axes: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every crossing of ``axes`` as one whole ``point`` (its seed included, named as its run
    would be), in the order Ray creates the grid's trials."""
    cells = []
    for chosen in _crossings(axes):
        cell = {k: v for k, v in chosen.items() if k != POINT}
        cell.update({k: v for k, v in chosen.get(POINT, {}).items() if k != "name"})
        shown = [_label(axis, chosen[axis]) for axis in sorted(chosen)]
        cells.append({"name": " ".join(shown), **cell})
    return cells


def _label(axis: str, value: Any) -> str:
    if axis in (POINT, VARIANT) and isinstance(value, dict):
        return str(value.get("name"))
    return f"{axis}={value}"


def trial_key(config: dict[str, Any]) -> str:
    """A trial's identity as ``CONFIG_ID:SEED``: what its run is tagged with, so a trial is
    matched with a run that some earlier store (or a report's run ledger) holds."""
    from .spec import config_id
    from .tracking.trials import trial_record  # imports Ray: only when trials are matched

    recorded = trial_record(config)
    return ledger.trial_key(config_id(recorded), recorded["seed"])


def planned_keys(spec: Spec, space: SearchSpace) -> list[str]:
    """The identity of every trial a grid sweep of ``spec`` runs, none left out."""
    full = spec.model_copy(update={"skip": []})
    return [trial_key(config) for config in grid_trial_configs(full, space)]


def grid_trial_configs(spec: Spec, space: SearchSpace) -> list[dict[str, Any]]:
    """Every trial config of a grid sweep, in the order Ray's ``BasicVariantGenerator`` creates
    (and so starts) them (:func:`_crossings`)."""
    base = base_trial_config(spec, space)
    return [{**base, **chosen} for chosen in _crossings(grid_axes(spec, space))]


def sampled_trial_configs(spec: Spec, space: SearchSpace) -> list[tuple[int, dict[str, Any]]]:
    """An Optuna sweep's trials as (sample index, config without the sampled knobs): sample i
    runs with seeds 0..repeats-1 before sample i + 1 starts, as :class:`SeedRepeater` asks."""
    base = base_trial_config(spec, space)
    return [
        (sample, {**base, SEED: seed})
        for sample in range(spec.budget.num_samples)
        for seed in range(spec.budget.repeats)
    ]


@dataclass(frozen=True)
class PlannedTrial:
    """One trial of a recipe, for the planner: where it belongs, what it trains (``config``: a
    Tune trial config for sweeps, a TrainConfig from a script's hook, ``None`` when the script
    says nothing), its resources and how many trials of its part run at once."""

    part: str
    arm: str
    seed: int | None
    config: Any
    cpus: float = 1.0
    gpus: float = 0.0
    concurrency: int = 1
    given: dict[str, Any] = field(default_factory=dict)

    def train_config(self) -> Any:
        """The TrainConfig, composed from a Tune config by the Tune adapter's own code."""
        if not isinstance(self.config, dict):
            return self.config
        from trainables.tune import split_config  # imports Ray: only when costing

        return split_config(self.config)[0]


def cpu_cores() -> int:
    """The cores this process may use (what a local Ray offers)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def concurrency(spec: Spec) -> int:
    """Trials of a part at once: ``max_concurrent``, and on CPUs no more than fit here."""
    if spec.resources.gpus_per_trial > 0:
        return spec.budget.max_concurrent
    fit = int(cpu_cores() // spec.resources.cpus_per_trial)
    return max(1, min(spec.budget.max_concurrent, fit))


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_shown(v)}" for k, v in value.items()) + "}"
    return str(value)


def arm_name(config: dict[str, Any], axes: dict[str, list[Any]]) -> str:
    """The values of the axes that vary (a variant by its name), in declaration order."""
    shown = []
    for axis, values in axes.items():
        if axis == SEED or len(values) < 2:
            continue
        named = axis in (VARIANT, POINT)
        shown.append(config[axis]["name"] if named else f"{axis}={_shown(config[axis])}")
    return " ".join(shown) or "base"


def sweep_trials(part: str, spec: Spec) -> list[PlannedTrial]:
    """Every trial of one part's sweep, in the order Ray starts them."""
    space = get_space(spec.space)
    where = {
        "cpus": spec.resources.cpus_per_trial,
        "gpus": spec.resources.gpus_per_trial,
        "concurrency": concurrency(spec),
    }
    if space.kind != "grid":
        return [
            PlannedTrial(part, f"optuna sample {i}", config[SEED], config, **where)
            for i, config in sampled_trial_configs(spec, space)
        ]
    full = spec.model_copy(update={"skip": []})
    axes, left_out = grid_axes(full, space), set(spec.skip)
    return [
        PlannedTrial(part, arm_name(config, axes), config[SEED], config, **where)
        for config in grid_trial_configs(full, space)
        if not left_out or trial_key(config) not in left_out
    ]


def script_trials(recipe: Recipe, scale: str, options: dict[str, Any]) -> list[PlannedTrial]:
    """A script recipe's trials, from its module's optional ``plan(scale, options)`` hook.

    Each row the hook returns has ``part``, ``arm`` and ``seed``, and either ``config`` (a
    TrainConfig: costed like a sweep's CPU trial; ``epochs``/``steps_per_epoch`` in the row
    override the config's) or its own ``estimated_hours``. Script trials run one at a time.
    Without a hook, one row says the script's cost is not estimated.
    """
    from .recipes import load_script

    hook = getattr(load_script(recipe), "plan", None)
    if hook is None:
        name = recipe.script.name if recipe.script else recipe.name
        note = f"cost not estimated: {name} has no plan(scale, options) hook"
        return [PlannedTrial("script", "(all runs)", None, None, given={"note": note})]
    trials = []
    for row in hook(scale, options):
        config = row.get("config")
        cpus = float(getattr(config, "num_threads", None) or row.get("cpus", 1))
        given = {k: v for k, v in row.items() if k not in ("part", "arm", "seed", "config")}
        trials.append(
            PlannedTrial(row["part"], row["arm"], row.get("seed"), config, cpus, given=given)
        )
    return trials


def plan_trials(
    recipe: Recipe,
    scale: str,
    overrides: dict[str, Any] | None = None,
    parts: list[str] | None = None,
) -> list[PlannedTrial]:
    """Every trial ``study reproduce`` would run for ``recipe`` at ``scale``, in order; no cost.

    ``overrides`` are the same dotted spec paths ``study reproduce`` takes (``options.KEY`` for
    a script recipe's options)."""
    overrides = dict(overrides or {})
    if recipe.script is not None:
        prefix = "options."
        chosen = {k.removeprefix(prefix): v for k, v in overrides.items() if k.startswith(prefix)}
        return script_trials(recipe, scale, {**recipe.scale(scale).options, **chosen})
    specs = recipe.specs(scale, overrides, parts)
    return [trial for part, spec in specs.items() for trial in sweep_trials(part, spec)]


def defines_plan_hook(recipe: Recipe) -> bool:
    """Whether a script recipe's module defines ``plan`` at top level, read without importing
    it (a script imports its whole stack: seconds, where ``--list`` must stay fast)."""
    if recipe.script is None:
        return False
    names = set()
    for node in ast.parse(recipe.script.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {alias.asname or alias.name for alias in node.names}
    return "plan" in names


def count_trainings(recipe: Recipe, scale: str) -> int | None:
    """How many trainings ``recipe`` runs at ``scale``; ``None`` where a script does not say."""
    if recipe.script is not None and not defines_plan_hook(recipe):
        return None
    trials = plan_trials(recipe, scale)
    unknown = any(t.config is None and "estimated_hours" not in t.given for t in trials)
    return None if unknown else len(trials)
