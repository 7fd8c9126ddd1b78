"""A method defined outside regstudy plugs in through the ``regstudy.methods`` entry point.

The method is one file (``global_clip.py`` beside this test); the test installs it as a
minimal distribution (a ``.dist-info`` with its entry point) on the path of a fresh ``study``
process, whose Ray workers inherit that path, and runs a real sweep (local Ray, MLflow) with a
grid over the method's knob. Nothing outside this folder knows the method.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from tests.support import locations, runs

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def install(site: Path) -> None:
    """A distribution ``regstudy-global-clip`` whose entry point names the method's record."""
    info = site / "regstudy_global_clip-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: regstudy-global-clip\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text("[regstudy.methods]\nglobal_clip = global_clip:RECORD\n")


def study(args: list[str], cwd: Path, path: list[Path]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in [*path, ROOT])}
    command = [sys.executable, "-c", "import sys; from study.cli import main; sys.exit(main())"]
    return subprocess.run(
        [*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.fixture
def spec(tmp_path) -> Path:
    values = {
        "name": "plugin",
        "train": {"dataset": "digits", "model": "mlp", "norm": "none", "batch_size": 64},
        "grid": {"global_clip": [0.5, 5.0]},
        "budget": {"epochs": 1, "repeats": 1, "max_concurrent": 2},
        "resources": {"cpus_per_trial": 1},
    }
    path = tmp_path / "plugin.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_a_sweep_runs_a_method_installed_by_another_distribution(tmp_path, spec):
    site = tmp_path / "site"
    install(site)
    done = study(["sweep", str(spec), *locations(tmp_path)], tmp_path, [site, HERE])
    assert done.returncode == 0, done.stderr[-3000:]
    _, trials = runs(tmp_path, "plugin", "trial")
    assert sorted(t.data.params["global_clip"] for t in trials) == ["0.5", "5.0"]
    assert all(t.info.status == "FINISHED" for t in trials)
    assert all(t.data.metrics["hp.global_clip"] in (0.5, 5.0) for t in trials)


def test_without_the_distribution_the_knob_is_refused_before_anything_starts(tmp_path, spec):
    refused = study(["sweep", str(spec), *locations(tmp_path)], tmp_path, [HERE])
    assert refused.returncode == 2
    assert "unknown config keys ['global_clip']" in refused.stderr


def test_the_method_is_pascanu_et_als_algorithm_1():
    sys.path.insert(0, str(HERE))
    try:
        from global_clip import clip_global_norm
    finally:
        sys.path.remove(str(HERE))
    model = nn.Linear(3, 2)
    model.weight.grad = torch.full((2, 3), 3.0)
    model.bias.grad = torch.full((2,), 4.0)
    norm = (6 * 9 + 2 * 16) ** 0.5
    assert clip_global_norm(model, 1.0).item() == pytest.approx(norm)
    assert torch.allclose(model.weight.grad, torch.full((2, 3), 3.0 / (norm + 1e-6)))
    small = nn.Linear(3, 2)
    small.weight.grad, small.bias.grad = torch.full((2, 3), 0.1), torch.zeros(2)
    clip_global_norm(small, 1.0)
    assert torch.equal(small.weight.grad, torch.full((2, 3), 0.1))
