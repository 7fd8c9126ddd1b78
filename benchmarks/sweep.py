"""What a sweep costs beyond its trainings: `study sweep` against a plain two-process loop.

    python -m benchmarks.sweep [--rounds 2] [--quick] [--out FILE.md]

Each round runs, in rotating order, (a) `study sweep` on the embedded main job (`make run`'s:
the Drop-Activation p-grid on 2000 MNIST images, 6 p x 3 seeds, 4 epochs; `--quick`: one seed,
2 epochs),
as its own process with its own MLflow store and Ray storage in a temporary directory, and
(b) a plain loop over the same trial configs: one process running them through
``trainables.train.fit`` two at a time (``multiprocessing``, spawn), which is the least any
tool could spend. Rows (medians over rounds; the range in the setup column):

- sweep wall / plain wall, and useful compute / wall for both: the trials' own time (Ray's
  ``time_total_s``; the time inside ``fit`` for the plain loop) over 2 x wall;
- the sweep's fixed overhead: from the command's start to the first trial's first training
  iteration, and from the last trial's last iteration to the process's exit;
- the gap between two trials on one Ray worker (the end of one trial's last training iteration
  to the start of the next trial's first), and a worker's idle time between a trial's epochs;
- peak RSS (``VmHWM``) of a trial worker against a plain loop's worker.

Worker-side times come from a probe (``benchmarks/_probe/sitecustomize.py``) that times each
of Tune's training iterations in the trial workers: Tune's results carry whole seconds only.
Shared machines drift, so the rows that matter are ratios measured side by side; absolute
seconds are given for scale, and the load average at the start says how loaded the machine was.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._output import emit, load_average

ROOT = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).resolve().parent / "_probe"
SLOTS = 2  # the main job's max_concurrent, and the plain loop's processes
QUICK = {"budget.repeats": 1, "budget.epochs": 2}
DATA = ROOT / "data"  # where `make run` keeps its datasets

Row = tuple[str, str, float, tuple[str, float] | None]


@dataclass
class Sweep:
    wall: float
    to_first: float
    after_last: float
    useful: float
    gaps: list[float]
    epoch_idle: list[float]
    hwm_kib: list[int]
    cpu: float  # CPU seconds of the trial processes, up to their last trial's end
    epoch_time: float  # Σ the trainer's own epoch_time


@dataclass
class Plain:
    wall: float
    to_first: float
    after_last: float
    useful: float
    hwm_kib: list[int]
    cpu: float
    epoch_time: float


# ---- the plain loop: run in its own process (`--plain CONFIGS RESULT`) ------------------------


def _import_trainer() -> None:
    import trainables.train  # noqa: F401  (imported before the clock of the first trial starts)


def _plain_trial(values: dict[str, Any]) -> dict[str, Any]:
    """One training, as a plain process runs it; its time inside ``fit`` and the peak RSS."""
    from benchmarks._probe.sitecustomize import memory_kib
    from trainables.config import TrainConfig
    from trainables.train import fit

    start = time.time()
    epoch_time = sum(report.metrics["epoch_time"] for report in fit(TrainConfig.from_dict(values)))
    end = time.time()
    return {
        "pid": os.getpid(),
        "start": start,
        "end": end,
        "cpu": time.process_time(),
        "epoch_time": epoch_time,
        **memory_kib(),
    }


def plain_main(configs_path: str, result_path: str) -> None:
    import multiprocessing

    configs = json.loads(Path(configs_path).read_text())
    context = multiprocessing.get_context("spawn")
    with context.Pool(SLOTS, initializer=_import_trainer) as pool:
        trials = list(pool.imap_unordered(_plain_trial, configs, chunksize=1))
    Path(result_path).write_text(json.dumps(trials))


# ---- what a trial worker imports that a plain process does not -----------------------------------

# In a fresh process: the trainer first (what a plain process holds), then each module a trial
# worker adds, RSS after each (MiB); Tune's trainable imports ray.tune, whose package imports
# pandas (and with it pyarrow) and ray.train at import.
_IMPORT_COST = """
import importlib, json, sys
from benchmarks._probe.sitecustomize import memory_kib
import trainables.train
steps = {"trainer": memory_kib()["VmRSS"]}
for name in ("ray", "pandas", "ray.train", "ray.tune.trainable.function_trainable"):
    importlib.import_module(name)
    steps[name] = memory_kib()["VmRSS"]
