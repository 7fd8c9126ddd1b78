"""What the regularizers cost: step-time and memory ratios against their baselines, side by side.

    python -m benchmarks.regularizers [--device cpu|cuda] [--rounds 30] [--out FILE.md]

Rows (each variant interleaved with its baseline in one run, medians of many steps):

- Drop-Activation vs ReLU on the p-grid net (Figure 5 net, batch 128, 3x32x32),
  beside a naive ``rand_like`` + ``where`` Drop-Activation and ``nn.RReLU(1/8, 1/3)``;
  with peak training memory (exact peak tensor bytes of a whole step, see
  ``_memory.py``) and bytes saved for backward, also on an all-zero input (the
  identity elements' exact zeros are kept for backward, at most one bit each).
- LRD(p=0.5) vs the bare optimizer, SGDM and Adam, whole training step of the
  CIFAR ResNet-18 (ImageNet layout, 11.2M parameters).
- VCL (n=2, gamma 0.01, per-layer clipping, as the trainer runs it) vs the same
  net without normalization, and vs batchnorm.
- CUDA only: Drop-Activation vs ReLU on ResNet-164 at batch 128 (the paper: 1.48).
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from trainables.models import build_model
from trainables.regularizers import (
    LearningRateDropout,
    clip_grad_norm_per_layer_,
    replace_activations,
    vcl_penalty,
)

from ._memory import peak_tensor_bytes
from ._timing import Timing, interleaved

Row = tuple[str, str, float, float | None]


class NaiveDropActivation(nn.Module):
    """The textbook implementation: a full-size uniform draw and a ``where`` per forward."""

    def __init__(self, p: float = 0.95) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return nn.functional.leaky_relu(x, 1 - self.p)
        return torch.where(torch.rand_like(x) < self.p, torch.relu(x), x)


def training_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, batch: int, shape, device, vcl: bool = False
) -> Callable[[], None]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=generator).to(device)
    y = torch.randint(0, 10, (batch,), generator=generator).to(device)
    model.to(device).train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y)
        if vcl:
            loss = loss + 0.01 * vcl_penalty(model)
        loss.backward()
        if vcl:
            clip_grad_norm_per_layer_(model, 1.0)
        optimizer.step()

    return step


def pgrid(activation: str = "relu", norm: str = "bn", **options: Any) -> nn.Module:
    torch.manual_seed(0)
    return build_model("pgrid_cnn", 10, (3, 32, 32), activation=activation, norm=norm, **options)


def pgrid_variant(name: str) -> nn.Module:
    if name == "naive rand_like+where":
        model = pgrid()
        replace_activations(model, NaiveDropActivation)
        return model
    activation = {"ReLU": "relu", "Drop-Activation": "drop_activation", "RReLU": "rrelu"}[name]
    options = {"p": 0.95} if activation == "drop_activation" else {}
    return pgrid(activation, activation_options=options)


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def saved_bytes(step: Callable[[], None]) -> int:
    """Bytes autograd keeps between forward and backward (counted per saved tensor)."""
    total = 0

    def pack(t: Tensor) -> Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return total


def drop_activation_rows(device: torch.device, rounds: int) -> list[Row]:
    names = ["ReLU", "Drop-Activation", "naive rand_like+where", "RReLU"]
    steps = {}
    for name in names:
        model = pgrid_variant(name)
        steps[name] = training_step(model, sgd(model), 128, (3, 32, 32), device)
    timings = interleaved(steps, rounds, device=device)
    rows = [
        (
            f"{n} step / ReLU step",
            "p-grid net, batch 128",
            timings[n].ratio_to(timings["ReLU"]),
            1.05 if n == "Drop-Activation" else None,
        )
        for n in names[1:]
    ]
    peaks = {n: peak_tensor_bytes(steps[n]) for n in names}
    saved = {n: saved_bytes(steps[n]) for n in names}
    for n in names[1:]:
        goal = 1.0 if n == "Drop-Activation" else None
        rows.append(
            (
                f"{n} peak memory / ReLU",
                "peak tensor bytes of a step",
                peaks[n] / peaks["ReLU"],
                goal,
            )
        )
    rows.append(
        (
            "Drop-Activation saved / ReLU saved",
            "bytes kept for backward",
            saved["Drop-Activation"] / saved["ReLU"],
            1.0,
        )
    )
    rows.append(exact_zero_saved_row(device))
    rows.append(
        ("ReLU step, seconds (for scale)", "p-grid net, batch 128", timings["ReLU"].median_s, None)
    )
    return rows


def exact_zero_saved_row(device: torch.device) -> Row:
    """Worst case for the exact gradient at x == 0: an all-zero activation, where every identity
    element's position is kept for backward too (at most one bit per element: 1 + 1/32 in fp32)."""
    from trainables.regularizers import drop_activation

    x = torch.zeros(PGRID_ACTIVATIONS[0], device=device, requires_grad=True)
    ratio = saved_bytes(lambda: drop_activation(x, 0.95)) / saved_bytes(lambda: torch.relu(x))
    return ("Drop-Activation saved / ReLU saved", "all-zero input, p = 0.95", ratio, 1 + 1 / 32)


PGRID_ACTIVATIONS = ((128, 32, 32, 32), (128, 64, 16, 16), (128, 128, 8, 8), (128, 1000))


