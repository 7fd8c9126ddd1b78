"""A sweep's Optuna study in a persistent Optuna storage, so Optuna's own tools read every sweep.

An Optuna-space sweep's search keeps its study there as it runs (:func:`search_storage`); any
sweep, grid sweeps included, is recorded from its MLflow trial runs by :func:`record_sweep`: one
Optuna trial per trial run, the seed its own categorical param, so importances can say how much
of the variance is seed noise. The record of a sweep whose search keeps its own study under the
sweep's name is ``NAME.runs``: a record never replaces the search's study.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import optuna
from mlflow.entities import Run
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from analysis.query import sweep_runs, trial_runs
from analysis.schema import SWEEP_TAG
from search_spaces import get_space

from .spec import PLACEMENT_KEYS, SpecError

RECORDED_FROM = "regstudy.recorded_from"  # study attr: the MLflow sweep run it was built from
RECORD_SUFFIX = ".runs"
_INT = re.compile(r"-?\d+")


def open_storage(url: str) -> RDBStorage:
    """The Optuna storage at ``url``, its tables created if new; a URL it cannot open is a
    :class:`SpecError` naming it."""
    try:
        return RDBStorage(url)
    except Exception as err:  # SQLAlchemy's and Optuna's errors alike: a bad URL or place
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SpecError(f"optuna_storage: cannot open {url}: {reason}") from None


def forget(storage: RDBStorage, *names: str) -> None:
    """Delete the studies ``names`` that exist in ``storage``."""
    existing = set(optuna.study.get_all_study_names(storage))
    for name in names:
        if name in existing:
            optuna.delete_study(study_name=name, storage=storage)


def search_storage(sweep_name: str, url: str) -> RDBStorage:
    """The storage a new Optuna-space sweep's search keeps its study in, without a study of an
    earlier sweep of that name (nor its record): a new sweep starts a new study."""
    storage = open_storage(url)
    forget(storage, sweep_name, sweep_name + RECORD_SUFFIX)
    return storage


def record_name(sweep_name: str, sweep: Run) -> str:
    """The record's study name: the sweep's, unless its search is Optuna's (it keeps its own
    study there) or its space is no longer known (never replace what may be a search's)."""
    try:
        grid = get_space(sweep.data.params.get("spec.space", "")).kind == "grid"
    except ValueError:
        grid = False
    return sweep_name if grid else sweep_name + RECORD_SUFFIX


def newest_sweep(tracking_uri: str, experiment: str, sweep_name: str | None = None) -> Run:
    """The newest parent run of sweep ``sweep_name`` (any sweep if ``None``) in ``experiment``."""
    runs = sweep_runs(tracking_uri, experiment)
    named = [r for r in runs if sweep_name is None or r.data.tags.get(SWEEP_TAG) == sweep_name]
    if not named:
        sweeps = sorted({r.data.tags.get(SWEEP_TAG, "?") for r in runs})
        which = f"sweep named {sweep_name!r}" if sweep_name else "sweep"
        raise LookupError(f"experiment {experiment!r} has no {which}; sweeps there: {sweeps}")
    return named[0]


def record_sweep(
    tracking_uri: str,
    experiment: str,
    sweep_name: str,
    metric: str,
    mode: str,
    storage_url: str,
) -> optuna.Study:
    """(Re)build the Optuna study of sweep ``sweep_name`` from its newest MLflow parent run's
    trial runs: deleted and created again, so rebuilding never duplicates trials."""
    sweep = newest_sweep(tracking_uri, experiment, sweep_name)
    rows = trial_runs(tracking_uri, experiment, sweep_run_id=sweep.info.run_id).to_pylist()
    trials = build_trials(rows, metric)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(storage_url)
    name = record_name(sweep_name, sweep)
    forget(storage, name)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="minimize" if mode == "min" else "maximize",
    )
    for key, value in {
        RECORDED_FROM: sweep.info.run_id,
        "regstudy.experiment": experiment,
        "regstudy.metric": metric,
        "regstudy.tracking_uri": tracking_uri,
    }.items():
        study.set_user_attr(key, value)
    study.add_trials(trials)
    return study


