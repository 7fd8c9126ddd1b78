"""``study reproduce RECIPE --plan``: the cost of every trial a recipe would run, computed.

The trials and their order come from :func:`study.trials.plan_trials`. Per trial:

- parameters: the model built as :func:`trainables.train.build_trial` builds it, on the
  ``meta`` device where it can be (no memory, no time), counted with ``numel``;
- data: shape, classes and split sizes without loading the paper sets
  (:func:`trainables.data.registry.dataset_info`), with ``to_rgb32``, ``val_fraction``,
  ``train_subset`` and ``eval_subset`` applied; one step per batch, the last partial batch
  dropped where batch statistics need whole batches (``needs_full_batches``);
- FLOPs per training step: ``FlopCounterMode`` over one forward and backward at the batch size
  (it counts matmuls and convolutions: what dominates), on ``meta`` in eval mode (the same
  matmuls and convolutions as train mode; see :func:`count_flops`), with a convolution's
  backward counted right for groups (:func:`conv_backward_flops`); failing that, on the CPU at
  a tiny batch, scaled linearly;
- seconds per step: measured on this machine for parts that run on CPUs
  (``trainables.train.train_step`` with the trial's optimizer, median of timed steps after a
  warm-up, once per distinct step); FLOPs / (:data:`ASSUMED_GPU_FLOPS` x the trial's GPUs)
  for GPU parts;
- hours: epochs x (steps + evaluation) x seconds per step, where an evaluation pass over the
  validation and test samples costs :data:`EVAL_STEP_FRACTION` of a training step per sample.

Totals: CPU-hours are trial hours x ``cpus_per_trial``, GPU-hours trial hours x
``gpus_per_trial``; the wall-clock runs each part's trials in order on as many slots as its
concurrency (:func:`study.trials.concurrency`), and the parts one after another, as
``study reproduce`` does.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count

from .trials import PlannedTrial, cpu_cores, plan_trials

if TYPE_CHECKING:  # recipes import the report renderers; a sweep's preflight never needs them
    from .recipes import Recipe

ASSUMED_GPU_FLOPS = 30e12
GPU_ASSUMPTION = (
    "GPU times assume ASSUMED_GPU_FLOPS = 30 TFLOP/s sustained per GPU (an A100 at about 1/5 "
    "of its 156 TFLOP/s TF32 peak: these models train in fp32, cuDNN convolutions in TF32); "
    "a trial with a fraction of a GPU gets that fraction of its throughput"
)
EVAL_STEP_FRACTION = 1 / 3  # a forward pass: about a third of forward + backward + update
WARMUP_STEPS, TIMED_STEPS = 2, 5
TINY_BATCH = 4


def cpu_assumption() -> str:
    return (
        f"CPU times are training steps measured on this machine ({cpu_cores()} cores; "
        f"median of {TIMED_STEPS} steps after {WARMUP_STEPS} warm-up steps, random data of the "
        "trial's shape: data loading, augmentation and other processes' load not separated)"
    )


@dataclass(frozen=True)
class DataFacts:
    """What a trial's data means for its cost: one input's shape, the classes (outputs), the
    task, the training samples per epoch and the samples each evaluation passes over."""

    in_shape: tuple[int, ...]
    num_classes: int
    task: str
    train: int
    evaluated: int


def data_facts(config: Any) -> DataFacts:
    """A TrainConfig's data facts, the way ``build_trial`` cuts its splits."""
    from trainables.data.registry import dataset_info

    info = dataset_info(config.dataset, root=config.data_dir, **config.data_options)
    n_val = round(config.val_fraction * info.train_size)  # as splits.split_off_validation
    train = info.train_size - n_val
    if config.train_subset is not None:
        train = min(train, config.train_subset)
    evaluated = sum(min(n, config.eval_subset or n) for n in (n_val, info.test_size or 0) if n)
    shape = (3, 32, 32) if config.to_rgb32 else tuple(info.in_shape)
    return DataFacts(shape, info.num_classes, info.task, train, evaluated)


