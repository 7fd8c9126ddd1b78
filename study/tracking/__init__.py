"""Every MLflow write of regstudy, from the driver only (one writer: no SQLite lock contention).

Layout: one experiment per study name; one parent run per sweep (the spec as params and as a
YAML artifact, the search space, git commit, package versions, host), nested under a recipe's
run when a recipe ran it; one nested run per trial (its config as params, its seed, per-epoch
metrics with ``step=epoch``, summary metrics, FINISHED or FAILED with the reason as a tag).

- :mod:`.store`: the client (a new SQLite store created under a file lock), the experiment,
  params as MLflow takes them;
- :mod:`.runs`: opening and ending sweep, recipe and script runs, the ending rule;
- :mod:`.trials`: the Tune callback that writes one run per trial, reattached by tags on resume;
- :mod:`.lifecycle`: signals, and ending every open run whatever stops the driver.

Reading runs back is :mod:`analysis.query`'s.
"""

from .lifecycle import (
    DriverStopped,
    Interrupted,
    driver,
    ending,
    fitting,
    raise_if_stopped,
    reason_of,
    resumable,
    stop_requested,
)
from .runs import (
    FAILED,
    FINISHED,
    KILLED,
    SweepCounts,
    end_run,
    end_running_trials,
    end_sweep_run,
    is_confirm_round,
    log_best,
    log_finished_trial,
    log_report,
    open_recipe_run,
    reopen_run,
    start_sweep_run,
)
from .store import as_params, experiment_id, flatten, open_client, param_key, param_value
from .trials import MlflowTrialLogger, trial_record
from .trials import _error_text as _error_text

__all__ = [
    "FAILED",
    "FINISHED",
    "KILLED",
    "DriverStopped",
    "Interrupted",
    "MlflowTrialLogger",
    "SweepCounts",
    "as_params",
    "driver",
    "end_run",
    "end_running_trials",
    "end_sweep_run",
    "ending",
    "experiment_id",
    "fitting",
    "flatten",
    "is_confirm_round",
    "log_best",
    "log_finished_trial",
    "log_report",
    "open_client",
    "open_recipe_run",
    "param_key",
    "param_value",
    "raise_if_stopped",
    "reason_of",
    "reopen_run",
    "resumable",
    "start_sweep_run",
    "stop_requested",
    "trial_record",
]
