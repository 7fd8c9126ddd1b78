"""What the regularizers cost: step-time and memory ratios against their baselines, side by side.

    python -m benchmarks.regularizers [--device cpu|cuda] [--rounds 60] [--threads 1]
                                      [--out FILE.md]

Every step is the trainer's own (:func:`trainables.runtime.forward_and_loss`, backward,
optimizer step), each variant interleaved with its baseline in one run, paired per round, the
median over rounds with its 95% interval. 60 rounds by default: at 30 the same code's
Drop-Activation row read 1.088 in one quiet run and 1.011 at 60 in another, the noise of a
shared machine. On the CPU the verdict reads the CPU-time ratio and the wall-clock one is
shown beside it (see ``_timing.py``); on CUDA, wall clock.

CPU rows:

- Drop-Activation (p = 0.95) vs ReLU on the p-grid net at the benchmark's shapes (batch 128,
  3x32x32) and at the main job's (MNIST 1x28x28, batch 64; also p = 0.6, the grid's other end),
  beside a naive ``rand_like`` + ``where`` Drop-Activation and ``nn.RReLU(1/8, 1/3)``; peak
  training memory (exact peak tensor bytes of a whole step, ``_memory.py``) and bytes saved
  for backward, also on an all-zero input; where Drop-Activation's extra time goes.
- VCL (n = 2, gamma 0.01) vs the same net without normalization, both with per-layer gradient
  clipping as the recipes run every arm of a normalization comparison; VCL with clipping vs no
  clipping at all; VCL vs batchnorm.
- LRD(p = 0.5) vs the bare optimizer, SGDM and Adam, on the CIFAR ResNet-18 (11.2M params).

CUDA rows (``--device cuda``): the Drop-Activation paper's Table 5 (step time with DA / ReLU
at batch 128: ResNet-164, paper 1.48; WRN-28-10, paper 1.40), VCL's Table 1 (ELU-11, batch
250, VCL / none, paper 30.3 / 29.2 = 1.038) and bf16 + ``torch.compile`` vs fp32 eager on
WRN-28-10, besides the rows above.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.models import build_model
from trainables.regularizers import (
    LearningRateDropout,
    _native,
    clip_grad_norm_per_layer_,
    drop_activation,
    replace_activations,
    vcl_penalty,
)
from trainables.regularizers._sampling import iter_positions
from trainables.runtime import forward_and_loss

from ._device import refuse_missing_cuda
from ._memory import peak_tensor_bytes
from ._timing import Timing, interleaved


class Row(NamedTuple):
    """One line of the table: ``value`` on the verdict's clock, ``wall`` the wall-clock ratio
    beside it (CPU rows), ``interval`` the 95% interval of a ratio (:mod:`._timing`)."""

    what: str
    setup: str
    value: float
    wall: float | None = None
    goal: float | None = None
    interval: tuple[float, float] | None = None


PGRID = {"shape": (3, 32, 32), "batch": 128, "label": "p-grid net, batch 128, 3x32x32"}
MAIN_JOB = {
    "shape": (1, 28, 28),
    "batch": 64,
    "label": "main job: p-grid net, MNIST 28x28, batch 64",
}


class NaiveDropActivation(nn.Module):
    """The textbook implementation: a full-size uniform draw and a ``where`` per forward."""

    def __init__(self, p: float = 0.95) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return F.leaky_relu(x, 1 - self.p)
        return torch.where(torch.rand_like(x) < self.p, torch.relu(x), x)


def training_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: int,
    shape,
    device: torch.device,
    vcl: bool = False,
    clip: bool = False,
    dtype: torch.dtype | None = None,
    compile: bool = False,
) -> Callable[[], None]:
    """One training step as the trainer runs it, on a fixed random batch."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=generator).to(device)
    y = torch.randint(0, 10, (batch,), generator=generator).to(device)
    model.to(device).train()
    penalties = (("vcl", 0.01, vcl_penalty),) if vcl else ()
    forward = torch.compile(forward_and_loss) if compile else forward_and_loss

    def step() -> None:
        total, *_ = forward(model, x, y, F.cross_entropy, penalties, device.type, dtype)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        if clip:
            clip_grad_norm_per_layer_(model, 1.0)
        optimizer.step()

    return step


