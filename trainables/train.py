"""One trial, top to bottom: data, model, optimizer, and the epoch loop. Pure torch, no Ray.

``fit(config)`` yields one :class:`EpochReport` per epoch with the metrics of
that epoch and a way to snapshot everything needed to resume. A run resumed
from such a snapshot (``fit(config, resume=state)``) continues exactly as the
uninterrupted run would have: model, optimizer (LRD's mask generator
included), schedule and every random generator come back, and the data order
is a function of (seed, epoch).

The regularizers under study enter at four places only: the activation and
norm the model is built with (Drop-Activation, VCL), the loss
(``+ vcl_gamma * vcl_penalty``), the labels (noisy labels) and the optimizer
wrappers (LRD, dropout on G, noisy gradient). Per-layer gradient clipping
(``clip_per_layer``, VCL's stabiliser) is a knob of its own, for any arm.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer

from .config import TrainConfig
from .data import Augment, DatasetSplits, load_dataset, make_loader
from .models import build_model
from .optim import make_optimizer, make_scheduler
from .regularizers import clip_grad_norm_per_layer_, disturb_labels, vcl_penalty


@dataclass
class EpochReport:
    """What one epoch measured, and a snapshot function for checkpointing after it.

    ``snapshot()`` returns live state (``state_dict`` references): save or copy
    it before advancing the generator.
    """

    epoch: int
    metrics: dict[str, float]
    snapshot: Callable[[], dict[str, Any]]
    failure: str | None = None


@dataclass
class Trial:
    """Everything a running trial holds; ``state_dict`` is exactly what a resume needs."""

    config: TrainConfig
    data: DatasetSplits
    model: nn.Module
    optimizer: Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    device: torch.device
    epoch: int = 0
    best: dict[str, float] = field(default_factory=dict)

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "best": dict(self.best),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": _rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Read with today's defaults and compared on what is trained: a field added since the
        # checkpoint, or a changed default of a knob that is off, does not make it foreign.
        try:
            written_by = TrainConfig.from_dict(state["config"]).identity()
        except (TypeError, ValueError):
            written_by = None
        if written_by != self.config.identity():
            raise ValueError("checkpoint was written by a different config; refusing to resume")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch = state["epoch"]
        self.best = dict(state["best"])
        _set_rng_state(state["rng"])


def pick_device(config: TrainConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def build_trial(config: TrainConfig) -> Trial:
    """Seed every generator, then load the data and build model, optimizer and schedule."""
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    _seed_everything(config.seed)
    device = pick_device(config)
    data = load_dataset(
        config.dataset,
        root=config.data_dir,
        val_fraction=config.val_fraction,
        seed=config.split_seed,
        to_rgb32=config.to_rgb32,
        **config.data_options,
    )
    if config.train_subset is not None:
        if config.train_subset > len(data.train):
            raise ValueError(
                f"train_subset={config.train_subset} exceeds the "
                f"{len(data.train)} training examples"
            )
        data = _subset(data, "train", config.train_subset, config.split_seed)
    if config.eval_subset is not None:
        for which in ("val", "test"):
            if getattr(data, which) is not None:
                data = _subset(data, which, config.eval_subset, config.split_seed)
    model = build_model(
        config.model,
        data.num_classes,
        data.in_shape,
        activation=config.activation,
        norm=config.norm,
        **config.activation_options(),
        **config.norm_options(),
        **config.arch,
    ).to(device)
    optimizer = make_optimizer(config, model.parameters())
    return Trial(config, data, model, optimizer, make_scheduler(config, optimizer), device)


def _subset(data: DatasetSplits, which: str, size: int, seed: int) -> DatasetSplits:
    """The first ``size`` examples of a seeded shuffle of one split (for quick, small runs); a
    split already no larger is kept whole."""
    split = getattr(data, which)
    if size >= len(split):
        return data
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    return dataclasses.replace(data, **{which: split.subset(order[:size])})


def task_loss(task: str) -> Callable[[Tensor, Tensor], Tensor]:
    return F.mse_loss if task == "regression" else F.cross_entropy


def errors(outputs: Tensor, targets: Tensor, task: str) -> Tensor:
    """Summed error over a batch: misclassifications, or squared error for regression."""
    if task == "regression":
        return F.mse_loss(outputs, targets, reduction="sum")
    return (outputs.argmax(dim=1) != targets).sum()


def train_step(
    model: nn.Module, x: Tensor, y: Tensor, optimizer: Optimizer, config: TrainConfig, task: str
) -> tuple[Tensor, Tensor, Tensor]:
    """One SGD step on (x, y); returns the task loss, the VCL penalty and the outputs, detached.

    With ``clip_per_layer`` set, each layer's gradient is clipped to that L2 norm before the
    step, whatever the normalization (so the arms of a comparison differ in nothing else)."""
    outputs = model(x)
    loss = task_loss(task)(outputs, y)
    penalty = vcl_penalty(model) if config.uses_vcl else torch.zeros((), device=x.device)
    optimizer.zero_grad(set_to_none=True)
    (loss + config.vcl_gamma * penalty if config.uses_vcl else loss).backward()
    if config.clip_per_layer is not None:
        clip_grad_norm_per_layer_(model, config.clip_per_layer)
    optimizer.step()
    return loss.detach(), penalty.detach(), outputs.detach()


def train_epoch(trial: Trial, loader) -> dict[str, float]:
    config, task = trial.config, trial.data.task
    trial.model.train()
    loss_sum = torch.zeros((), device=trial.device)
    penalty_sum = torch.zeros((), device=trial.device)
    error_sum = torch.zeros((), device=trial.device)
    seen = 0
    start = time.perf_counter()
    for x, y in loader:
        if config.label_noise > 0:
            y = disturb_labels(y, trial.data.num_classes, config.label_noise)
        loss, penalty, outputs = train_step(trial.model, x, y, trial.optimizer, config, task)
        loss_sum += loss * len(y)
        penalty_sum += penalty * len(y)
        error_sum += errors(outputs, y, task)
        seen += len(y)
    elapsed = time.perf_counter() - start
    return {
        "train_loss": loss_sum.item() / seen,
        "train_error": error_sum.item() / seen,
        "vcl_penalty": penalty_sum.item() / seen,
        "epoch_time": elapsed,
        "samples_per_s": seen / elapsed,
    }


@torch.no_grad()
def evaluate(model: nn.Module, loader, task: str) -> tuple[float, float]:
    """Mean loss and error of ``model`` in eval mode over ``loader``."""
    model.eval()
    loss_sum = error_sum = 0.0
    seen = 0
    for x, y in loader:
        outputs = model(x)
        loss_sum += task_loss(task)(outputs, y, reduction="sum").item()
        error_sum += errors(outputs, y, task).item()
        seen += len(y)
    return loss_sum / seen, error_sum / seen


def fit(config: TrainConfig, resume: dict[str, Any] | None = None) -> Iterator[EpochReport]:
    """Train ``config`` for its epochs, yielding each epoch's report; stop early on divergence."""
    trial = build_trial(config)
    if resume is not None:
        trial.load_state_dict(resume)
    loader_options = {"device": trial.device, "seed": config.seed}
    augment = Augment(config.augment or "none", **config.augment_options_in_use())
    train_loader = make_loader(
        trial.data,
        "train",
        config.batch_size,
        augment=augment,
        drop_last=config.needs_full_batches,
        **loader_options,
    )
    if len(train_loader) == 0:
        raise ValueError(
            f"batch_size={config.batch_size} exceeds the {len(trial.data.train)} training samples; "
            f"norm={config.norm!r} trains on full batches only"
        )
    eval_loaders = {
        which: make_loader(trial.data, which, config.eval_batch_size, **loader_options)
        for which in ("val", "test")
        if getattr(trial.data, which) is not None
    }
    while trial.epoch < config.epochs:
        train_loader.set_epoch(trial.epoch)
        metrics = train_epoch(trial, train_loader)
        trial.epoch += 1
        metrics["epoch"] = trial.epoch
        metrics["lr"] = trial.optimizer.param_groups[0]["lr"]
        trial.scheduler.step()
        if not math.isfinite(metrics["train_loss"]):
            reason = f"training loss became {metrics['train_loss']} in epoch {trial.epoch}"
            yield EpochReport(trial.epoch, metrics, trial.state_dict, failure=reason)
            return
        if trial.epoch % config.eval_every == 0 or trial.epoch == config.epochs:
            for which, loader in eval_loaders.items():
                metrics[f"{which}_loss"], metrics[f"{which}_error"] = evaluate(
                    trial.model, loader, trial.data.task
                )
            _track_best(trial, metrics)
        metrics.update(trial.best)
        yield EpochReport(trial.epoch, metrics, trial.state_dict)


def _track_best(trial: Trial, metrics: dict[str, float]) -> None:
    """Best validation error so far, its epoch, and the test error of that epoch."""
    key = "val_error" if "val_error" in metrics else "test_error"
    if "best_val_error" not in trial.best or metrics[key] < trial.best["best_val_error"]:
        trial.best = {
            "best_val_error": metrics[key],
            "best_epoch": float(trial.epoch),
            "test_error_at_best": metrics["test_error"],
        }


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
