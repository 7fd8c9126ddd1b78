"""While Tune runs, the trial logger's MLflow writes wait for no store: the callbacks hand them
to a thread, which writes a trial's epochs in batches and is drained before any run is ended.

A real SQLite store; the trials are Tune's as the logger sees them (id, config, last result).
"""

import time
from types import SimpleNamespace

from mlflow.tracking import MlflowClient

from analysis.schema import KIND_TAG
from study.tracking import MlflowTrialLogger, end_running_trials, open_client

EPOCHS = 4
SLOW_S = 0.2  # each log_batch of the slow store takes this long


def _trial(trial_id: str, seed: int) -> SimpleNamespace:
    config = {"dataset": "digits", "model": "pgrid_cnn", "seed": seed, "lr": 0.05}
    return SimpleNamespace(trial_id=trial_id, config=config, last_result=None, storage=None)


def _report(epoch: int) -> dict:
    return {"epoch": epoch, "val_error": 0.5 / epoch, "train_loss": 1.0 / epoch, "node_id": "n"}


def _sweep(tmp_path, name: str) -> tuple[MlflowClient, str, str, MlflowTrialLogger]:
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = open_client(uri)
    exp = client.create_experiment(name)
    parent = client.create_run(exp, tags={KIND_TAG: "sweep"}).info.run_id
    return client, exp, parent, MlflowTrialLogger(uri, exp, parent, epochs=EPOCHS)


def _trial_runs(client: MlflowClient, exp: str) -> dict[str, object]:
    found = client.search_runs([exp], filter_string=f"tags.`{KIND_TAG}` = 'trial'")
    return {run.data.tags["regstudy.trial_id"]: run for run in found}


def test_callbacks_return_at_once_on_a_slow_store_and_a_trials_epochs_land_batched(tmp_path):
    client, exp, _, logger = _sweep(tmp_path, "slow")
    batches = []
    log_batch = client.log_batch

    def slow_log_batch(run_id, metrics=(), params=(), tags=()):
        time.sleep(SLOW_S)
        batches.append(len(metrics))
        log_batch(run_id, metrics=metrics, params=params, tags=tags)

    client.log_batch = slow_log_batch
    logger._client = client
    trials = [_trial("a", 0), _trial("b", 1)]
    logger.setup()
    start = time.perf_counter()
    for trial in trials:
        logger.on_trial_start(0, [], trial)
    for epoch in range(1, EPOCHS + 1):
        for trial in trials:
            logger.on_trial_result(0, [], trial, _report(epoch))
    for trial in trials:
        trial.last_result = _report(EPOCHS) | {"best_val_error": 0.1}
        logger.on_trial_complete(0, [], trial)
    # 2 trials x (record + 4 epochs + ending) writes at 0.2 s each would take 2.4 s inline
    assert time.perf_counter() - start < SLOW_S
    logger.on_experiment_end([])
    assert logger.pending == 0

    runs = _trial_runs(client, exp)
    for run in runs.values():
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "epoch"))
        assert steps == list(range(1, EPOCHS + 1)) and run.info.status == "FINISHED"
    # per trial: its record, its epochs in fewer calls than epochs, its ending
    assert len(runs) == 2 and len(batches) < 2 * (1 + EPOCHS + 1)


def test_ending_a_sweeps_runs_first_lands_the_trial_writes_still_queued(tmp_path):
    """The driver is stopped while writes wait: the trial that finished ends FINISHED with all
    its epochs, the one still training KILLED; no late write ends a run a second time."""
    client, exp, parent, logger = _sweep(tmp_path, "stopped")
    done, training = _trial("done", 0), _trial("training", 1)
    logger.setup()
    for epoch in range(1, EPOCHS + 1):
        logger.on_trial_result(0, [], done, _report(epoch))
    logger.on_trial_result(0, [], training, _report(1))
    done.last_result = _report(EPOCHS) | {"best_val_error": 0.1}
    logger.on_trial_complete(0, [], done)

    assert end_running_trials(client, parent, "KILLED", "interrupted by SIGTERM") == 1
    assert logger.pending == 0
    runs = _trial_runs(client, exp)
    assert runs["done"].info.status == "FINISHED"
    assert "regstudy.failure" not in runs["done"].data.tags
    assert runs["training"].info.status == "KILLED"
    steps = client.get_metric_history(runs["done"].info.run_id, "epoch")
    assert sorted(m.step for m in steps) == list(range(1, EPOCHS + 1))
    logger.on_experiment_end([])  # Tune's own end after the driver's: nothing left, no error
    assert _trial_runs(client, exp)["training"].info.status == "KILLED"
