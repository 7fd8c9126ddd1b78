"""`make run`'s sweep, this checkout against an earlier commit, timed side by side.

    python -m benchmarks.make_run --base REV [--rounds 2] [--out FILE.md]

Each round runs, in rotating order, the embedded main job's ``study sweep --overwrite`` (what
`make run` runs once its environment is installed) of the base commit (a ``git worktree`` of
REV in a temporary directory) and of this checkout, both with this checkout's virtual
environment, each with its own MLflow store and Ray storage. A third variant runs the base
commit's main job spec with this checkout's code, so the table separates what the code saved
from what the choice of job changed. Wall time from the command's start to its exit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._output import emit, load_average

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"  # where `make run` keeps its datasets
MAIN_JOB = Path("study/main_job.yaml")


def sweep_command(work: Path, spec: Path | None) -> list[str]:
    return [
        sys.executable,
        "-m",
        "study",
        "sweep",
        *([str(spec)] if spec else []),
        "--overwrite",
        "--quiet",
        "--tracking-uri",
        f"sqlite:///{work}/mlruns.db",
        "--storage-path",
        str(work / "ray_results"),
    ]


def timed(tree: Path, work: Path, spec: Path | None) -> float:
    """Seconds of one ``study sweep`` run from ``tree``'s code, in its own directory."""
    work.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(tree), RAY_worker_niceness="0")
    env["REGSTUDY_DATA_DIR"] = str(DATA)
    with open(work / "sweep.log", "w") as log:
        start = time.perf_counter()
        done = subprocess.run(sweep_command(work, spec), cwd=tree, env=env, stdout=log, stderr=log)
        wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"study sweep in {tree} exited {done.returncode}: {work / 'sweep.log'}")
    return wall


def job_name(tree: Path) -> str:
    import yaml

    return yaml.safe_load((tree / MAIN_JOB).read_text())["name"]


def measure(base: Path, rounds: int, tmp: Path) -> dict[str, list[float]]:
    variants = {
        "base": (base, None),
        "head": (ROOT, None),
        "head code, base job": (ROOT, base / MAIN_JOB),
    }
    walls: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            tree, spec = variants[name]
            walls[name].append(timed(tree, tmp / f"{name.replace(' ', '_')}-{r}", spec))
            print(f"round {r + 1}: {name} {walls[name][-1]:.1f} s", file=sys.stderr)
    return walls


def render(walls: dict[str, list[float]], base_rev: str, base: Path, load: str) -> str:
    med = {name: statistics.median(values) for name, values in walls.items()}

    def spread(values: list[float]) -> str:
        return f" (range {min(values):.0f}–{max(values):.0f})" if len(values) > 1 else ""

    head_job, base_job = job_name(ROOT), job_name(base)
    lines = [
        f"Measured on {os.cpu_count()} cores; load average at the start {load}, at the end "
        f"{load_average()}. {len(walls['base'])} rounds, variants interleaved; medians.",
        "",
        "| what | setup | wall, s | ratio to base |",
        "|---|---|---|---|",
        f"| `make run`'s sweep at {base_rev} | {base_job}{spread(walls['base'])} "
        f"| {med['base']:.1f} | 1.000 |",
        f"| `make run`'s sweep now | {head_job}{spread(walls['head'])} | {med['head']:.1f} "
        f"| {med['head'] / med['base']:.3f} |",
        f"| this code on the base job | {base_job}{spread(walls['head code, base job'])} "
        f"| {med['head code, base job']:.1f} | {med['head code, base job'] / med['base']:.3f} |",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    load = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-make-run-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.base], cwd=ROOT, check=True
        )
        try:
            walls = measure(base, args.rounds, Path(tmp))
            table = render(walls, args.base, base, load)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)
    emit(table, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
