"""The MLflow layout written by study.tracking and read by analysis.query: tag and metric names."""

TAG = "regstudy"
SWEEP_TAG = f"{TAG}.sweep"
SWEEP_RUN_TAG = f"{TAG}.sweep_run_id"
TRIAL_TAG = f"{TAG}.trial_id"
CONFIG_TAG = f"{TAG}.config_id"
SEED_TAG = f"{TAG}.seed"
KIND_TAG = f"{TAG}.kind"
FAILURE_TAG = f"{TAG}.failure"
STOPPED_TAG = f"{TAG}.stopped_early"
RECIPE_TAG = f"{TAG}.recipe"
SCALE_TAG = f"{TAG}.scale"
FINGERPRINT_TAG = f"{TAG}.fingerprint"  # on a sweep run: its spec hashed, trials left out aside
MACHINE_TAG = f"{TAG}.machine"
CONFIRMS_TAG = f"{TAG}.confirms"  # on a confirm round's run: the sweep run whose top it reruns
PHASE_TAG = f"{TAG}.phase"  # on a trial run: "search" (absent) or "confirm"
PARENT_TAG = "mlflow.parentRunId"

EPOCH_METRICS = (
    "train_loss",
    "train_error",
    "val_loss",
    "val_error",
    "test_loss",
    "test_error",
    "epoch_time",
    "samples_per_s",
    "lr",
)
SUMMARY_METRICS = ("best_val_error", "best_epoch", "test_error_at_best")
HPARAM_PREFIX = "hp."
