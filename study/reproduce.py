"""``study reproduce`` and ``study report``: run a recipe's sweeps, then render its report.

Reproducing is resumable at every level: a part whose sweep finished is
reused, an interrupted one is resumed, a missing one is started. Reporting
reads MLflow only, so a cluster's results can be rendered on a laptop
pointed at the tracking server.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Any

from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from analysis.query import metric_histories, sweep_runs, trial_runs
from analysis.render import write_report
from analysis.reports import build_report
from analysis.schema import KIND_TAG, RECIPE_TAG, TAG

from .recipes import Recipe, load_recipe, load_script
from .spec import SpecError, resolve_locations
from .tracking import experiment_id

SCALE_TAG = f"{TAG}.scale"
PART_TAG = f"{TAG}.part"


def reports_dir() -> Path:
    return Path("reports")


def recipe_run(client: MlflowClient, experiment: str, recipe: Recipe, scale: str, uri: str) -> str:
    """The recipe's MLflow parent run at this scale: found by its tags, else created."""
    exp_id = experiment_id(client, experiment, uri)
    found = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{KIND_TAG}` = 'recipe' and tags.`{RECIPE_TAG}` = '{recipe.name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    tags = {KIND_TAG: "recipe", RECIPE_TAG: recipe.name, SCALE_TAG: scale, "host": platform.node()}
    return client.create_run(exp_id, tags=tags, run_name=f"{recipe.name}-{scale}").info.run_id


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
    from .runner import resume, shutdown, sweep, sweep_status

    recipe = load_recipe(name)
    overrides = dict(overrides or {})
    uri = resolve_locations({"tracking_uri": overrides.get("tracking_uri")})["tracking_uri"]
    experiment = recipe.experiment(scale)
    options = {**recipe.scale(scale).options, **_script_options(recipe, overrides)}
    specs = {} if recipe.script is not None else recipe.specs(scale, overrides, parts)
    client = MlflowClient(uri)
    parent = recipe_run(client, experiment, recipe, scale, uri)
    client.update_run(parent, status="RUNNING")
    start = time.time()
    try:
        if recipe.script is not None:
            load_script(recipe).run(
                scale=scale,
                options=options,
                tracking_uri=uri,
                experiment=experiment,
                parent_run_id=parent,
            )
        for part, spec in specs.items():
            status = sweep_status(spec)
            _say(f"{recipe.name} {scale} part {part}: {status}")
            if status == "stale" and not fresh:
                raise SpecError(
                    f"recipe {recipe.name!r} part {part!r} changed since its sweep ran; "
                    "rerun it with --fresh"
                )
            if status == "absent" or (fresh and status != "unfinished"):
                sweep(spec, overwrite=fresh, verbose=verbose, parent_run_id=parent)
            elif status == "unfinished":
                resume(spec.name, spec.storage_path, verbose=verbose)
            shutdown()
    except BaseException:
        client.set_terminated(parent, status=RunStatus.to_string(RunStatus.FAILED))
        raise
    _say(f"{recipe.name} {scale}: runs done in {(time.time() - start) / 60:.1f} min")
    written = report(name, scale, tracking_uri=uri, out_dir=out_dir)
    client.set_terminated(parent, status=RunStatus.to_string(RunStatus.FINISHED))
    return written


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


def build(
    name: str,
    scale: str = "quick",
    tracking_uri: str | None = None,
    experiment: str | None = None,
):
    """Recipe ``name``'s report at ``scale``, built from MLflow alone (nothing written)."""
    recipe = load_recipe(name)
    uri = resolve_locations({"tracking_uri": tracking_uri})["tracking_uri"]
    experiment = experiment or recipe.experiment(scale)
    runs = current_runs(recipe, scale, uri, experiment)
    meta = {
        "recipe": recipe.name,
        "scale": scale,
        "title": recipe.title,
        "paper": recipe.paper,
        "artifact": recipe.artifact,
        "description": recipe.description,
        "assumptions": recipe.assumptions,
        "machine": recipe.scale(scale).machine,
        "tracking_uri": uri,
        "experiment": experiment,
    }

    def history(run_ids: list[str], metric: str):
        return metric_histories(uri, run_ids, metric).to_pandas()

    builder = load_script(recipe).build_report if recipe.script is not None else build_report
    return builder(meta, recipe.report, runs, history)


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
    built = build(name, scale, uri, experiment)
    target = out_dir or reports_dir() / recipe.name / scale
    written = write_report(built, target)
    client = MlflowClient(uri)
    parent = recipe_run(client, experiment, recipe, scale, uri)
    for path in written:
        client.log_artifact(parent, str(path), artifact_path="report")
    _say(f"{recipe.name} {scale}: report in {target}/README.md")
    return written