def numpy_path(step: Callable[[], None]) -> Callable[[], None]:
    """``step`` with Drop-Activation's compiled CPU kernel off (its fallback, the numpy path)."""

    def run() -> None:
        before = os.environ.get(_native.DISABLE_ENV)
        os.environ[_native.DISABLE_ENV] = "0"
        try:
            step()
        finally:
            if before is None:
                os.environ.pop(_native.DISABLE_ENV)
            else:
                os.environ[_native.DISABLE_ENV] = before

    return run


def kernel_label() -> str:
    """Which CPU forward the plain Drop-Activation rows measure."""
    return "compiled kernel" if _native.available() else "numpy path: the kernel did not build"


def network(
    name: str, shape, activation: str = "relu", norm: str = "bn", p: float = 0.95, **arch: Any
) -> nn.Module:
    torch.manual_seed(0)
    options = {"p": p} if activation == "drop_activation" else {}
    return build_model(
        name, 10, shape, activation=activation, norm=norm, activation_options=options, **arch
    )


def pgrid_variant(name: str, shape) -> nn.Module:
    if name == "naive rand_like+where":
        model = network("pgrid_cnn", shape)
        replace_activations(model, NaiveDropActivation)
        return model
    activation = {"ReLU": "relu", "Drop-Activation": "drop_activation", "RReLU": "rrelu"}[name]
    return network("pgrid_cnn", shape, activation)


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def ratio_row(what: str, setup: str, t: Timing, base: Timing, clock: str, goal=None) -> Row:
    wall = t.ratio_to(base, "wall") if clock == "cpu" else None
    return Row(what, setup, t.ratio_to(base, clock), wall, goal, t.ratio_interval(base, clock))


def saved_bytes(step: Callable[[], object]) -> int:
    """Bytes autograd keeps between forward and backward (counted per saved tensor)."""
    total = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return total


def drop_activation_rows(device: torch.device, rounds: int, clock: str) -> list[Row]:
    names = ["ReLU", "Drop-Activation", "naive rand_like+where", "RReLU"]
    steps = {}
    for name in names:
        model = pgrid_variant(name, PGRID["shape"])
        steps[name] = training_step(model, sgd(model), PGRID["batch"], PGRID["shape"], device)
    if device.type == "cpu":
        model = pgrid_variant("Drop-Activation", PGRID["shape"])
        step = training_step(model, sgd(model), PGRID["batch"], PGRID["shape"], device)
        steps["Drop-Activation, numpy path"] = numpy_path(step)
    timings = interleaved(steps, rounds, device=device)
    label = (
        {"Drop-Activation": f"{PGRID['label']}, {kernel_label()}"} if device.type == "cpu" else {}
    )
    rows = [
        ratio_row(
            f"{n} step / ReLU step",
            label.get(n, PGRID["label"]),
            timings[n],
            timings["ReLU"],
            clock,
            1.05 if n == "Drop-Activation" else None,
        )
        for n in [*names[1:], *steps.keys() - set(names)]
    ]
    peaks = {n: peak_tensor_bytes(steps[n]) for n in names}
    for n in names[1:]:
        goal = 1.0 if n == "Drop-Activation" else None
        rows.append(
            (
                f"{n} peak memory / ReLU",
                "peak tensor bytes of a step",
                peaks[n] / peaks["ReLU"],
                None,
                goal,
            )
        )
    ratio = saved_bytes(steps["Drop-Activation"]) / saved_bytes(steps["ReLU"])
    rows.append(("Drop-Activation saved / ReLU saved", "bytes kept for backward", ratio, None, 1.0))
    rows.append(exact_zero_saved_row(device))
    seconds = timings["ReLU"].median_cpu_s if clock == "cpu" else timings["ReLU"].median_s
    rows.append((f"ReLU step, {clock} seconds (for scale)", PGRID["label"], seconds, None, None))
    return rows