def steps_per_epoch(config: Any, facts: DataFacts) -> int:
    """Training batches per epoch (the last partial one dropped under batch statistics)."""
    if config.needs_full_batches:
        return facts.train // config.batch_size
    return math.ceil(facts.train / config.batch_size)


def build(config: Any, facts: DataFacts, device: str) -> nn.Module:
    """The trial's model, built by the same call as ``trainables.train.build_trial`` (the
    caller's random state left as it was)."""
    from trainables.train import build_network

    with torch.random.fork_rng(devices=[]), torch.device(device):
        return build_network(config, facts.num_classes, facts.in_shape)


def count_params(config: Any, facts: DataFacts) -> int:
    """Trainable and frozen parameters of the trial's model."""
    try:
        model = build(config, facts, "meta")
    except Exception:  # a layer that reads a number while it is built (VCL's beta) needs data
        model = build(config, facts, "cpu")
    return sum(p.numel() for p in model.parameters())


def random_batch(facts: DataFacts, size: int, device: str) -> tuple[Tensor, Tensor]:
    """Inputs and targets of the trial's shapes (values do not matter for cost)."""
    x = torch.randn(size, *facts.in_shape, device=device)
    if facts.task == "regression":
        return x, torch.randn(size, facts.num_classes, device=device)
    return x, torch.randint(facts.num_classes, (size,), device=device)


def conv_backward_flops(
    grad_out_shape: list[int],
    x_shape: list[int],
    w_shape: list[int],
    _bias: Any,
    _stride: Any,
    _padding: Any,
    _dilation: Any,
    transposed: bool,
    _output_padding: Any,
    _groups: int,
    output_mask: list[bool],
    out_shape: Any = None,
    **_: Any,
) -> int:
    """FLOPs of a convolution's backward: each of the input and weight gradients costs what the
    forward costs. torch's own formula (2.14) counts a grouped convolution's weight gradient
    ``groups`` times over (ResNeXt's step came out 6.5x its forward; fixed upstream in
    pytorch/pytorch#183405); the forward count is right for groups."""
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (bool(output_mask[0]) + bool(output_mask[1]))


def _step_flops(model: nn.Module, facts: DataFacts, size: int, device: str) -> int:
    from trainables.train import task_loss

    x, y = random_batch(facts, size, device)
    fixed = {torch.ops.aten.convolution_backward: conv_backward_flops}
    with FlopCounterMode(display=False, custom_mapping=fixed) as counter:
        task_loss(facts.task)(model(x), y).backward()
    return counter.get_total_flops()


def count_flops(config: Any, facts: DataFacts) -> int:
    """FLOPs of one training step (forward and backward) at the trial's batch size.

    Counted in eval mode: train and eval differ in elementwise work only (batch statistics,
    dropout, Drop-Activation's and RReLU's draws, which ``meta`` cannot make), not in the
    matmuls and convolutions counted, and eval mode runs on ``meta`` for every model here."""
    size = max(1, min(config.batch_size, facts.train))
    try:
        try:
            model = build(config, facts, "meta")
        except Exception:  # built from data (VCL's beta): build it here, count it on meta
            model = build(config, facts, "cpu").to("meta")
        return _step_flops(model.eval(), facts, size, "meta")
    except Exception:
        pass
    tiny = min(size, TINY_BATCH)
    while True:  # a method may need a larger batch (VCL's two subsets of n): double until it runs
        try:
            with torch.random.fork_rng(devices=[]):  # the batch and a random layer's draws
                model = build(config, facts, "cpu").train()
                cpu_flops = _step_flops(model, facts, tiny, "cpu")
            return round(cpu_flops * size / tiny)
        except (RuntimeError, ValueError):
            if tiny >= size:
                raise
            tiny = min(size, 2 * tiny)