print(json.dumps(steps))
"""


def import_cost() -> dict[str, float]:
    """MiB of RSS each module a trial worker imports beyond the trainer adds, in order."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_COST], cwd=ROOT, capture_output=True, text=True, check=True
    )
    steps = json.loads(done.stdout)
    names = list(steps)
    return {b: (steps[b] - steps[a]) / 1024 for a, b in itertools.pairwise(names)}


# ---- the driver ---------------------------------------------------------------------------------


def main_job(overrides: dict[str, Any]):
    """The embedded main job's spec, with ``overrides`` and the repository's data directory."""
    from importlib import resources

    import yaml

    from study.cli import MAIN_JOB
    from study.spec import build_spec

    values = yaml.safe_load(resources.files("study").joinpath(MAIN_JOB).read_text())
    return build_spec(values, {**overrides, "train.data_dir": str(DATA)})


def trial_configs(spec) -> list[dict[str, Any]]:
    """The spec's training configs, in the order Ray starts its trials."""
    from search_spaces import get_space
    from study.trials import grid_trial_configs
    from trainables.trial_config import training_values

    return [training_values(c)[0] for c in grid_trial_configs(spec, get_space(spec.space))]


def _per_process_max(records: list[dict[str, Any]], key: str) -> list[float]:
    """The largest ``key`` each process recorded (its peak RSS, or its CPU clock at its end)."""
    largest: dict[int, float] = {}
    for record in records:
        largest[record["pid"]] = max(largest.get(record["pid"], 0), record[key])
    return list(largest.values())


def _workers_cpu(calls: list[dict[str, Any]]) -> float:
    """CPU seconds of the processes that trained, each up to the end of its last trial: a
    process's CPU clock at its latest record, summed over processes."""
    return sum(_per_process_max(calls, "cpu"))


def _flags(overrides: dict[str, Any]) -> list[str]:
    names = {"budget.repeats": "--repeats", "budget.epochs": "--epochs"}
    names["train.data_dir"] = "--data-dir"
    return [part for key, value in overrides.items() for part in (names[key], str(value))]