def build_trials(rows: list[dict[str, Any]], metric: str) -> list[FrozenTrial]:
    """One Optuna trial per ended trial run (rows of :func:`analysis.query.trial_runs`):
    COMPLETE with ``metric.<metric>``; PRUNED when a scheduler stopped it early; FAIL when it
    diverged or crashed or has no finite value. Runs still RUNNING or KILLED have not ended."""
    ended = [r for r in rows if r.get("status") in ("FINISHED", "FAILED")]
    distributions = _distributions(ended)
    trials = []
    for row in ended:
        params = {
            name: value
            for name in distributions
            if (value := _value(row, name, distributions[name])) is not None
        }
        state, value = _outcome(row, metric)
        attrs = {"mlflow_run_id": row["run_id"], "config_id": row.get("config_id")}
        if row.get("failure"):
            attrs["failure"] = str(row["failure"])[:500]
        trials.append(
            optuna.trial.create_trial(
                state=state,
                value=value,
                params=params,
                distributions={name: distributions[name] for name in params},
                user_attrs=attrs,
            )
        )
    return trials


def _outcome(row: dict[str, Any], metric: str) -> tuple[TrialState, float | None]:
    value = row.get(f"metric.{metric}")
    if row["status"] != "FINISHED" or value is None or not math.isfinite(value):
        return TrialState.FAIL, None
    if row.get("stopped_early"):
        return TrialState.PRUNED, None
    return TrialState.COMPLETE, float(value)


def _knobs(rows: list[dict[str, Any]]) -> list[str]:
    """The recorded config's keys but where a trial runs (its seed is a param of its own)."""
    keys = {k.removeprefix("param.") for row in rows for k in row if k.startswith("param.")}
    return sorted(keys - set(PLACEMENT_KEYS))


def _distributions(rows: list[dict[str, Any]]) -> dict[str, BaseDistribution]:
    """Per knob, what its trials held: the observed range of a number (int if every value is),
    the observed values otherwise or when only one was; the seeds, categorical."""
    found: dict[str, BaseDistribution] = {}
    for knob in _knobs(rows):
        texts = [row[f"param.{knob}"] for row in rows if row.get(f"param.{knob}") is not None]
        numbers = [row.get(f"hp.{knob}") for row in rows if row.get(f"param.{knob}") is not None]
        if texts and all(n is not None and math.isfinite(n) for n in numbers):
            found[knob] = _numeric(numbers, all(_INT.fullmatch(t) for t in texts))
        elif texts:
            found[knob] = _categorical(_text_value(t) for t in texts)
    seeds = [row["seed"] for row in rows if row.get("seed") is not None]
    if seeds:
        found["seed"] = _categorical(seeds)
    return found


def _numeric(numbers: list[float], integer: bool) -> BaseDistribution:
    low, high = min(numbers), max(numbers)
    if low == high:
        return CategoricalDistribution([int(low) if integer else low])
    if integer:
        return IntDistribution(int(low), int(high))
    return FloatDistribution(low, high)


def _categorical(values: Iterable[Any]) -> CategoricalDistribution:
    return CategoricalDistribution(sorted(set(values), key=lambda v: (type(v).__name__, v)))


def _text_value(text: str) -> Any:
    return {"True": True, "False": False}.get(text, text)


def _value(row: dict[str, Any], name: str, distribution: BaseDistribution) -> Any:
    """The trial's value of param ``name`` in the type its distribution holds; ``None`` if the
    trial has none (a knob of a method that is off in it)."""
    if name == "seed":
        return row.get("seed")
    text = row.get(f"param.{name}")
    if text is None:
        return None
    if isinstance(distribution, IntDistribution):
        return int(text)
    if isinstance(distribution, FloatDistribution):
        return float(row[f"hp.{name}"])
    choice = distribution.choices[0]
    if isinstance(choice, (bool, str)):
        return _text_value(text)
    return int(text) if isinstance(choice, int) else float(row[f"hp.{name}"])
