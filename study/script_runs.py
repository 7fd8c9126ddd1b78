"""MLflow runs for recipes that are scripts rather than sweeps (Figure 2, the LRD toy).

A script trains in-process and records each configuration and seed as a
trial run nested under the recipe's run, with the same tags a sweep's
trials get, so :mod:`analysis.query` reads both alike. A configuration and
seed that already finished is skipped: rerunning a script resumes it.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from analysis import ledger
from analysis.schema import (
    CONFIG_TAG,
    KIND_TAG,
    MACHINE_TAG,
    PARENT_TAG,
    RECIPE_TAG,
    SCALE_TAG,
    SEED_TAG,
    SWEEP_RUN_TAG,
)
from trainables.machine import describe_machine

from .spec import config_id
from .tracking import as_params, experiment_id, flatten, log_finished_trial, open_client


class ScriptRuns:
    """Log one finished trial per (config, seed) under a recipe's parent run."""

    def __init__(self, tracking_uri: str, experiment: str, parent_run_id: str) -> None:
        self.client = open_client(tracking_uri)
        self.experiment_id = experiment_id(self.client, experiment, tracking_uri)
        self.parent_run_id = parent_run_id
        self.ledgered = self._ledgered()

    def _ledgered(self) -> set[str]:
        """The trials the recipe's committed report holds as finished in its run ledger."""
        from .reproduce import reports_dir

        tags = self.client.get_run(self.parent_run_id).data.tags
        recipe, scale = tags.get(RECIPE_TAG), tags.get(SCALE_TAG)
        if not recipe or not scale:
            return set()
        return ledger.read(reports_dir() / recipe / scale).finished()

    def done(self, config: dict[str, Any]) -> bool:
        """Whether this config (seed included) already has a finished run, in the store or in
        the recipe's run ledger."""
        if ledger.trial_key(config_id(config), config.get("seed", 0)) in self.ledgered:
            return True
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=(
                f"tags.`{KIND_TAG}` = 'trial' and tags.`{CONFIG_TAG}` = '{config_id(config)}' "
                f"and tags.`{SEED_TAG}` = '{config.get('seed', 0)}' "
                "and attributes.status = 'FINISHED'"
            ),
            max_results=1,
        )
        return bool(found)

    def log(
        self,
        config: dict[str, Any],
        metrics: dict[str, float],
        histories: dict[str, list[float]] | None = None,
        artifacts: dict[str, Any] | None = None,
        seconds: float | None = None,
    ) -> str:
        """Record a finished trial: params, final metrics, per-step histories, JSON artifacts.

        ``seconds``, the training's wall time, is recorded as a sweep trial's is (an
        ``epoch_time`` history, here of one step, and the torch threads it ran on), so a
        report states the cost of a script's trainings as it does a sweep's.
        """
        tags = {
            KIND_TAG: "trial",
            PARENT_TAG: self.parent_run_id,
            SWEEP_RUN_TAG: self.parent_run_id,
            CONFIG_TAG: config_id(config),
            SEED_TAG: str(config.get("seed", 0)),
            MACHINE_TAG: describe_machine(),
        }
        stamp = int(time.time() * 1000)
        values = [Metric(k, float(v), stamp, 0) for k, v in metrics.items()]
        for key, series in (histories or {}).items():
            values += [Metric(key, float(v), stamp, step) for step, v in enumerate(series, 1)]
        flat = flatten(config)
        if seconds is not None:
            import torch

            values.append(Metric("epoch_time", float(seconds), stamp, 1))
            flat.setdefault("num_threads", torch.get_num_threads())
        params = as_params(flat)
        return log_finished_trial(
            self.client, self.experiment_id, tags, params, values, artifacts or {}
        )


def load_json_artifact(tracking_uri: str, run_id: str, name: str) -> Any:
    """A JSON artifact a script logged with :meth:`ScriptRuns.log`."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = MlflowClient(tracking_uri)
    with tempfile.TemporaryDirectory() as directory:
        path = client.download_artifacts(run_id, f"{name}.json", directory)
        return json.loads(Path(path).read_text())


def latest_finished(runs, keys: list[str]):
    """The finished runs, one per ``keys`` (the newest): a script rerun after its config's
    recorded form changed cannot count one training twice."""
    finished = runs[runs["status"] == "FINISHED"]
    if finished.empty:
        return finished.copy()
    return finished.sort_values("start_time").drop_duplicates(keys, keep="last").copy()
