"""The dependency ranges pyproject.toml declares are the ranges that were tested: every floor is
pinned in ``.ci/minimum.txt``, which ``make test-minimum`` installs and runs the suite on."""

from __future__ import annotations

from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli, which pytest itself needs there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
MINIMUM = ROOT / ".ci" / "minimum.txt"


def declared_floors() -> dict[str, Version]:
    """Each runtime dependency's ``>=`` bound, as pyproject.toml declares it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    floors = {}
    for text in project["dependencies"]:
        requirement = Requirement(text)
        (floor,) = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        floors[canonicalize_name(requirement.name)] = Version(floor)
    return floors


def minimum_pins() -> dict[str, Version]:
    pins = {}
    for line in MINIMUM.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (pin,) = [spec.version for spec in requirement.specifier if spec.operator == "=="]
            pins[canonicalize_name(requirement.name)] = Version(pin)
    return pins


def test_every_runtime_dependency_declares_a_floor():
    assert len(declared_floors()) >= 10


def test_the_minimum_run_pins_each_floor_at_its_own_release_line():
    """A pin may be a patch release above its floor (pyyaml 6.0 no longer builds), never a
    newer minor: 'mlflow>=2.16' is tested on 2.16.x."""
    floors, pins = declared_floors(), minimum_pins()
    assert pins.keys() == floors.keys()
    for name, floor in floors.items():
        pin = pins[name]
        assert pin >= floor and pin.release[: len(floor.release)] == floor.release, (name, pin)
