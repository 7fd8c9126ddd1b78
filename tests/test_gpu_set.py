"""The GPU set's runner: what it runs, in what order, under which limits, and what it reports.
A borrowed GPU machine gives minutes; everything checkable without one is checked here."""

from __future__ import annotations

import importlib
import subprocess
import sys
import time

import pytest
import torch

from benchmarks import gpu_set
from benchmarks.gpu_set import Stage, run_set


def _python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


def test_each_stage_ends_passed_failed_timed_out_or_skipped(tmp_path):
    child = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
    child += "'import time; time.sleep(60)']); print('started', flush=True); time.sleep(60)"
    plan = [
        Stage("ok", _python("print('hello')"), 30),
        Stage("bad", _python("import sys; sys.exit(3)"), 30),
        Stage("slow", _python(child), 60),
        Stage("late", _python("print('never')"), 30),
    ]
    log_path = tmp_path / "gpu-set.log"
    start = time.perf_counter()
    with open(log_path, "w") as log:
        outcomes = run_set(plan, budget_s=6, log=log, min_stage_s=1)
    assert [(o.name, o.status) for o in outcomes] == [
        ("ok", "passed"),
        ("bad", "failed (exit 3)"),
        ("slow", "timed out"),
        ("late", "skipped"),
    ]
    assert time.perf_counter() - start < 20
    log_text = log_path.read_text()
    assert "== ok:" in log_text and "hello" in log_text and "started" in log_text
    assert "never" not in log_text


def test_a_timed_out_stage_takes_its_spawned_workers_with_it(tmp_path):
    marker = tmp_path / "alive"
    grandchild = f"import time, pathlib; time.sleep(3); pathlib.Path({str(marker)!r}).touch()"
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {grandchild!r}])"
    code += "; time.sleep(60)"
    with open(tmp_path / "log", "w") as log:
        (outcome,) = run_set([Stage("packing", _python(code), 1)], budget_s=60, log=log)
    assert outcome.status == "timed out"
    time.sleep(4)
    assert not marker.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the flags through the CUDA refusal")
def test_every_benchmark_stage_passes_flags_its_benchmark_accepts(tmp_path, capsys):
    """Parsed by each benchmark's own parser: an unknown flag would fail with 'unrecognized
    arguments'; accepted flags reach the refusal of --device cuda on this CUDA-less machine."""
    for stage in gpu_set.stages("cuda", tmp_path, rounds=20):
        if stage.argv[1:3] == ("-m", "pytest"):
            continue
        module = importlib.import_module(stage.argv[2])
        with pytest.raises(SystemExit) as refused:
            module.main(list(stage.argv[3:]))
        assert refused.value.code == 2
        assert capsys.readouterr().err.endswith("--device cuda: no CUDA device here\n")


def test_the_cuda_test_stage_selects_tests_in_each_of_its_files():
    cuda_tests = gpu_set.stages("cuda", gpu_set.ROOT, rounds=20)[0]
    collected = subprocess.run(
        [*cuda_tests.argv, "--collect-only"],
        cwd=gpu_set.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for path in gpu_set.CUDA_TESTS:
        assert f"{path}::" in collected, path


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--device", "cpu", "--only", "regularizers", "bogus"], "--only: unknown stage(s) bogus"),
        (["--device", "cpu", "--budget-s", "0"], "--budget-s must be positive, got 0.0"),
        (["--device", "cpu", "--rounds", "0"], "--rounds must be at least 1, got 0"),
    ],
)
def test_bad_arguments_are_refused_naming_the_flag(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as refused:
        gpu_set.main([*argv, "--out", str(tmp_path)])
    assert refused.value.code == 2
    assert message in capsys.readouterr().err


def test_the_summary_says_how_each_stage_ended_and_the_exit_status_follows(tmp_path, capsys):
    code = gpu_set.main(
        ["--device", "cpu", "--only", "cuda-tests", "--budget-s", "120", "--out", str(tmp_path)]
    )
    summary = (tmp_path / "gpu-set.md").read_text()
    assert code == 0
    assert "| cuda-tests | passed |" in summary
    assert "regularizers" not in summary
    assert "== cuda-tests:" in (tmp_path / "gpu-set.log").read_text()
