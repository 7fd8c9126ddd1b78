"""One trial, top to bottom: data, model, optimizer, and the epoch loop. Pure torch, no Ray.

``fit(config)`` yields one :class:`EpochReport` per epoch with the metrics of
that epoch and a way to snapshot everything needed to resume. A run resumed
from such a snapshot (``fit(config, resume=state)``) continues exactly as the
uninterrupted run would have: model, optimizer (LRD's mask generator
included), schedule and every random generator come back, and the data order
is a function of (seed, epoch).

Regularizers enter only through their method records (:mod:`trainables.methods`), at the
places a record plugs in: the activation and norm the model is built with (Drop-Activation,
VCL), a transform of the built model (DropConnect), weighted loss terms (VCL's penalty),
gradient transforms (per-layer clipping), label transforms (noisy labels) and optimizer
wrappers (LRD, dropout on G, noisy gradient). Nothing here names a method.

How the steps run — precision (autocast, fp16's gradient scaler), ``torch.compile`` of the
forward and loss, channels-last memory — is the trial's :class:`~trainables.runtime.
StepRuntime`, from the config's runtime keys. A step never waits for the host: the epoch's
sums stay on the device and are read once when it ends.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy._core.multiarray import _reconstruct
from torch import Tensor, nn
from torch.optim import Optimizer

from .config import TrainConfig
from .data import Augment, DatasetSplits, load_dataset, make_loader
from .models import build_model
from .optim import make_optimizer, make_scheduler
from .runtime import EAGER_FP32, StepRuntime


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
    plugs: Plugs = field(default_factory=lambda: Plugs())
    runtime: StepRuntime = field(default_factory=StepRuntime)
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
            **self.runtime.state_dict(),
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
        self.runtime.load_state_dict(state)
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
    runtime = StepRuntime.of(config, device)
    model = runtime.prepare(build_network(config, data.num_classes, data.in_shape).to(device))
    optimizer = make_optimizer(config, model.parameters())
    scheduler = make_scheduler(config, optimizer)
    return Trial(config, data, model, optimizer, scheduler, device, Plugs.of(config), runtime)


def build_network(config: TrainConfig, num_classes: int, in_shape) -> nn.Module:
    """The trial's model: the architecture with the chosen activation and norm records' modules,
    then every active method's model transform (DropConnect on the linear layers, ...)."""
    model = build_model(
        config.model,
        num_classes,
        in_shape,
        activation=config.activation,
        norm=config.norm,
        activation_options=config.activation_options(),
        norm_options=config.norm_options(),
        **config.arch,
    )
    for method in config.active_methods():
        if method.model is not None:
            model = method.model(model, **method.arguments(config))
    return model


@dataclass(frozen=True)
class Plugs:
    """What the active method records add to a training step, read once per trial: weighted
    loss terms (VCL), gradient transforms (per-layer clipping) and label transforms (noisy
    labels). ``train_step`` names no method."""

    penalties: tuple[tuple[str, float, Callable[[nn.Module], Tensor]], ...] = ()
    gradients: tuple[Callable[[nn.Module], object], ...] = ()
    labels: tuple[Callable[[Tensor, int], Tensor], ...] = ()

    @classmethod
    def of(cls, config: TrainConfig) -> Plugs:
        active = config.active_methods()
        return cls(
            penalties=tuple(
                (m.name, getattr(config, m.weight), m.penalty) for m in active if m.penalty
            ),
            gradients=tuple(
                partial(m.gradients, **m.arguments(config)) for m in active if m.gradients
            ),
            labels=tuple(partial(m.labels, **m.arguments(config)) for m in active if m.labels),
        )


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
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    optimizer: Optimizer,
    task: str,
    plugs: Plugs = Plugs(),
    runtime: StepRuntime = EAGER_FP32,
) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """One step on (x, y): the task loss plus each active penalty times its weight, backward,
    the gradient transforms, the optimizer's step; run as ``runtime`` says (autocast, fp16's
    gradient scaler, compiled forward). Returns the task loss, each penalty (unweighted) and
    the outputs, detached, on the device: reading them is the caller's choice."""
    total, loss, penalties, outputs = runtime.forward_loss(
        model, x, y, task_loss(task), plugs.penalties, runtime.device_type, runtime.dtype
    )
    optimizer.zero_grad(set_to_none=True)
    scaler = runtime.scaler
    if scaler is None:
        total.backward()
    else:
        scaler.scale(total).backward()
        if plugs.gradients:
            scaler.unscale_(optimizer)
    for transform in plugs.gradients:
        transform(model)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    return loss.detach(), {k: v.detach() for k, v in penalties.items()}, outputs.detach()


def train_epoch(trial: Trial, loader) -> dict[str, float]:
    """One epoch of :func:`train_step`. The sums of loss, error and penalties stay on the
    device and are read once, at the end: no step waits for the host."""
    task, plugs, runtime = trial.data.task, trial.plugs, trial.runtime
    trial.model.train()
    sums = torch.zeros(2 + len(plugs.penalties), dtype=torch.float64, device=trial.device)
    seen = 0
    start = time.perf_counter()
    for x, y in loader:
        for transform in plugs.labels:
            y = transform(y, trial.data.num_classes)
        loss, penalties, outputs = train_step(
            trial.model, runtime.batch(x), y, trial.optimizer, task, plugs, runtime
        )
        batch_sums = [loss * len(y), errors(outputs.float(), y, task)]
        batch_sums += [value * len(y) for value in penalties.values()]
        sums += torch.stack([value.double() for value in batch_sums])
        seen += len(y)
    loss_sum, error_sum, *penalty_sums = sums.tolist()
    elapsed = time.perf_counter() - start
    return {
        "train_loss": loss_sum / seen,
        "train_error": error_sum / seen,
        **{
            f"{name}_penalty": total / seen
            for (name, _, _), total in zip(plugs.penalties, penalty_sums)
        },
        "epoch_time": elapsed,
        "samples_per_s": seen / elapsed,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module, loader, task: str, runtime: StepRuntime = EAGER_FP32
) -> tuple[float, float]:
    """Mean loss and error of ``model`` in eval mode over ``loader``, under the runtime's
    autocast and memory format; summed on the device and read once."""
    model.eval()
    sums = None
    seen = 0
    for x, y in loader:
        with runtime.autocast():
            outputs = model(runtime.batch(x))
        outputs = outputs.float()
        batch_loss = task_loss(task)(outputs, y, reduction="sum")
        batch = torch.stack([batch_loss.double(), errors(outputs, y, task).double()])
        sums = batch if sums is None else sums + batch
        seen += len(y)
    loss_sum, error_sum = sums.tolist()
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
                    trial.model, loader, trial.data.task, trial.runtime
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
    """Every generator's state as tensors and plain data, so a snapshot loads with
    ``torch.load(weights_only=True)``: nothing in it can run code."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        numpy_state = (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    np.random.set_state(numpy_state)
    random.setstate(state["python"])


# Snapshots written before the RNG state held only tensors kept numpy's as an array: allowing
# numpy's array reconstruction (data, not code) reads them, still with weights_only=True. Imported
# by name, not as ``np._core.multiarray``: numpy 1.26 has ``numpy._core`` without that attribute.
_LEGACY_NUMPY = (_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32)))


def load_snapshot(path: str | os.PathLike) -> dict[str, Any]:
    """A trial snapshot read with ``weights_only=True`` (tensors and plain data only): a
    checkpoint on shared storage cannot execute code when it is resumed."""
    with torch.serialization.safe_globals(list(_LEGACY_NUMPY)):
        return torch.load(path, map_location="cpu", weights_only=True)
