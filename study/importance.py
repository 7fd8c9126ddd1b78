"""``study importance``: which knobs explain a sweep's metric, and how much of it is seed noise.

The sweep's study is rebuilt from MLflow (:func:`study.optuna_store.record_sweep`, the seed a
param of its own) and ranked over its completed trials by two of Optuna's evaluators: fANOVA
(the share of the metric's variance each param explains) and PED-ANOVA (how much each param
sets the top 10% of trials apart). The table, a CSV and a bar chart go to ``--out``, and both
files to the sweep's MLflow run.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
from optuna.importance import (
    FanovaImportanceEvaluator,
    PedAnovaImportanceEvaluator,
    get_param_importances,
)
from optuna.trial import TrialState

from analysis.schema import SWEEP_TAG

from .optuna_store import newest_sweep, record_sweep
from .tracking.runs import log_artifacts
from .tracking.store import open_client

ARTIFACT_PATH = "importance"
COLUMNS = {"fanova": "fANOVA", "ped_anova": "PED-ANOVA"}


class NothingToAssess(LookupError):
    """A sweep whose trials cannot rank its params: none completed, or fewer than two vary."""


@dataclass(frozen=True)
class Importances:
    """A sweep's ranked params and where the study and the files went."""

    sweep: str
    sweep_run_id: str
    study_name: str
    storage_url: str
    metric: str
    mode: str
    completed: int
    failed: int
    table: pd.DataFrame  # param, fanova, ped_anova; most important (by fANOVA) first
    partial: list[str]  # params some completed trials lack (a method off in them): not ranked
    files: list[Path]


def split_params(study: optuna.Study) -> tuple[list[str], list[str]]:
    """The params to rank (set in every completed trial, with two values or more) and those
    set in only some completed trials."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = sorted({name for trial in complete for name in trial.params})
    in_all = [n for n in names if all(n in t.params for t in complete)]
    varying = [n for n in in_all if len({repr(t.params[n]) for t in complete}) > 1]
    return varying, [n for n in names if n not in in_all]


def rank(study: optuna.Study, params: list[str]) -> pd.DataFrame:
    """fANOVA and PED-ANOVA importances of ``params`` (each column sums to 1), by fANOVA."""
    with warnings.catch_warnings():  # few trials: PED-ANOVA says its quantiles are coarse
        warnings.simplefilter("ignore")
        fanova = get_param_importances(
            study, evaluator=FanovaImportanceEvaluator(seed=0), params=params
        )
        ped = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator(), params=params)
    frame = pd.DataFrame(
        {
            "param": params,
            "fanova": [fanova[p] for p in params],
            "ped_anova": [ped[p] for p in params],
        }
    )
    return frame.sort_values(["fanova", "param"], ascending=[False, True], ignore_index=True)


def plot(frame: pd.DataFrame, title: str, path: Path) -> Path:
    """Both evaluators' importances side by side, one pair of bars per param, top first."""
    shown = frame.iloc[::-1]
    y = np.arange(len(shown))
    fig, ax = plt.subplots(figsize=(8, 1.4 + 0.5 * len(shown)))
    for i, (column, label) in enumerate(COLUMNS.items()):
        ax.barh(y + (0.2 if i == 0 else -0.2), shown[column], 0.4, label=label)
    ax.set_yticks(y, shown["param"])
    ax.set_xlabel("importance (each evaluator's sums to 1)")
    ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def importance(
    tracking_uri: str, experiment: str, metric: str, mode: str, storage_url: str, out: Path
) -> Importances:
    """Rank the params of ``experiment``'s newest sweep, write ``importance.csv`` and
    ``importance.png`` into ``out`` and log both to the sweep's MLflow run."""
    sweep = newest_sweep(tracking_uri, experiment)
    name = sweep.data.tags.get(SWEEP_TAG, experiment)
    study = record_sweep(tracking_uri, experiment, name, metric, mode, storage_url)
    completed = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
    where = f"sweep {name!r} of experiment {experiment!r}"
    if not completed:
        raise NothingToAssess(
            f"{where}: no completed trial with a finite {metric} "
            f"({len(study.trials)} ended, {failed} failed); nothing to rank"
        )
    params, partial = split_params(study)
    if len(params) < 2:
        raise NothingToAssess(
            f"{where}: {params or 'no param'} varies over its {completed} completed trials; "
            "ranking needs two or more (a knob and the seed: budget.repeats > 1)"
        )
    table = rank(study, params)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "importance.csv"
    table.to_csv(csv, index=False)
    png = plot(table, f"importance of {metric} ({mode}): {name}", out / "importance.png")
    log_artifacts(open_client(tracking_uri), sweep.info.run_id, [csv, png], ARTIFACT_PATH)
    return Importances(
        sweep=name,
        sweep_run_id=sweep.info.run_id,
        study_name=study.study_name,
        storage_url=storage_url,
        metric=metric,
        mode=mode,
        completed=completed,
        failed=failed,
        table=table,
        partial=partial,
        files=[csv, png],
    )


def render(result: Importances) -> str:
    """The table with a line on what it ranks and lines on where things went."""
    shown = result.table.rename(columns=COLUMNS)
    lines = [
        f"importance of {result.metric} ({result.mode}) in sweep {result.sweep}: "
        f"{result.completed} completed trials, {result.failed} failed",
        shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
    ]
    if result.partial:
        lines.append(f"not ranked (set in only some trials): {', '.join(result.partial)}")
    files = ", ".join(str(path) for path in result.files)
    lines += [
        f"Optuna study {result.study_name!r} in {result.storage_url}",
        f"wrote {files}; logged under {ARTIFACT_PATH}/ of run {result.sweep_run_id}",
    ]
    return "\n".join(lines)