def drop_activation_breakdown(rounds: int) -> list[Row]:
    """Where Drop-Activation's extra time goes, per p-grid training step (all four activations):
    drawing the identity positions, copying them back, and the backward's extra pass."""
    from trainables.regularizers._sampling import bernoulli_positions

    xs = [torch.randn(shape) for shape in PGRID_ACTIVATIONS]
    positions = [bernoulli_positions(x.numel(), 0.05, x.device) for x in xs]
    outs = [torch.relu(x) for x in xs]

    def sample() -> None:
        for x in xs:
            bernoulli_positions(x.numel(), 0.05, x.device)

    def copy_back() -> None:
        for x, out, pos in zip(xs, outs, positions):
            out.view(-1).index_copy_(0, pos, x.view(-1).index_select(0, pos))

    def extra_backward_pass() -> None:
        for out in outs:
            out.abs()

    def relu_forward_backward() -> None:
        for x in xs:
            torch.ops.aten.threshold_backward(x, torch.relu(x), 0)

    timings = interleaved(
        {
            "sample": sample,
            "copy": copy_back,
            "abs": extra_backward_pass,
            "relu": relu_forward_backward,
        },
        rounds,
    )
    ms = {name: t.median_s * 1e3 for name, t in timings.items()}
    where = "p-grid activations, batch 128, ms per step"
    return [
        ("DA: drawing identity positions", where, ms["sample"], None),
        ("DA: copying them back", where, ms["copy"], None),
        ("DA: backward's extra pass, abs(out)", where, ms["abs"], None),
        ("ReLU forward + backward itself", where, ms["relu"], None),
    ]


def lrd_rows(device: torch.device, rounds: int, batch: int) -> list[Row]:
    makers = {
        "SGDM": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4),
        "Adam": lambda ps: torch.optim.Adam(ps, lr=1e-3, weight_decay=5e-4),
    }
    steps: dict[str, Callable[[], None]] = {}
    for name, make in makers.items():
        for lrd in (False, True):
            torch.manual_seed(0)
            model = build_model("resnet_imagenet_style", 10, (3, 32, 32), depth=18)
            optimizer = make(model.parameters())
            if lrd:
                optimizer = LearningRateDropout(optimizer, p=0.5)
            key = f"{name}+LRD" if lrd else name
            steps[key] = training_step(model, optimizer, batch, (3, 32, 32), device)
    timings = interleaved(steps, rounds, warmup=1, device=device)
    where = f"ResNet-18 (11.2M params), batch {batch}"
    return [
        (f"{n}+LRD(0.5) step / {n} step", where, timings[f"{n}+LRD"].ratio_to(timings[n]), 1.03)
        for n in makers
    ]


def vcl_rows(device: torch.device, rounds: int) -> list[Row]:
    variants = {"none": ("none", False), "VCL": ("vcl", True), "BN": ("bn", False)}
    steps = {}
    for name, (norm, penalty) in variants.items():
        model = pgrid(norm=norm)
        steps[name] = training_step(model, sgd(model), 128, (3, 32, 32), device, vcl=penalty)
    timings: dict[str, Timing] = interleaved(steps, rounds, device=device)
    return [
        (
            "VCL step / no-norm step",
            "p-grid net, n=2, batch 128",
            timings["VCL"].ratio_to(timings["none"]),
            1.05,
        ),
        (
            "VCL step / BN step",
            "p-grid net, n=2, batch 128",
            timings["VCL"].ratio_to(timings["BN"]),
            None,
        ),
    ]


def resnet164_rows(device: torch.device, rounds: int) -> list[Row]:
    steps = {}
    for name, activation in (("ReLU", "relu"), ("DA", "drop_activation")):
        torch.manual_seed(0)
        options = {"p": 0.95} if activation == "drop_activation" else {}
        model = build_model(
            "resnet", 10, (3, 32, 32), depth=164, activation=activation, activation_options=options
        )
        steps[name] = training_step(model, sgd(model), 128, (3, 32, 32), device)
    timings = interleaved(steps, rounds, device=device)
    return [
        (
            "DA step / ReLU step",
            "ResNet-164, batch 128 (paper: 1.48)",
            timings["DA"].ratio_to(timings["ReLU"]),
            None,
        )
    ]


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def render(rows: list[Row], device: torch.device) -> str:
    lines = [
        f"Measured on {machine(device)}, torch {torch.__version__}, {device.type}.",
        "",
        "| what | setup | measured | goal |",
        "|---|---|---|---|",
    ]
    for what, setup, value, goal in rows:
        verdict = "" if goal is None else f"≤ {goal:g} {'met' if value <= goal else 'missed'}"
        lines.append(f"| {what} | {setup} | {value:.3f} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--lrd-rounds", type=int, default=10)
    parser.add_argument("--lrd-batch", type=int, default=128)
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = drop_activation_rows(device, args.rounds)
    if device.type == "cpu":
        rows += drop_activation_breakdown(args.rounds)
    rows += vcl_rows(device, args.rounds)
    rows += lrd_rows(device, args.lrd_rounds, args.lrd_batch)
    if device.type == "cuda":
        rows += resnet164_rows(device, args.rounds)
    table = render(rows, device)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