def measure_step_seconds(config: Any, facts: DataFacts) -> float:
    """Seconds of one ``train_step`` on this CPU with the trial's model, optimizer, batch size
    and threads (median of the timed steps after the warm-up)."""
    from trainables.optim import make_optimizer
    from trainables.train import Plugs, train_step

    size = max(1, min(config.batch_size, facts.train))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(config.num_threads or threads)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build(config, facts, "cpu").train()
            optimizer = make_optimizer(config, model.parameters())
            plugs = Plugs.of(config)
            x, y = random_batch(facts, size, "cpu")
            times = []
            for _ in range(WARMUP_STEPS + TIMED_STEPS):
                start = time.perf_counter()
                train_step(model, x, y, optimizer, facts.task, plugs)
                times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times[WARMUP_STEPS:])


DATA_FIELDS = ("dataset", "data_options", "data_dir", "val_fraction", "train_subset",
               "eval_subset", "to_rgb32")  # fmt: skip
# Fields that do not change what one training step computes (the data's shape is in DataFacts).
NOT_STEP_FIELDS = (*DATA_FIELDS, "split_seed", "augment", "augment_options", "label_noise",
                   "lr", "schedule", "milestones", "lr_gamma", "epochs", "eval_batch_size",
                   "eval_every", "seed", "device")  # fmt: skip
COST_KEYS = ("model", "dataset", "batch_size", "params", "epochs", "steps_per_epoch",
             "flops_per_step", "seconds_per_step")  # fmt: skip


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def data_key(config: Any) -> str:
    return _json({name: getattr(config, name) for name in DATA_FIELDS})


def model_key(config: Any, facts: DataFacts) -> str:
    """What the model's size depends on: architecture, activation, norm, data shape."""
    return _json(
        [config.model, config.arch, config.activation, config.activation_options(),
         config.norm, config.norm_options(), facts.in_shape, facts.num_classes, facts.task]
    )  # fmt: skip


def flops_key_of(config: Any, facts: DataFacts) -> str:
    """What the counted FLOPs depend on: the model but its activation, which is elementwise in
    every registered one (counted FLOPs are matmuls and convolutions), so one count serves
    every activation arm of an architecture."""
    return _json(
        [config.model, config.arch, config.norm, config.norm_options(), facts.in_shape,
         facts.num_classes, facts.task]
    )  # fmt: skip


def step_key(config: Any, facts: DataFacts) -> str:
    """Everything that may change a training step's time: any field but the excluded ones."""
    values = {k: v for k, v in config.to_dict().items() if k not in NOT_STEP_FIELDS}
    return _json([values, facts.in_shape, facts.num_classes, facts.task])


class CostModel:
    """Costs trials, computing each distinct dataset, model, step and measurement once."""

    def __init__(self) -> None:
        self._memo: dict[tuple[str, str], Any] = {}

    def _once(self, kind: str, key: str, compute: Callable[[], Any]) -> Any:
        if (kind, key) not in self._memo:
            self._memo[kind, key] = compute()
        return self._memo[kind, key]

    def step(self, config: Any, gpus: float) -> tuple[DataFacts, int, int, str, float]:
        """Data facts, parameters, FLOPs per step, device kind and seconds per step."""
        facts = self._once("data", data_key(config), lambda: data_facts(config))
        params = self._once("params", model_key(config, facts), lambda: count_params(config, facts))
        flops_key = _json([flops_key_of(config, facts), config.batch_size, facts.train])
        flops = self._once("flops", flops_key, lambda: count_flops(config, facts))
        if gpus > 0:
            return facts, params, flops, "gpu", flops / (ASSUMED_GPU_FLOPS * gpus)
        seconds = self._once(
            "seconds", step_key(config, facts), lambda: measure_step_seconds(config, facts)
        )
        return facts, params, flops, "cpu", seconds

    def row(self, trial: PlannedTrial) -> dict[str, Any]:
        """The trial's plan row: what it trains and its estimated cost (a script hook's own
        ``epochs``, ``steps_per_epoch`` or ``estimated_hours`` win over the computed ones)."""
        row: dict[str, Any] = {"part": trial.part, "arm": trial.arm, "seed": trial.seed}
        row.update(dict.fromkeys(COST_KEYS), cpus=trial.cpus, gpus=trial.gpus)
        row.update(device_kind="cpu", estimated_hours=None, note="")
        config = trial.train_config()
        if config is None:
            return {**row, **trial.given}
        facts, params, flops, kind, seconds = self.step(config, trial.gpus)
        epochs = trial.given.get("epochs", config.epochs)
        steps = trial.given.get("steps_per_epoch", steps_per_epoch(config, facts))
        evaluations = math.ceil(epochs / config.eval_every)
        eval_steps = evaluations * facts.evaluated / config.batch_size * EVAL_STEP_FRACTION
        row.update(
            model=config.model,
            dataset=config.dataset,
            batch_size=config.batch_size,
            params=params,
            epochs=epochs,
            steps_per_epoch=steps,
            flops_per_step=flops,
            seconds_per_step=seconds,
            device_kind=kind,
            estimated_hours=(epochs * steps + eval_steps) * seconds / 3600,
        )
        return {**row, **trial.given}


