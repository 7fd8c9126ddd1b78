"""Bad specs fail before anything runs: the field, the value, what is allowed; no Ray, no MLflow."""

from pathlib import Path

import pytest
import ray
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


BAD_SPECS = [
    ({"train.model": "resnet9000"}, "model='resnet9000' is not allowed: choose one of"),
    ({"train.da_p": 1.5}, "da_p=1.5 is not allowed: must be a number in (0, 1]"),
    ({"train.norm": "vcl", "train.vcl_n": 1}, "vcl_n=1 is not allowed"),
    ({"train.norm": "vcl", "train.vcl_n": 40}, "batch_size / 2 = 32"),
    ({"space": "vcl", "train.batch_size": 16}, "search space 'vcl' reaches an illegal config"),
    ({"space": "dropout"}, "unknown search space 'dropout'; choose one of"),
    ({"metric": "accuracy"}, "unknown metric 'accuracy'; choose one of"),
    ({"mode": "maximize"}, "mode: Input should be 'min' or 'max'"),
    ({"budget.repeats": 0}, "budget.repeats: Input should be greater than or equal to 1"),
    ({"resources.gpus_per_trial": 1.5}, "a fraction of a GPU must be below 1"),
    ({"resources.cpus_per_trial": 0}, "resources.cpus_per_trial: Input should be greater than 0"),
    ({"scheduler.kind": "asha", "scheduler.grace_period": 5}, "grace_period=5 exceeds"),
    ({"scheduler.kind": "hyperband"}, "scheduler.kind: Input should be 'fifo' or 'asha'"),
    ({"train.learning_rate": 0.1}, "unknown config keys ['learning_rate']"),
    ({"grid": {"seed": [0, 1]}}, "seeds are an axis of every sweep: use budget.repeats"),
    ({"grid": {"activation": ["relu", "swish"]}}, "grid.activation: activation='swish'"),
    ({"space": "drop_activation", "grid": {"activation": ["relu"]}}, "need a grid space"),
    ({"address": "my-cluster"}, "address must be 'auto'"),
    ({"train.val_fraction": 0.0}, "needs a validation split"),
    ({"name": "bad name!"}, "name: String should match pattern"),
    ({"budget.epochs": "ten"}, "budget.epochs: Input should be a valid integer"),
    ({"optimizer": "adam"}, "optimizer: Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_SPECS)
def test_bad_spec_is_rejected_naming_field_and_allowed(overrides, message):
    with pytest.raises(SpecError) as err:
        build_spec(GOOD, overrides)
    assert message in str(err.value)


@pytest.mark.parametrize(("overrides", "message"), BAD_SPECS[:6])
def test_cli_exits_nonzero_and_writes_nothing(workdir, capsys, overrides, message):
    spec = write_spec(workdir, GOOD)
    sets = [
        f"--set={key}={yaml.safe_dump(value, default_flow_style=True).strip()}"
        for key, value in overrides.items()
    ]
    assert main(["sweep", str(spec), *sets]) == 2
    assert message in capsys.readouterr().err
    assert not ray.is_initialized()
    assert sorted(p.name for p in workdir.iterdir()) == ["spec.yaml"]


def test_gpu_fraction_on_a_machine_without_gpus_fails_before_ray(workdir, capsys):
    spec = write_spec(workdir, GOOD)
    assert main(["sweep", str(spec), "--gpus-per-trial", "0.25"]) == 2
    assert "gpus_per_trial=0.25 but this machine has no GPUs" in capsys.readouterr().err
    assert not ray.is_initialized()
    assert sorted(p.name for p in workdir.iterdir()) == ["spec.yaml"]


def test_missing_spec_file_is_a_clear_error(workdir, capsys):
    assert main(["sweep", "nowhere.yaml"]) == 2
    assert "cannot read spec nowhere.yaml" in capsys.readouterr().err


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
    assert printed["name"] == "pgrid-digits" and printed["budget"]["repeats"] == 4


def test_set_values_are_read_as_yaml():
    assert parse_assignment("train.milestones=[100, 150]") == ("train.milestones", [100, 150])
    assert parse_assignment("train.lr=1e-3") == ("train.lr", 1e-3)
    with pytest.raises(SpecError, match=r"section\.field=value"):
        parse_assignment("train.lr")


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
