"""The thin Ray Tune adapter: config in, one report per epoch out, checkpoints every k epochs.

Everything about training lives in :mod:`trainables.train`; this function only
wires Tune's config, reporting and checkpoint storage to it, so the trial
that Tune restores from a checkpoint continues exactly where it stopped.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from .config import TrainConfig, apply_variant
from .machine import describe_machine
from .train import fit, load_snapshot
from .trial_config import ADAPTER_KEYS, POINT, lay_point, training_values

__all__ = ["ADAPTER_KEYS", "POINT", "apply_variant", "lay_point", "split_config", "train_trial"]

CHECKPOINT_FILE = "trial.pt"


def split_config(config: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    """The training config, and the adapter's own settings, out of a Tune trial config.

    A ``variant`` (a named set of overrides, from a spec's ``variants``) is applied on top
    with :func:`apply_variant`: ``arch``, ``augment_options`` and ``data_options`` merge key by
    key, so ``{arch: {dropout: 0.1}}`` adds dropout to the trial's architecture.
    """
    values, settings = training_values(config)
    return TrainConfig.from_dict(values), settings


def _load(checkpoint: tune.Checkpoint) -> dict[str, Any]:
    with checkpoint.as_directory() as directory:
        return load_snapshot(Path(directory) / CHECKPOINT_FILE)


def train_trial(config: dict[str, Any]) -> None:
    """A Tune function trainable running :func:`trainables.train.fit` for one config."""
    train_config, settings = split_config(config)
    every = int(settings.get("checkpoint_every", 1))
    checkpoint = tune.get_checkpoint()
    resume = _load(checkpoint) if checkpoint else None
    node_id = ray.get_runtime_context().get_node_id()
    for report in fit(train_config, resume=resume):
        metrics = {
            **report.metrics,
            "node_id": node_id,
            "machine": describe_machine(),
            "failure": report.failure or "",
        }
        last = report.epoch == train_config.epochs or report.failure is not None
        if report.failure is None and (report.epoch % every == 0 or last):
            with tempfile.TemporaryDirectory() as directory:
                torch.save(report.snapshot(), Path(directory) / CHECKPOINT_FILE)
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
        else:
            tune.report(metrics)
        if report.failure is not None:
            return
