"""``study reproduce`` and ``study report``: run a recipe's sweeps, then render its report.

Reproducing is resumable at every level: a part whose sweep finished is
reused, an interrupted one is resumed, a missing one is started. Reporting
reads MLflow only, so a cluster's results can be rendered on a laptop
pointed at the tracking server.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from analysis import ledger
from analysis.query import (
    ExperimentNotFound,
    StoreNotFound,
    metric_histories,
    sweep_runs,
    trial_runs,
)
from analysis.render import Report, write_report
from analysis.reports import build_report
from analysis.schema import TAG

from . import tracking
from .preflight import check_tracking
from .recipes import Recipe, load_recipe, load_script
from .script_runs import load_json_artifact
from .spec import DEFAULT_TRACKING_URI, SpecError, resolve_locations

PART_TAG = f"{TAG}.part"


def reports_dir() -> Path:
    return Path("reports")


def _script_options(recipe: Recipe, overrides: dict[str, Any]) -> dict[str, Any]:
    """``options.KEY`` overrides: a script recipe's knobs; any other override is for sweeps."""
    prefix = "options."
    chosen = {
        k.removeprefix(prefix): overrides.pop(k) for k in list(overrides) if k.startswith(prefix)
    }
    if chosen and recipe.script is None:
        raise SpecError(f"recipe {recipe.name!r} is a sweep: it has no options {sorted(chosen)}")
    if recipe.script is not None:
        extra = sorted(set(overrides) - {"tracking_uri"})
        if extra:
            raise SpecError(f"recipe {recipe.name!r} is a script: set its options.*, not {extra}")
    return chosen


def _say(message: str) -> None:
    print(f"[reproduce] {message}", file=sys.stderr, flush=True)


def reproduce(
    name: str,
    scale: str = "quick",
    overrides: dict[str, Any] | None = None,
    parts: list[str] | None = None,
    out_dir: Path | None = None,
    verbose: int = 0,
    fresh: bool = False,
) -> list[Path]:
    """Run (or resume, or reuse) every sweep of recipe ``name`` at ``scale``, then report it.

    A part whose recipe changed since it ran (``stale``) is an error unless ``fresh``, which
    reruns it (and any finished part) from scratch; the report then uses the new sweep only.
    """
    recipe = load_recipe(name)
    overrides = dict(overrides or {})
    uri = resolve_locations({"tracking_uri": overrides.get("tracking_uri")})["tracking_uri"]
    experiment = recipe.experiment(scale)
    options = {**recipe.scale(scale).options, **_script_options(recipe, overrides)}
    if fresh and recipe.script is not None:
        raise SpecError(
            f"--fresh: recipe {recipe.name!r} is a script, which resumes from the trainings its "
            f"store and run ledger hold (reports/{recipe.name}/{scale}/runs/); to retrain them, "
            "remove that folder and run it against a store without its runs (--tracking-uri)"
        )
    specs = {} if recipe.script is not None else recipe.specs(scale, overrides, parts)
    again = f"`study reproduce {name} --scale {scale}" + "".join(
        f" --part {p}" for p in parts or []
    )
    again += "`"
    store = check_tracking(uri)
    if not store.ok:
        raise SpecError(store.line().removeprefix("✗ "))
    with tracking.driver(f"reproduce {recipe.name} {scale}", again):
        client = tracking.open_client(uri)
        exp_id = tracking.experiment_id(client, experiment, uri)
        parent = tracking.open_recipe_run(client, exp_id, recipe.name, scale)
        with tracking.ending(client, parent, "recipe"):
            start = time.time()
            if recipe.script is not None:
                load_script(recipe).run(
                    scale=scale,
                    options=options,
                    tracking_uri=uri,
                    experiment=experiment,
                    parent_run_id=parent,
                )
            kept = ledger.read(out_dir or reports_dir() / recipe.name / scale)
            for part, spec in specs.items():
                _run_part(recipe.name, scale, part, spec, parent, verbose, fresh, kept)
            _say(f"{recipe.name} {scale}: runs done in {(time.time() - start) / 60:.1f} min")
            written = report(name, scale, overrides.get("tracking_uri"), out_dir=out_dir)
            tracking.end_run(client, parent, tracking.FINISHED)
    return written


def _run_part(
    recipe: str,
    scale: str,
    part: str,
    spec,
    parent: str,
    verbose: int,
    fresh: bool,
    kept: ledger.Ledger,
):
    """Reuse a part's finished sweep, resume an unfinished one, start an absent one; an absent
    one leaves out the trials its report's run ledger holds as finished (unless ``fresh``)."""
    from .runner import resume, shutdown, sweep, sweep_status

    status = sweep_status(spec)
    _say(f"{recipe} {scale} part {part}: {status}")
    if status == "stale" and not fresh:
        raise SpecError(
            f"recipe {recipe!r} part {part!r} changed since its sweep ran; rerun it with --fresh"
        )
    if status == "absent" and not fresh:
        spec, left = _without_ledgered(spec, kept.finished(part))
        if left == 0:
            _say(f"{recipe} {scale} part {part}: every trial is in the report's run ledger")
            return
    if status == "absent" or (fresh and status != "unfinished"):
        sweep(spec, overwrite=fresh, verbose=verbose, parent_run_id=parent)
    elif status == "unfinished":
        resume(spec.name, spec.storage_path, verbose=verbose)
    shutdown()