def main_job_rows(device: torch.device, rounds: int, clock: str) -> list[Row]:
    """Drop-Activation vs ReLU at the main job's shapes, where a call's fixed cost shows most."""
    shape, batch = MAIN_JOB["shape"], MAIN_JOB["batch"]
    variants = {"ReLU": ("relu", 1.0), "DA p=0.95": ("drop_activation", 0.95)}
    variants["DA p=0.6"] = ("drop_activation", 0.6)
    steps = {}
    for name, (activation, p) in variants.items():
        model = network("pgrid_cnn", shape, activation, p=p)
        steps[name] = training_step(model, sgd(model), batch, shape, device)
    if device.type == "cpu":
        model = network("pgrid_cnn", shape, "drop_activation", p=0.95)
        steps["numpy path"] = numpy_path(training_step(model, sgd(model), batch, shape, device))
    timings = interleaved(steps, rounds * 5, device=device)
    base = timings["ReLU"]
    kernel = f", {kernel_label()}" if device.type == "cpu" else ""
    numpy_row = (
        [
            ratio_row(
                "Drop-Activation, numpy path step / ReLU step",
                MAIN_JOB["label"],
                timings["numpy path"],
                base,
                clock,
            )
        ]
        if "numpy path" in timings
        else []
    )
    return [
        ratio_row(
            "Drop-Activation step / ReLU step",
            MAIN_JOB["label"] + kernel,
            timings["DA p=0.95"],
            base,
            clock,
            1.05,
        ),
        *numpy_row,
        ratio_row(
            "Drop-Activation p=0.6 step / ReLU step",
            MAIN_JOB["label"],
            timings["DA p=0.6"],
            base,
            clock,
        ),
    ]


def exact_zero_saved_row(device: torch.device) -> Row:
    """Worst case for the exact gradient at x == 0: an all-zero activation, where every identity
    element's position is kept for backward too (at most one bit per element: 1 + 1/32 in fp32)."""
    x = torch.zeros(PGRID_ACTIVATIONS[0], device=device, requires_grad=True)
    ratio = saved_bytes(lambda: drop_activation(x, 0.95)) / saved_bytes(lambda: torch.relu(x))
    return (
        "Drop-Activation saved / ReLU saved",
        "all-zero input, p = 0.95",
        ratio,
        None,
        1 + 1 / 32,
    )


PGRID_ACTIVATIONS = ((128, 32, 32, 32), (128, 64, 16, 16), (128, 128, 8, 8), (128, 1000))


def drop_activation_breakdown(rounds: int) -> list[Row]:
    """Where Drop-Activation's time goes, per p-grid training step (all four activations, CPU
    time, ms): drawing the identity positions, and the forward and backward of the layer
    against ReLU's (the difference is the copy-back and the call's own overhead)."""
    xs = [torch.randn(shape, requires_grad=True) for shape in PGRID_ACTIVATIONS]
    grads = [torch.randn(shape) for shape in PGRID_ACTIVATIONS]

    def sample() -> None:
        for x in xs:
            list(iter_positions(x.numel(), 0.05))

    def layer(fn) -> Callable[[], None]:
        def run() -> None:
            for x, g in zip(xs, grads):
                torch.autograd.grad(fn(x), x, g)

        return run

    timings = interleaved(
        {
            "sample": sample,
            "da": layer(lambda x: drop_activation(x, 0.95)),
            "numpy": numpy_path(layer(lambda x: drop_activation(x, 0.95))),
            "relu": layer(torch.relu),
        },
        rounds,
    )
    ms = {name: t.median_cpu_s * 1e3 for name, t in timings.items()}
    where = "p-grid activations, batch 128, CPU ms per step"
    return [
        ("DA: drawing identity positions", where, ms["sample"], None, None),
        (f"DA layer forward + backward, {kernel_label()}", where, ms["da"], None, None),
        ("DA layer forward + backward, numpy path", where, ms["numpy"], None, None),
        ("ReLU forward + backward", where, ms["relu"], None, None),
    ]