def run_sweep(overrides: dict[str, Any], work: Path) -> Sweep:
    """`study sweep` as `make run` runs it, in a fresh process, storage and store under ``work``."""
    probe = work / "probe"
    probe.mkdir(parents=True)
    env = dict(os.environ, REGSTUDY_SWEEP_PROBE=str(probe))
    env.setdefault("RAY_worker_niceness", "0")  # as the plain loop: background load yields to both
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROBE), env.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "study",
        "sweep",
        "--overwrite",
        "--tracking-uri",
        f"sqlite:///{work}/mlruns.db",
        "--storage-path",
        str(work / "ray_results"),
        *_flags({**overrides, "train.data_dir": DATA}),
    ]
    with open(work / "sweep.log", "w") as log:
        start = time.time()
        done = subprocess.run(command, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
        end = time.time()
    if done.returncode != 0:
        raise RuntimeError(f"study sweep exited {done.returncode}: see {work / 'sweep.log'}")
    calls = [json.loads(line) for f in probe.glob("*.jsonl") for line in f.read_text().splitlines()]
    if not calls:
        raise RuntimeError("the probe saw no training iteration: was PYTHONPATH passed on?")
    gaps, idle = _gaps(calls)
    totals, epoch_time = [], 0.0
    for result in (work / "ray_results").glob("*/*/result.json"):
        rows = [json.loads(line) for line in result.read_text().splitlines()]
        totals.append(max(row["time_total_s"] for row in rows))
        epoch_time += sum(row.get("epoch_time", 0.0) for row in rows)
    return Sweep(
        wall=end - start,
        to_first=min(c["start"] for c in calls) - start,
        after_last=end - max(c["end"] for c in calls),
        useful=sum(totals) / (SLOTS * (end - start)),
        gaps=gaps,
        epoch_idle=idle,
        hwm_kib=_per_process_max(calls, "VmHWM"),
        cpu=_workers_cpu(calls),
        epoch_time=epoch_time,
    )


def _gaps(calls: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    """Per worker, in time order: the idle time where one trial's iterations end and the next
    trial's begin (between trials), and between two iterations of one trial (between epochs)."""
    between, within = [], []
    for pid in {c["pid"] for c in calls}:
        mine = sorted((c for c in calls if c["pid"] == pid), key=lambda c: c["start"])
        for before, after in itertools.pairwise(mine):
            idle = after["start"] - before["end"]
            (within if before["trial"] == after["trial"] else between).append(idle)
    return between, within


def run_plain(configs: list[dict[str, Any]], work: Path) -> Plain:
    work.mkdir(parents=True)
    configs_path, result_path = work / "configs.json", work / "trials.json"
    configs_path.write_text(json.dumps(configs))
    command = [sys.executable, "-m", "benchmarks.sweep", "--plain", str(configs_path)]
    command.append(str(result_path))
    # the thread count Ray gives a one-CPU trial's process (torch's own is the config's)
    env = dict(os.environ, OMP_NUM_THREADS=str(configs[0].get("num_threads") or 1))
    start = time.time()
    subprocess.run(command, cwd=ROOT, env=env, check=True)
    end = time.time()
    trials = json.loads(result_path.read_text())
    return Plain(
        wall=end - start,
        to_first=min(t["start"] for t in trials) - start,
        after_last=end - max(t["end"] for t in trials),
        useful=sum(t["end"] - t["start"] for t in trials) / (SLOTS * (end - start)),
        hwm_kib=_per_process_max(trials, "VmHWM"),
        cpu=_workers_cpu(trials),
        epoch_time=sum(t["epoch_time"] for t in trials),
    )


def measure(rounds: int, overrides: dict[str, Any]) -> tuple[list[Sweep], list[Plain]]:
    configs = trial_configs(main_job(overrides))
    sweeps: list[Sweep] = []
    plains: list[Plain] = []
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        for r in range(rounds):
            order = ["sweep", "plain"] if r % 2 == 0 else ["plain", "sweep"]
            for which in order:
                work = Path(tmp) / f"{which}-{r}"
                if which == "sweep":
                    sweeps.append(run_sweep(overrides, work))
                    print(f"round {r + 1}: sweep {sweeps[-1].wall:.1f} s", file=sys.stderr)
                else:
                    plains.append(run_plain(configs, work))
                    print(f"round {r + 1}: plain {plains[-1].wall:.1f} s", file=sys.stderr)
    return sweeps, plains


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(values: list[float], digits: int = 2) -> str:
    if len(values) < 2:
        return ""
    return f" (range {min(values):.{digits}f}–{max(values):.{digits}f})"


def _row(name: str, setup: str, values: list[float], goal=None, digits: int = 2) -> Row:
    """A row: the median of ``values``, their range in the setup column."""
    return (name, setup + _spread(values, digits), _median(values), goal)


def rows(sweeps: list[Sweep], plains: list[Plain], spec, imports: dict[str, float]) -> list[Row]:
    trials = len(trial_configs(spec))
    job = f"{spec.name}: {trials} trainings × {spec.budget.epochs} epochs, {SLOTS} at a time"
    gaps = [g for s in sweeps for g in s.gaps]
    idle = [g for s in sweeps for g in s.epoch_idle]
    worker = [max(s.hwm_kib) / 2**20 for s in sweeps]
    plain = [max(p.hwm_kib) / 2**20 for p in plains]
    return [
        _row(
            "sweep wall / plain-loop wall",
            job,
            [s.wall / p.wall for s, p in zip(sweeps, plains)],
            digits=3,
        ),
        _row(
            "useful compute / wall, sweep",
            "Σ trials' time_total_s / (2 × wall)",
            [s.useful for s in sweeps],
            ("≥", 0.85),
            3,
        ),
        _row(
            "useful compute / wall, plain loop",
            "Σ time inside fit / (2 × wall)",
            [p.useful for p in plains],
            digits=3,
        ),
        _row(
            "trial processes' CPU seconds, sweep / plain loop",
            "Σ over the processes that trained, to their last trial's end",
            [s.cpu / p.cpu for s, p in zip(sweeps, plains)],
            digits=3,
        ),
        _row(
            "training epochs' time, sweep / plain loop",
            "Σ the trainer's epoch_time: the same compute?",
            [s.epoch_time / p.epoch_time for s, p in zip(sweeps, plains)],
            digits=3,
        ),
        _row(
            "fixed overhead per sweep, s",
            "start → first trial, last trial → exit",
            [s.to_first + s.after_last for s in sweeps],
            ("≤", 10.0),
        ),
        _row("  start → first trial's first iteration, s", "sweep", [s.to_first for s in sweeps]),
        _row(
            "  last trial's last iteration → exit, s",
            "sweep, best table and curve included",
            [s.after_last for s in sweeps],
        ),
        _row(
            "plain loop: start → first trial, s",
            "process, pool, imports",
            [p.to_first for p in plains],
        ),
        _row("plain loop: last trial → exit, s", "", [p.after_last for p in plains]),
        _row("gap between trials on a worker, s (median)", f"{len(gaps)} gaps", gaps, ("≤", 0.2)),
        (
            "gap between trials on a worker, s (90th pct)",
            f"{len(gaps)} gaps",
            _quantile(gaps, 0.9),
            None,
        ),
        _row("worker idle between a trial's epochs, s (median)", f"{len(idle)} epochs", idle),
        _row(
            "trial worker peak RSS / plain process peak RSS",
            "VmHWM, largest worker",
            [w / p for w, p in zip(worker, plain)],
            ("≤", 1.10),
            3,
        ),
        _row("trial worker peak RSS, GiB", "VmHWM", worker),
        _row("plain process peak RSS, GiB", "VmHWM", plain),
        (
            "a worker's imports beyond the trainer, MiB",
            "RSS in a fresh process: " + ", ".join(f"{m} {v:.0f}" for m, v in imports.items()),
            sum(imports.values()),
            None,
        ),
    ]


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def machine() -> str:
    import ray
    import torch

    return (
        f"Measured on {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, ray {ray.__version__}; load average (1, 5, 15 min) at the "
        f"start {load_average()}"
    )


def render(rows: list[Row], header: str, rounds: int, quick: bool) -> str:
    what = "quick (1 seed, 2 epochs)" if quick else "the main job as `make run` runs it"
    lines = [
        f"{header}, at the end {load_average()}.",
        f"{rounds} rounds, sweep and plain loop interleaved; {what}. Medians over rounds.",
        "",
        "| what | setup | measured | goal |",
        "|---|---|---|---|",
    ]
    for name, setup, value, goal in rows:
        verdict = ""
        if goal is not None:
            op, target = goal
            ok = value <= target if op == "≤" else value >= target
            verdict = f"{op} {target:g} {'met' if ok else 'missed'}"
        lines.append(f"| {name} | {setup} | {value:.3f} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=None, help="default 2 (quick: 1)")
    parser.add_argument("--quick", action="store_true", help="one seed, 2 epochs")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    parser.add_argument("--plain", nargs=2, metavar=("CONFIGS", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain:
        plain_main(*args.plain)
        return 0
    rounds = args.rounds or (1 if args.quick else 2)
    overrides = dict(QUICK) if args.quick else {}
    header = machine()
    sweeps, plains = measure(rounds, overrides)
    imports = import_cost()
    table = render(rows(sweeps, plains, main_job(overrides), imports), header, rounds, args.quick)
    emit(table, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