def _without_ledgered(spec, finished: set[str]):
    """``spec`` with the trials the ledger holds as finished left out, and how many are left."""
    from search_spaces import get_space

    from .trials import planned_keys

    space = get_space(spec.space)
    if not finished or space.kind != "grid":
        return spec, None
    planned = planned_keys(spec, space)
    done = sorted(key for key in planned if key in finished)
    if done:
        _say(
            f"{spec.name}: {len(done)} of {len(planned)} trials finished in the report's run "
            "ledger; the others run"
        )
    return spec.model_copy(update={"skip": done}), len(planned) - len(done)


def current_runs(recipe: Recipe, scale: str, uri: str, experiment: str):
    """The trial runs a report reflects: for a sweep recipe, those of the newest sweep of each
    part the recipe still has at this scale (a rerun part's older sweeps stay in MLflow)."""
    runs = trial_runs(uri, experiment).to_pandas()
    if recipe.script is not None or runs.empty:
        return runs
    latest: dict[str, str] = {}
    for sweep_run in sweep_runs(uri, experiment):
        latest.setdefault(sweep_run.data.tags.get(PART_TAG, ""), sweep_run.info.run_id)
    keep = {run_id for part, run_id in latest.items() if part in recipe.scale(scale).parts}
    return runs[runs["sweep_run_id"].isin(keep)].reset_index(drop=True)


def shown_uri(given: str | None) -> str:
    """The tracking store as the user named it (``--tracking-uri``, ``MLFLOW_TRACKING_URI`` or
    the default), never the absolute path of the machine that rendered the report."""
    return given or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def build(
    name: str,
    scale: str = "quick",
    tracking_uri: str | None = None,
    experiment: str | None = None,
):
    """Recipe ``name``'s report at ``scale``, built from MLflow alone (nothing written)."""
    return build_with_inputs(name, scale, tracking_uri, experiment).report


class Built(NamedTuple):
    """A built report and what it was built from: the runs it shows, the reader that served
    their histories and artifacts, and whether the tracking store could be read at all."""

    report: Report
    runs: pd.DataFrame
    read: ledger.RecordingHistory
    store_read: bool


def build_with_inputs(
    name: str,
    scale: str = "quick",
    tracking_uri: str | None = None,
    experiment: str | None = None,
    ledger_dir: Path | None = None,
):
    """Recipe ``name``'s report, the runs it shows (the store's, and the finished runs of the
    report's committed run ledger that the store lacks) and every history it read."""
    recipe = load_recipe(name)
    uri = resolve_locations({"tracking_uri": tracking_uri})["tracking_uri"]
    experiment = experiment or recipe.experiment(scale)
    kept = ledger.read(ledger_dir or reports_dir() / recipe.name / scale)
    try:
        runs, store_read = current_runs(recipe, scale, uri, experiment), True
    except (StoreNotFound, ExperimentNotFound):
        if kept.runs.empty:
            raise
        runs, store_read = pd.DataFrame({"run_id": pd.Series(dtype=str)}), False
    parts = None if recipe.script is not None else recipe.scale(scale).parts
    restored = kept.missing_from(runs, parts)
    if not restored.empty:
        runs = pd.concat([runs, restored], ignore_index=True)
    meta = {
        "recipe": recipe.name,
        "scale": scale,
        "title": recipe.title,
        "paper": recipe.paper,
        "artifact": recipe.artifact,
        "description": recipe.description,
        "assumptions": recipe.assumptions,
        "machine": recipe.scale(scale).machine,
        "tracking_uri": shown_uri(tracking_uri),
        "experiment": experiment,
        "from_ledger": len(restored),
    }

    def from_store(run_ids: list[str], metric: str):
        return metric_histories(uri, run_ids, metric).to_pandas()

    def artifact_from_store(run_id: str, name: str):
        return load_json_artifact(uri, run_id, name)

    ledgered = set(restored.get("run_id", []))
    history = ledger.RecordingHistory(from_store, kept, ledgered, artifact_from_store)
    builder = load_script(recipe).build_report if recipe.script is not None else build_report
    return Built(builder(meta, recipe.report, runs, history), runs, history, store_read)


def report(
    name: str,
    scale: str = "quick",
    tracking_uri: str | None = None,
    experiment: str | None = None,
    out_dir: Path | None = None,
) -> list[Path]:
    """Render recipe ``name`` from MLflow alone into ``reports/NAME/SCALE`` and log it there too."""
    recipe = load_recipe(name)
    uri = resolve_locations({"tracking_uri": tracking_uri})["tracking_uri"]
    experiment = experiment or recipe.experiment(scale)
    target = out_dir or reports_dir() / recipe.name / scale
    built = build_with_inputs(name, scale, tracking_uri, experiment, target)
    written = write_report(built.report, target)
    written += ledger.write(target, built.runs, built.read.served, built.read.artifacts)
    if not built.store_read:
        _say(f"{recipe.name} {scale}: rendered from its run ledger alone (the store has no runs)")
    else:
        client = tracking.open_client(uri)
        exp_id = tracking.experiment_id(client, experiment, uri)
        tracking.log_report(client, exp_id, recipe.name, scale, written)
    _say(f"{recipe.name} {scale}: report in {target}/README.md")
    return written