def lrd_rows(device: torch.device, rounds: int, batch: int, clock: str) -> list[Row]:
    makers = {
        "SGDM": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4),
        "Adam": lambda ps: torch.optim.Adam(ps, lr=1e-3, weight_decay=5e-4),
    }
    steps: dict[str, Callable[[], None]] = {}
    for name, make in makers.items():
        for lrd in (False, True):
            model = network("resnet_imagenet_style", (3, 32, 32), depth=18)
            optimizer = make(model.parameters())
            if lrd:
                optimizer = LearningRateDropout(optimizer, p=0.5)
            key = f"{name}+LRD" if lrd else name
            steps[key] = training_step(model, optimizer, batch, (3, 32, 32), device)
    timings = interleaved(steps, rounds, warmup=1, device=device)
    where = f"ResNet-18 (11.2M params), batch {batch}"
    return [
        ratio_row(
            f"{n}+LRD(0.5) step / {n} step", where, timings[f"{n}+LRD"], timings[n], clock, 1.03
        )
        for n in makers
    ]


def vcl_rows(device: torch.device, rounds: int, clock: str) -> list[Row]:
    variants = {
        "none+clip": ("none", False, True),
        "VCL+clip": ("vcl", True, True),
        "none": ("none", False, False),
        "BN": ("bn", False, False),
    }
    steps = {}
    for name, (norm, penalty, clip) in variants.items():
        model = network("pgrid_cnn", PGRID["shape"], norm=norm)
        steps[name] = training_step(
            model, sgd(model), PGRID["batch"], PGRID["shape"], device, vcl=penalty, clip=clip
        )
    t = interleaved(steps, rounds, device=device)
    where = "p-grid net, n=2, batch 128"
    return [
        ratio_row(
            "VCL step / no-norm step",
            f"{where}, both clipped per layer",
            t["VCL+clip"],
            t["none+clip"],
            clock,
            1.05,
        ),
        ratio_row("VCL + clipping / no-norm, no clipping", where, t["VCL+clip"], t["none"], clock),
        ratio_row("VCL + clipping / BN step", where, t["VCL+clip"], t["BN"], clock),
    ]


