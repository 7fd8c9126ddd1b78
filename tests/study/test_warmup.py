"""What a sweep's ending imports is imported while its trials train (:mod:`study.warmup`), and not
before the first one: the driver's path to the first training step stays free of it."""

import subprocess
import sys
from pathlib import Path

from study import warmup

ROOT = Path(__file__).parents[2]


def test_the_driver_reaches_tune_without_the_ending_s_imports():
    modules = [*warmup.ENDING_IMPORTS, "matplotlib"]
    code = "import sys, study.cli, study.runner\n"
    code += f"print([m for m in {modules!r} if m in sys.modules])"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def test_the_first_result_imports_once_in_a_thread_and_the_sweep_waits_for_it(
    tmp_path, monkeypatch
):
    probe = "import threading\nTHREAD = threading.current_thread()\n"
    (tmp_path / "warm_probe.py").write_text(probe)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "warm_probe", raising=False)
    callback = warmup.ImportWhileTraining(["warm_probe", "no_such_module_here"])
    for iteration in range(3):
        callback.on_trial_result(iteration, [], None, {})
    warmup.wait_for_imports()
    probe = sys.modules["warm_probe"]
    assert probe.THREAD.name == "warm-imports" and not probe.THREAD.is_alive()
    assert "no_such_module_here" not in sys.modules  # left for the ending to report


def test_a_module_that_fails_stops_the_thread_quietly(tmp_path, monkeypatch):
    (tmp_path / "warm_broken.py").write_text("raise RuntimeError('broken on import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    callback = warmup.ImportWhileTraining(["warm_broken", "warm_after_broken"])
    callback.on_trial_result(0, [], None, {})
    warmup.wait_for_imports()
    assert "warm_broken" not in sys.modules and "warm_after_broken" not in sys.modules
