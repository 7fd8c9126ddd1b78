"""Bad specs fail before anything runs: the field, the value, what is allowed; no Ray, no MLflow."""

from pathlib import Path

import pytest
import yaml

from study.cli import main, parse_assignment
from study.spec import SpecError, build_spec, config_id, load_spec

GOOD = {
    "name": "unit",
    "space": "drop_activation_grid",
    "train": {"dataset": "digits", "model": "pgrid_cnn", "batch_size": 64},
    "budget": {"epochs": 1, "repeats": 2},
}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def write_spec(directory: Path, values: dict) -> Path:
    path = directory / "spec.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


# Bad inputs given through the CLI (unknown names, knobs out of range, types, sizes, resources,
# YAML, unknown fields) are one table in test_bad_inputs.py; these are the spec's own rules.
BAD_SPECS = [
    ({"mode": "maximize"}, "mode: Input should be 'min' or 'max'"),
    ({"resources.cpus_per_trial": 0}, "resources.cpus_per_trial: Input should be greater than 0"),
    ({"grid": {"seed": [0, 1]}}, "seeds are an axis of every sweep: use budget.repeats"),
    ({"grid": {"activation": ["relu", "swish"]}}, "grid.activation: activation='swish'"),
    ({"space": "drop_activation", "grid": {"activation": ["relu"]}}, "need a grid space"),
    ({"variants": {"big": {"batch_size": 0}}}, "variants.big: batch_size=0 is not allowed"),
    ({"address": "my-cluster"}, "address must be 'auto'"),
    ({"name": "bad name!"}, "name: String should match pattern"),
    ({"points": [{"lr": 0.1}], "space": "none"}, "points[0]: needs a 'name'"),
    ({"points": [{"name": "a"}, {"name": "a"}]}, "points[1]: name 'a' is used twice"),
    ({"points": [{"name": "a", "batch_size": 0}]}, "points[0] (a): batch_size=0 is not allowed"),
    ({"points": [{"name": "a"}]}, "points: whole configs need space 'none'"),
    ({"points": [{"name": "a"}], "grid": {"lr": [0.1]}}, "cannot be crossed with grid"),
    ({"budget.first_seed": -1}, "budget.first_seed: Input should be greater than or equal to 0"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_SPECS)
def test_bad_spec_is_rejected_naming_field_and_allowed(overrides, message):
    with pytest.raises(SpecError) as err:
        build_spec(GOOD, overrides)
    assert message in str(err.value)


def test_every_problem_is_a_line_of_its_own():
    with pytest.raises(SpecError) as err:
        build_spec(GOOD, {"budget.epochs": 0, "mode": "maximize"})
    assert str(err.value).splitlines() == [
        "budget.epochs: Input should be greater than or equal to 1 (got 0)",
        "mode: Input should be 'min' or 'max' (got 'maximize')",
    ]


def test_cuda_on_a_cluster_is_the_clusters_business():
    """Without CUDA here, ``device: cuda`` is refused for a local sweep only (see
    test_bad_inputs.py); a cluster's workers may have GPUs."""
    spec = build_spec(GOOD, {"train.device": "cuda", "address": "auto"})
    assert spec.train["device"] == "cuda"


def test_flags_and_set_override_the_file(workdir):
    spec = load_spec(
        write_spec(workdir, GOOD),
        {"budget.repeats": 5, "train.lr": 0.2, "tracking_uri": "sqlite:///x.db"},
    )
    assert spec.budget.repeats == 5 and spec.train["lr"] == 0.2
    assert spec.tracking_uri == f"sqlite:///{workdir / 'x.db'}"
    assert spec.storage_path == str(workdir / "ray_results")
    assert spec.train["data_dir"] == str(workdir / "data")


def test_dry_run_prints_the_validated_spec(workdir, capsys):
    assert main(["sweep", "--dry-run", "--repeats", "4"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["name"] == "pgrid-mnist" and printed["budget"]["repeats"] == 4


def test_set_values_are_read_as_yaml():
    assert parse_assignment("train.milestones=[100, 150]") == ("train.milestones", [100, 150])
    assert parse_assignment("train.lr=1e-3") == ("train.lr", 1e-3)


def test_config_id_ignores_seed_and_placement():
    config = {"da_p": 0.9, "seed": 0, "data_dir": "/a", "num_threads": 1}
    same = {"da_p": 0.9, "seed": 3, "data_dir": "/b", "num_threads": 4}
    assert config_id(config) == config_id(same) != config_id({**config, "da_p": 0.95})


def test_a_recorded_spec_is_read_with_todays_defaults_before_staleness_is_judged():
    """A sweep recorded before a field existed is not 'changed' by that field's default; a
    recorded value today's model rejects is."""
    from study.runner import _as_current

    spec = build_spec({"name": "old", "train": {"dataset": "digits"}})
    recorded = spec.model_dump(mode="json")
    del recorded["variants"]
    assert _as_current(recorded) == spec.model_dump(mode="json")
    assert _as_current({**recorded, "retired_field": 1}) is None


def test_points_run_whole_configs_with_the_seeds_from_first_seed():
    """A confirm round: each point is a finished trial's whole config, laid over the base and
    recorded as that trial was (the same config id), with seeds first_seed.. first_seed+K-1."""
    from search_spaces import get_space
    from study.tracking import trial_record
    from study.trials import arm_name, grid_axes, grid_trial_configs

    earlier = {"dataset": "digits", "model": "pgrid_cnn", "lr": 0.2, "activation": "relu"}
    spec = build_spec(
        GOOD,
        {
            "points": [{"name": "lr=0.2", **earlier}, {"name": "lr=0.1", **earlier, "lr": 0.1}],
            "budget.first_seed": 3,
            "budget.repeats": 2,
            "space": "none",
        },
    )
    configs = grid_trial_configs(spec, get_space(spec.space))
    assert [(c["point"]["name"], c["seed"]) for c in configs] == [
        ("lr=0.2", 3),
        ("lr=0.1", 3),
        ("lr=0.2", 4),
        ("lr=0.1", 4),
    ]
    recorded = trial_record(configs[0])
    assert recorded["lr"] == 0.2 and recorded["seed"] == 3 and "point" not in recorded
    base = {k: v for k, v in configs[0].items() if k not in ("point", "seed")}
    assert config_id(recorded) == config_id(trial_record({**base, **earlier, "seed": 0}))
    assert arm_name(configs[1], grid_axes(spec, get_space(spec.space))) == "lr=0.1"