def paper_rows(
    device: torch.device, rounds: int, batch: int = 128, vcl_batch: int = 250
) -> list[Row]:
    """The papers' own cost measurements (GPU): DA Table 5 on ResNet-164 and WRN-28-10 at
    ``batch``, VCL Table 1 on ELU-11 at ``vcl_batch``, and bf16 + compile on WRN-28-10."""
    cifar = (3, 32, 32)
    rows: list[Row] = []
    for label, name, arch, paper in (
        ("ResNet-164", "resnet", {"depth": 164}, 1.48),
        ("WRN-28-10", "wide_resnet", {"depth": 28, "widen_factor": 10}, 1.40),
    ):
        steps = {}
        for activation in ("relu", "drop_activation"):
            model = network(name, cifar, activation, **arch)
            steps[activation] = training_step(model, sgd(model), batch, cifar, device)
        t = interleaved(steps, rounds, device=device)
        setup = f"{label}, batch {batch} (paper: {paper:.2f})"
        rows.append(
            ratio_row("DA step / ReLU step", setup, t["drop_activation"], t["relu"], "wall")
        )
        print(f"  {label}: DA / ReLU {rows[-1].value:.3f}", file=sys.stderr, flush=True)
        del steps
    steps = {}
    for norm in ("none", "vcl", "bn"):
        model = network("elu_cnn", cifar, "elu", norm)
        steps[norm] = training_step(model, sgd(model), vcl_batch, cifar, device, vcl=norm == "vcl")
    t = interleaved(steps, rounds, device=device)
    setup = f"ELU-11, n=2, batch {vcl_batch} (paper: 1.038; bn 1.082)"
    rows.append(ratio_row("VCL step / no-norm step", setup, t["vcl"], t["none"], "wall"))
    rows.append(ratio_row("BN step / no-norm step", setup, t["bn"], t["none"], "wall"))
    del steps
    steps = {}
    for key, dtype, compiled in (("fp32", None, False), ("bf16+compile", torch.bfloat16, True)):
        model = network("wide_resnet", cifar, depth=28, widen_factor=10)
        model = model.to(memory_format=torch.channels_last) if compiled else model
        steps[key] = training_step(
            model, sgd(model), batch, cifar, device, dtype=dtype, compile=compiled
        )
    t = interleaved(steps, rounds, warmup=3, device=device)
    setup = f"WRN-28-10, batch {batch}, channels-last"
    rows.append(
        ratio_row(
            "bf16+compile step / fp32 eager step", setup, t["bf16+compile"], t["fp32"], "wall"
        )
    )
    return rows


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def render(rows: list[Row], device: torch.device, clock: str, rounds: int | None = None) -> str:
    second = "wall-clock ratio" if clock == "cpu" else ""
    lines = [
        f"Measured on {machine(device)}, torch {torch.__version__}, {device.type}"
        + (f", {rounds} rounds" if rounds else "")
        + "; "
        f"ratios: median over rounds of each round's {clock} time per step over the baseline's"
        + (" (wall-clock beside them: other processes share this CPU)" if clock == "cpu" else "")
        + "; 95% bootstrap interval in brackets.",
        "",
        f"| what | setup | measured | {second} | goal |",
        "|---|---|---|---|---|",
    ]
    for row in (Row(*r) for r in rows):
        value, goal = row.value, row.goal
        verdict = "" if goal is None else f"≤ {goal:g} {'met' if value <= goal else 'missed'}"
        wall_text = "" if row.wall is None else f"{row.wall:.3f}"
        measured = f"{value:.3f}"
        if row.interval is not None and not math.isnan(row.interval[0]):
            measured += f" [{row.interval[0]:.3f}, {row.interval[1]:.3f}]"
        lines.append(f"| {row.what} | {row.setup} | {measured} | {wall_text} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--lrd-rounds", type=int, default=20)
    parser.add_argument("--lrd-batch", type=int, default=128)
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1: as a trial of the main job runs)"
    )
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    refuse_missing_cuda(parser, args.device)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    clock = "cpu" if device.type == "cpu" else "wall"
    sections: list[tuple[str, Callable[[], list[Row]]]] = [
        ("Drop-Activation", lambda: drop_activation_rows(device, args.rounds, clock)),
        ("main job", lambda: main_job_rows(device, args.rounds, clock)),
    ]
    if device.type == "cpu":
        sections.append(("where DA's time goes", lambda: drop_activation_breakdown(args.rounds)))
    sections += [
        ("VCL", lambda: vcl_rows(device, args.rounds, clock)),
        ("LRD", lambda: lrd_rows(device, args.lrd_rounds, args.lrd_batch, clock)),
    ]
    if device.type == "cuda":
        sections.append(("the papers' GPU rows", lambda: paper_rows(device, args.rounds)))
    rows: list[Row] = []
    for name, measure in sections:
        start = time.perf_counter()
        rows += measure()
        print(f"{name}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
        if args.out:  # the table so far: a run cut short keeps the sections it finished
            Path(args.out).write_text(render(rows, device, clock, args.rounds) + "\n")
    print(render(rows, device, clock, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
