"""The GPU set in one command sized for a borrowed GPU machine: the CUDA-only tests, then the
regularizer, packing and loader benchmarks, each table written the moment it is measured.

    python -m benchmarks.gpu_set [--device cuda] [--out DIR] [--budget-s 480] [--rounds 20]

It needs only what a machine with PyTorch already has (torch, numpy, scipy, pytest):
``trainables`` and the benchmarks import none of Ray, Optuna, MLflow or pydantic, so on a GPU
machine without network access, where no ``.venv`` can be installed, it runs from the checkout
as ``PYTHONPATH=. python3 -m benchmarks.gpu_set --out $OUT``; ``make bench-gpu`` runs it from
the ``.venv`` into ``benchmarks/results/``. Every stage is its own process, given the time left
of the budget at most; one that fails or runs out of time is reported and the next still runs,
so a short lease brings back every table that finished. ``gpu-set.md`` in the output folder says
what ran, how long, and how it ended; ``gpu-set.log`` holds every stage's output.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from ._device import refuse_missing_cuda
from ._output import emit

ROOT = Path(__file__).resolve().parents[1]
CUDA_TESTS = (
    "tests/trainables/test_precision.py",
    "tests/trainables/test_drop_activation.py",
    "tests/trainables/test_dropconnect.py",
)


@dataclass(frozen=True)
class Stage:
    """One step of the set: ``argv`` run from the checkout, for at most ``cap_s`` seconds."""

    name: str
    argv: tuple[str, ...]
    cap_s: float


@dataclass(frozen=True)
class Outcome:
    """How a stage ended: ``passed``, ``failed (exit N)``, ``timed out`` or ``skipped``."""

    name: str
    status: str
    seconds: float


def stages(device: str, out: Path, rounds: int) -> list[Stage]:
    """The set in priority order: correctness on the device first, then the papers' rows."""
    python = sys.executable
    return [
        Stage(
            "cuda-tests",
            (python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda", *CUDA_TESTS),
            120,
        ),
        Stage(
            "regularizers",
            (
                *(python, "-m", "benchmarks.regularizers", "--device", device),
                *("--rounds", str(rounds), "--lrd-rounds", str(rounds)),
                *("--out", str(out / f"regularizers-{device}.md")),
            ),
            300,
        ),
        Stage(
            "packing",
            (
                *(python, "-m", "benchmarks.packing", "--device", device),
                *("--out", str(out / f"packing-{device}.md")),
            ),
            150,
        ),
        Stage(
            "loader",
            (
                *(python, "-m", "benchmarks.loader", "--device", device),
                *("--batches", str(max(rounds, 3)), "--out", str(out / f"loader-{device}.md")),
            ),
            120,
        ),
    ]


def _python_path() -> str:
    """The checkout first, so the stages import this ``trainables`` without an install."""
    return os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))


def run_stage(stage: Stage, timeout_s: float, log: TextIO) -> Outcome:
    """Run ``stage`` in its own process group, its output copied line by line to stdout and
    ``log``; past ``timeout_s`` the whole group (spawned workers included) is killed."""
    start = time.perf_counter()
    header = f"== {stage.name}: {' '.join(stage.argv)} (at most {timeout_s:.0f} s)"
    for stream in (sys.stdout, log):
        print(header, file=stream, flush=True)
    process = subprocess.Popen(
        stage.argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": _python_path()},
    )

    def copy_output() -> None:
        for line in process.stdout:
            sys.stdout.write(line)
            log.write(line)
        sys.stdout.flush()
        log.flush()

    copier = threading.Thread(target=copy_output, daemon=True)
    copier.start()
    try:
        code = process.wait(timeout=timeout_s)
        status = "passed" if code == 0 else f"failed (exit {code})"
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        status = "timed out"
    copier.join(timeout=5)
    return Outcome(stage.name, status, time.perf_counter() - start)


def run_set(
    plan: Sequence[Stage], budget_s: float, log: TextIO, min_stage_s: float = 20
) -> list[Outcome]:
    """Each stage in turn under ``min(cap, budget left)``; once less than ``min_stage_s`` is
    left, the rest are skipped (a stage cut short that soon would bring back nothing)."""
    deadline = time.perf_counter() + budget_s
    outcomes = []
    for stage in plan:
        left = deadline - time.perf_counter()
        if left < min_stage_s:
            outcomes.append(Outcome(stage.name, "skipped", 0.0))
            continue
        outcomes.append(run_stage(stage, min(stage.cap_s, left), log))
    return outcomes


def summary(outcomes: Sequence[Outcome], device: str, budget_s: float) -> str:
    import torch

    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    lines = [
        f"GPU set on {name}, torch {torch.__version__}, Python {sys.version.split()[0]}; "
        f"budget {budget_s:.0f} s.",
        "",
        "| stage | how it ended | seconds |",
        "|---|---|---|",
        *(f"| {o.name} | {o.status} | {o.seconds:.1f} |" for o in outcomes),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--out", default="benchmarks/results", help="folder for the tables")
    parser.add_argument(
        "--budget-s", type=float, default=480, help="wall seconds for the whole set (default 480)"
    )
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds per benchmark")
    parser.add_argument("--only", nargs="*", help="run only these stages, by name")
    args = parser.parse_args(argv)
    refuse_missing_cuda(parser, args.device)
    if args.budget_s <= 0:
        parser.error(f"--budget-s must be positive, got {args.budget_s}")
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    plan = stages(args.device, out, args.rounds)
    known = [stage.name for stage in plan]
    unknown = sorted(set(args.only or ()) - set(known))
    if unknown:
        parser.error(f"--only: unknown stage(s) {', '.join(unknown)}; choose from {known}")
    if args.only:
        plan = [stage for stage in plan if stage.name in args.only]
    with open(out / "gpu-set.log", "w") as log:
        outcomes = run_set(plan, args.budget_s, log)
    emit(summary(outcomes, args.device, args.budget_s), str(out / "gpu-set.md"))
    return 0 if all(o.status == "passed" for o in outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
