"""Before a restore, point every trial of a sweep at a checkpoint that exists.

Tune keeps ``num_to_keep`` checkpoints per trial and saves the experiment state (which names each
trial's latest checkpoint) asynchronously; a driver killed between the two can leave a state that
names a checkpoint Tune has already deleted, and restoring that trial then fails for good
(``Could not recover from checkpoint as it does not exist on storage anymore``). The trial's
newest checkpoint still on storage holds everything a restore needs (training is resumed from the
snapshot's own epoch and RNG state, and MLflow skips epochs it has), so the state is rewritten to
name it before ``Tuner.restore`` reads it.

This reads Tune's experiment state the way ``Tuner.restore`` itself does (its cloudpickled
parts included), so it trusts the storage path exactly as far as a restore already must.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ray.train import Checkpoint
from ray.train._internal.session import _TrainingResult
from ray.tune.experiment.trial import Trial, _TrainingRunMetadata
from ray.tune.utils.serialization import TuneFunctionEncoder, _loads_with_cloudpickle

STATE_FILE = re.compile(r"experiment_state-.*\.json")
CHECKPOINT_DIR = re.compile(r"checkpoint_(\d+)")


def newest_state_file(experiment_dir: Path) -> Path | None:
    """The experiment state Tune restores from: the newest ``experiment_state-*.json``."""
    found = [p for p in experiment_dir.iterdir() if STATE_FILE.fullmatch(p.name)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def existing_checkpoints(trial_dir: Path) -> list[Path]:
    """The trial's checkpoint folders on storage, oldest first."""
    found = [p for p in trial_dir.glob("checkpoint_*") if CHECKPOINT_DIR.fullmatch(p.name)]
    return sorted(found, key=lambda p: int(CHECKPOINT_DIR.fullmatch(p.name).group(1)))


def _repaired(trial_json: str, meta_json: str) -> tuple[str, str] | None:
    """The trial's state naming its newest existing checkpoint, or ``None`` if it needs none."""
    meta = _TrainingRunMetadata.from_json_state(meta_json)
    manager = meta.checkpoint_manager
    latest = manager.latest_checkpoint_result
    if latest is None or Path(latest.checkpoint.path).exists():
        return None
    trial = Trial.from_json_state(trial_json, stub=True)
    kept = [r for r in manager.best_checkpoint_results if Path(r.checkpoint.path).exists()]
    on_disk = existing_checkpoints(Path(latest.checkpoint.path).parent)
    if on_disk:
        newest = on_disk[-1]
        index = int(CHECKPOINT_DIR.fullmatch(newest.name).group(1))
        metrics = {**latest.metrics, "checkpoint_dir_name": newest.name}
        metrics["training_iteration"] = index + 1
        result = _TrainingResult(
            checkpoint=Checkpoint(str(newest), filesystem=latest.checkpoint.filesystem),
            metrics=metrics,
        )
        kept = [r for r in kept if r.checkpoint.path != str(newest)] + [result]
        trial.storage.current_checkpoint_index = max(trial.storage.current_checkpoint_index, index)
    manager._checkpoint_results = kept
    manager._latest_checkpoint_result = kept[-1] if kept else None
    trial.run_metadata = meta
    trial.invalidate_json_state()
    return trial.get_json_state()


def point_at_existing_checkpoints(experiment_dir: str) -> list[str]:
    """Rewrite the experiment state so no trial names a deleted checkpoint; the ids of the
    trials it changed. A remote storage path is left to Tune."""
    folder = Path(experiment_dir)
    if "://" in experiment_dir or not folder.is_dir():
        return []
    path = newest_state_file(folder)
    if path is None:
        return []
    state = _loads_with_cloudpickle(path.read_text())
    changed = []
    for i, (trial_json, meta_json) in enumerate(state["trial_data"]):
        repaired = _repaired(trial_json, meta_json)
        if repaired is not None:
            state["trial_data"][i] = list(repaired)
            changed.append(json.loads(trial_json)["trial_id"])
    if changed:
        staged = path.with_suffix(".repaired")
        staged.write_text(json.dumps(state, cls=TuneFunctionEncoder))
        staged.replace(path)
    return changed
