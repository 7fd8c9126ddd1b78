"""What reading its dataset costs a fresh training process: the decoded copy vs torchvision.

    python -m benchmarks.dataset_read [--data-dir DIR] [--rounds 10] [--out FILE.md]

Each round starts one process per variant, in alternating order; a process imports the trainer,
then reads the dataset with ``load_dataset`` and imports ``torch._dynamo`` (which its optimizer
imports anyway: ``Optimizer.add_param_group`` does on first call), timing that span on both
clocks and its RSS growth. The torchvision variant has no copy to read (``$REGSTUDY_DECODED_DIR``
points where none can be written). MNIST is the real one from the data dir; CIFAR-10 is written
at full size in its own pickle format with random pixels (torchvision checks the MD5s its class
lists, so that process puts ours there; the copy never asks).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from ._output import emit, load_average
from ._timing import Timing

ROOT = Path(__file__).resolve().parent.parent
NO_COPY = "/dev/null/no-decoded-copy"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN = [f"data_batch_{k}" for k in range(1, 6)]

_READ = """
import json, sys, time
from benchmarks._probe.sitecustomize import memory_kib
import trainables.train
from trainables.data import load_dataset
name, root, checksums = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
before, wall, cpu = memory_kib()["VmRSS"], time.perf_counter(), time.process_time()
if checksums:
    from torchvision import datasets
    for attribute, value in checksums.items():
        setattr(datasets.CIFAR10, attribute, value)
data = load_dataset(name, root=root, val_fraction=0.1)
import torch._dynamo
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                  "rss_mib": (memory_kib()["VmRSS"] - before) / 1024, "n": len(data.train)}))
"""


def write_cifar10(root: Path) -> dict[str, object]:
    """CIFAR-10's five training batches and test batch at full size, and torchvision's MD5 table
    for them."""
    folder = root / CIFAR10_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    md5 = {}
    for name in [*CIFAR10_TRAIN, "test_batch", "batches.meta"]:
        if name == "batches.meta":
            content = {"label_names": [f"class{k}" for k in range(10)]}
        else:
            images = rng.integers(0, 256, (10000, 3072), dtype=np.uint8)
            content = {"data": images, "labels": rng.integers(0, 10, 10000).tolist()}
        payload = pickle.dumps(content)
        (folder / name).write_bytes(payload)
        md5[name] = hashlib.md5(payload).hexdigest()
    return {
        "train_list": [[name, md5[name]] for name in CIFAR10_TRAIN],
        "test_list": [["test_batch", md5["test_batch"]]],
        "meta": {"filename": "batches.meta", "key": "label_names", "md5": md5["batches.meta"]},
    }


def read_once(name: str, root: Path, copy: bool, checksums: dict[str, object]) -> dict:
    """One fresh process's read; ``checksums`` (CIFAR's MD5 table) are put in torchvision's class
    first when given, which imports torchvision."""
    env = dict(os.environ)
    env.pop("REGSTUDY_DECODED_DIR", None)
    if not copy:
        env["REGSTUDY_DECODED_DIR"] = NO_COPY
    args = [name, str(root), json.dumps(checksums)]
    done = subprocess.run(
        [sys.executable, "-c", _READ, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"reading {name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(name: str, root: Path, rounds: int, checksums: dict[str, object]):
    """Paired rounds of both variants in fresh processes; the copy is made before the first."""
    read_once(name, root, copy=True, checksums=checksums)
    runs: dict[bool, list[dict]] = {True: [], False: []}
    for r in range(rounds):
        for copy in (True, False) if r % 2 else (False, True):
            runs[copy].append(read_once(name, root, copy, {} if copy else checksums))
    timings = {
        copy: Timing(
            "copy" if copy else "torchvision",
            tuple(run["wall"] for run in found),
            tuple(run["cpu"] for run in found),
        )
        for copy, found in runs.items()
    }
    rss = {copy: statistics.median(run["rss_mib"] for run in found) for copy, found in runs.items()}
    return timings, rss


def rows(name: str, setup: str, timings: dict[bool, Timing], rss: dict[bool, float]) -> list[str]:
    copy, torchvision = timings[True], timings[False]
    lines = []
    medians = {
        "wall": (copy.median_s, torchvision.median_s),
        "cpu": (copy.median_cpu_s, torchvision.median_cpu_s),
    }
    for clock, label in (("wall", "wall"), ("cpu", "CPU")):
        ratio = copy.ratio_to(torchvision, clock)
        low, high = copy.ratio_interval(torchvision, clock)
        seconds = medians[clock]
        lines.append(
            f"| {name}: read, copy / torchvision, {label} | {setup} | {ratio:.3f} "
            f"[{low:.3f}, {high:.3f}] | {seconds[0]:.2f} s vs {seconds[1]:.2f} s |"
        )
    lines.append(
        f"| {name}: RSS the read adds, MiB | {setup} | {rss[True]:.0f} vs {rss[False]:.0f} | "
        f"{rss[False] - rss[True]:.0f} MiB less |"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT / "data"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    lines = [
        f"Measured on {os.cpu_count()} cores, {args.rounds} paired rounds in fresh processes; "
        f"load average at the start {load_average()}. A span is "
        "`load_dataset` (val 0.1) plus `import torch._dynamo`, which the optimizer imports "
        "anyway; ratio: median of per-round ratios, 95% bootstrap interval.",
        "",
        "| what | setup | measured | medians |",
        "|---|---|---|---|",
    ]
    mnist = Path(args.data_dir).expanduser().resolve()
    if (mnist / "MNIST" / "raw").is_dir():
        timings, rss = measure("mnist", mnist, args.rounds, {})
        lines += rows("MNIST", "real, 60,000 + 10,000", timings, rss)
    else:
        lines.append(f"| MNIST | not in {mnist} (`make data`) | | |")
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        checksums = write_cifar10(root)
        timings, rss = measure("cifar10", root, args.rounds, checksums)
        lines += rows("CIFAR-10", "its format, full size, random pixels", timings, rss)
    emit("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