def schedule_hours(hours: list[float], slots: int) -> float:
    """Wall-clock of trials started in order on ``slots`` workers, each taking the next free one."""
    free = [0.0] * max(1, slots)
    for h in hours:
        start = min(free)
        free[free.index(start)] = start + h
    return max(free)


def summarize(rows: list[dict[str, Any]], trials: list[PlannedTrial]) -> dict[str, Any]:
    """Per part and in total: trainings, CPU- and GPU-hours, wall-clock hours."""
    parts: dict[str, dict[str, Any]] = {}
    hours: dict[str, list[float]] = {}
    for row, trial in zip(rows, trials, strict=True):
        if row["part"] not in parts:
            parts[row["part"]] = {
                "part": row["part"],
                "trainings": 0,
                "device_kind": row["device_kind"],
                "concurrency": trial.concurrency,
                "cpu_hours": 0.0,
                "gpu_hours": 0.0,
                "estimated": True,
            }
        part = parts[row["part"]]
        if row["estimated_hours"] is None:
            part["estimated"] = False
            continue
        part["trainings"] += 1
        hours.setdefault(row["part"], []).append(row["estimated_hours"])
        if row["device_kind"] == "gpu":
            part["gpu_hours"] += row["estimated_hours"] * trial.gpus
        else:
            part["cpu_hours"] += row["estimated_hours"] * trial.cpus
    for name, part in parts.items():
        part["wall_hours"] = schedule_hours(hours.get(name, []), part["concurrency"])
    listed = list(parts.values())
    keys = ("trainings", "cpu_hours", "gpu_hours", "wall_hours")
    totals: dict[str, Any] = {key: sum(p[key] for p in listed) for key in keys}
    totals["estimated"] = all(p["estimated"] for p in listed)
    return {"parts": listed, "totals": totals}


def make_plan(
    recipe: Recipe,
    scale: str,
    overrides: dict[str, Any] | None = None,
    parts: list[str] | None = None,
) -> dict[str, Any]:
    """The plan as data: ``trials`` (one row per trial, in run order), ``parts`` and
    ``totals`` (see :func:`summarize`), and the assumptions the numbers rest on."""
    trials = plan_trials(recipe, scale, overrides, parts)
    costs = CostModel()
    rows = [costs.row(trial) for trial in trials]
    return {
        "recipe": recipe.name,
        "scale": scale,
        "machine": recipe.scale(scale).machine,
        "assumptions": {
            "assumed_gpu_flops": ASSUMED_GPU_FLOPS,
            "gpu": GPU_ASSUMPTION,
            "cpu": cpu_assumption(),
            "cpu_cores": cpu_cores(),
            "eval_step_fraction": EVAL_STEP_FRACTION,
        },
        "trials": rows,
        **summarize(rows, trials),
    }
