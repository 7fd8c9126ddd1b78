"""Before a restore, point every trial of a sweep at a checkpoint that exists.

Tune keeps ``num_to_keep`` checkpoints per trial and saves the experiment state (which names each
trial's latest checkpoint) asynchronously; a driver killed between the two can leave a state that
names a checkpoint Tune has already deleted, and restoring that trial then fails for good
(``Could not recover from checkpoint as it does not exist on storage anymore``). The trial's
newest checkpoint still on storage holds everything a restore needs (training is resumed from the
snapshot's own epoch and RNG state, and MLflow skips epochs it has), so the state is rewritten to
name it before ``Tuner.restore`` reads it. The trial is read as a stub (no trainable needed here)
and written back with the flag it had: Tune keeps a stored ``stub`` on restore, and a stub trial
that needs a new actor fails with ``Invalid trainable``.

This reads Tune's experiment state the way ``Tuner.restore`` itself does (its cloudpickled
parts included), so it trusts the storage path exactly as far as a restore already must.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ray.train import Checkpoint
from ray.train._internal.session import _TrainingResult
from ray.tune.experiment.trial import Trial, _TrainingRunMetadata
from ray.tune.result import EXPR_RESULT_FILE
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


def result_rows(text: str) -> list[dict]:
    """The reports in a trial's ``result.json`` (Tune's JSON logger, one a line), in order; a
    line cut short by a kill mid-write is not a report."""
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def reported_checkpoints(trial_dir: Path) -> dict[str, dict]:
    """Checkpoint folder name -> the result reported with it, from the trial's ``result.json``
    (what the driver wrote down)."""
    results = trial_dir / EXPR_RESULT_FILE
    rows = result_rows(results.read_text()) if results.exists() else []
    return {row["checkpoint_dir_name"]: row for row in rows if row.get("checkpoint_dir_name")}


def _repaired(trial_json: str, meta_json: str) -> tuple[str, str] | None:
    """The trial's state naming its newest checkpoint that exists *and* whose result was written
    down, or ``None`` if it needs no repair. A newer checkpoint without a result (the driver was
    killed between the worker saving it and the driver writing its result) is removed: resuming
    from it would skip the epoch whose metrics nobody recorded; from the one before, the epoch is
    trained again from the snapshot's RNG state, the same epoch. No such checkpoint: the trial
    starts over (none of its epochs were written down after a checkpoint)."""
    meta = _TrainingRunMetadata.from_json_state(meta_json)
    manager = meta.checkpoint_manager
    latest = manager.latest_checkpoint_result
    if latest is None or Path(latest.checkpoint.path).exists():
        return None
    trial = Trial.from_json_state(trial_json, stub=True)
    trial_dir = Path(latest.checkpoint.path).parent
    reported = reported_checkpoints(trial_dir)
    on_disk = existing_checkpoints(trial_dir)
    usable = [p for p in on_disk if p.name in reported]
    newest = usable[-1] if usable else None
    for unrecorded in on_disk[on_disk.index(newest) + 1 if newest else 0 :]:
        shutil.rmtree(unrecorded)
    kept = []
    if newest is not None:
        checkpoint = Checkpoint(str(newest), filesystem=latest.checkpoint.filesystem)
        kept = [
            r
            for r in manager.best_checkpoint_results
            if Path(r.checkpoint.path).exists() and r.checkpoint.path != str(newest)
        ]
        kept.append(_TrainingResult(checkpoint=checkpoint, metrics=reported[newest.name]))
        index = int(CHECKPOINT_DIR.fullmatch(newest.name).group(1))
        trial.storage.current_checkpoint_index = max(trial.storage.current_checkpoint_index, index)
    manager._checkpoint_results = kept
    manager._latest_checkpoint_result = kept[-1] if kept else None
    trial.run_metadata = meta
    trial.stub = json.loads(trial_json).get("stub", False)  # read as a stub, written as it was
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
