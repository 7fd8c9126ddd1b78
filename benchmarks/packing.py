"""Trials packed onto one accelerator: throughput of K training processes sharing it vs one.

    python -m benchmarks.packing [--device cuda] [--trials 4] [--steps 50] [--rounds 2]
                                 [--out FILE.md]

A small trial (the p-grid net at batch 128, Drop-Activation p = 0.95, bf16 autocast as a GPU
sweep runs it) leaves most of a big GPU idle; Ray can pack several on one device
(``resources.gpus_per_trial: 0.25``). Each configuration starts its processes (spawned, one
model each), lets every one warm up, releases them together through a barrier and times
``--steps`` steps in each; throughput is the samples all of them trained over the slowest
one's time. Rounds alternate the order of the one-process and K-process configurations.
On the CPU it runs too (one thread per process), which checks the harness; the row that
matters is the GPU's.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time

from ._device import refuse_missing_cuda
from ._output import emit

BATCH = 128
SHAPE = (3, 32, 32)


def _trial(device: str, steps: int, barrier, results) -> None:
    import torch

    from benchmarks.regularizers import network, sgd, training_step

    torch.set_num_threads(1)
    target = torch.device(device)
    dtype = torch.bfloat16 if target.type == "cuda" else None
    model = network("pgrid_cnn", SHAPE, "drop_activation", p=0.95)
    step = training_step(model, sgd(model), BATCH, SHAPE, target, dtype=dtype)
    for _ in range(3):
        step()
    if target.type == "cuda":
        torch.cuda.synchronize(target)
    barrier.wait()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if target.type == "cuda":
        torch.cuda.synchronize(target)
    results.put(time.perf_counter() - start)


def throughput(device: str, processes: int, steps: int) -> float:
    """Samples per second trained by ``processes`` concurrent trials on ``device``."""
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(target=_trial, args=(device, steps, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    walls = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise RuntimeError(f"a packed trial exited {worker.exitcode}")
    return processes * steps * BATCH / max(walls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    refuse_missing_cuda(parser, args.device)
    rates: dict[int, list[float]] = {1: [], args.trials: []}
    for r in range(args.rounds):
        for count in [1, args.trials] if r % 2 == 0 else [args.trials, 1]:
            rates[count].append(throughput(args.device, count, args.steps))
            print(
                f"round {r + 1}: {count} trials {rates[count][-1]:.0f} samples/s", file=sys.stderr
            )
    alone, packed = (statistics.median(rates[k]) for k in (1, args.trials))
    setup = f"p-grid net + DA p=0.95, batch {BATCH}, {args.device}, {args.rounds} rounds"
    table = "\n".join(
        [
            "| what | setup | measured |",
            "|---|---|---|",
            f"| 1 trial, samples/s | {setup} | {alone:.0f} |",
            f"| {args.trials} trials packed, samples/s (all together) | {setup} | {packed:.0f} |",
            f"| {args.trials} packed / 1 trial throughput | {setup} | {packed / alone:.3f} |",
        ]
    )
    emit(table, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
