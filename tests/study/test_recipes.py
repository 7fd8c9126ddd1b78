"""Recipes: every file parses at both scales; a reduced version of each runs end to end."""

import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from analysis.schema import KIND_TAG
from analysis.verdicts import VERDICTS
from study.cli import main
from study.recipes import Recipe, list_recipes, load_recipe
from study.reproduce import report, reproduce
from study.spec import SpecError

pytestmark = pytest.mark.usefixtures("ray_session")

EXPECTED = {
    "da_pgrid", "da_table1", "da_table2", "da_table4", "da_fig2", "lrd_table1", "lrd_table2",
    "lrd_table3", "lrd_table4", "lrd_dg", "lrd_toy", "vcl_table2", "vcl_uci", "joint", "vcl_fig2",
    "da_property2",
}  # fmt: skip
SCRIPT_OPTIONS = {
    "da_fig2": {"seeds": 2, "steps": 20},
    "lrd_toy": {"seeds": 2, "steps": 200, "grid_per_axis": 5},
    "vcl_fig2": {
        "seeds": 3,
        "steps": 100,
        "q": [0.1, 0.25, 0.5],
        "n": [2],
        "eval_samples": 2000,
        "theory_subsets": 2000,
    },
    "da_property2": {
        "mc_p": [0.95, 1.0],
        "mc_seeds": 3,
        "mc_samples": 2000,
        "seeds": 2,
        "epochs": 1,
        "train_subset": 256,
        "probe_images": 64,
        "threads": 1,
    },
}


def test_every_paper_artifact_has_a_recipe_at_both_scales():
    assert set(list_recipes()) >= EXPECTED
    for name in list_recipes():
        recipe = load_recipe(name)
        assert set(recipe.scales) >= {"quick", "paper"}
        if recipe.script is None:
            for scale in recipe.scales:
                assert recipe.specs(scale)


def test_recipe_list_shows_scales_and_costs(capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in EXPECTED) and "quick " in out and "paper " in out


def test_parts_extend_other_parts():
    recipe = load_recipe("da_table1")
    specs = recipe.specs("paper", parts=["c100_resnet164"])
    train = specs["c100_resnet164"].train
    assert (train["dataset"], train["model"], train["arch"]) == (
        "cifar100",
        "resnet",
        {"depth": 164},
    )
    assert train["milestones"] == [81, 122] and specs["c100_resnet164"].budget.epochs == 164


def test_a_part_naming_another_architecture_does_not_inherit_its_base_options():
    resnext = load_recipe("da_table1").specs("paper", parts=["c10_resnext29"])["c10_resnext29"]
    assert resnext.train["arch"] == {"depth": 29, "cardinality": 8, "base_width": 64}
    assert resnext.train["milestones"] == [150, 225] and resnext.budget.epochs == 300


def test_unknown_recipe_scale_or_part_is_a_clear_error():
    with pytest.raises(SpecError, match="unknown recipe 'nope'; choose one of"):
        load_recipe("nope")
    with pytest.raises(SpecError, match="has parts"):
        load_recipe("lrd_table1").specs("quick", parts=["cifar10"])
    with pytest.raises(SpecError, match="circular"):
        Recipe._resolve({"a": {"extends": "b"}, "b": {"extends": "a"}}, "a")


@pytest.fixture
def workdir(tmp_path, monkeypatch, data_root):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REGSTUDY_DATA_DIR", str(data_root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns.db'}")
    return tmp_path


def reduced(name: str) -> dict:
    if name in SCRIPT_OPTIONS:
        return {f"options.{k}": v for k, v in SCRIPT_OPTIONS[name].items()}
    return {
        "budget.epochs": 1,
        "budget.repeats": 2,
        "train.train_subset": 256,
        "train.eval_subset": 500,
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_reduced_recipe_runs_end_to_end_and_reports(workdir, name):
    written = reproduce(name, "quick", reduced(name), out_dir=workdir / "reports" / name)
    names = {p.name for p in written}
    assert {"README.md", "claims.json"} <= names
    assert any(n.endswith(".csv") for n in names) and any(n.endswith(".png") for n in names)
    readme = (workdir / "reports" / name / "README.md").read_text()
    assert readme.startswith("# ") and "study reproduce" in readme
    assert "\n- Cost: " in readme and "CPU-hours in all; ran on: " in readme  # every training timed
    claims = json.loads((workdir / "reports" / name / "claims.json").read_text())
    assert all(c["verdict"].removeprefix("pilot ") in VERDICTS for c in claims)
    assert all(c["verdict"].startswith("pilot ") for c in claims)
    contract = {"verdict", "kind", "n", "ci_low", "ci_high", "p", "p_adjusted", "margin", "mde"}
    assert all(contract | {"seeds_needed", "scale"} <= set(c) for c in claims)
    client = MlflowClient(f"sqlite:///{workdir / 'mlruns.db'}")
    experiment = client.get_experiment_by_name(f"{name}-quick")
    (parent,) = client.search_runs([experiment.experiment_id], f"tags.`{KIND_TAG}` = 'recipe'")
    assert parent.info.status == "FINISHED"
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert "report/README.md" in logged


def test_report_rerenders_the_same_tables_from_mlflow_alone(workdir):
    first = workdir / "first"
    reproduce("lrd_dg", "quick", reduced("lrd_dg"), out_dir=first)
    second = workdir / "second"
    report("lrd_dg", "quick", out_dir=second)
    for table in ("results", "vs_paper", "paired"):
        pd.testing.assert_frame_equal(
            pd.read_csv(first / f"{table}.csv"), pd.read_csv(second / f"{table}.csv")
        )
    assert Path(second / "README.md").read_text() == Path(first / "README.md").read_text()
    with pytest.raises(SpecError, match="changed since its sweep ran; rerun it with --fresh"):
        reproduce("lrd_dg", "quick", {**reduced("lrd_dg"), "budget.epochs": 2}, out_dir=first)
    with pytest.raises(SpecError, match="is a sweep: it has no options"):
        reproduce("lrd_dg", "quick", {"options.seeds": 2}, out_dir=first)


def test_a_report_names_its_store_as_the_user_gave_it(workdir, monkeypatch):
    """Committed reports must not carry the absolute paths of the machine that rendered them."""
    reproduce("lrd_dg", "quick", reduced("lrd_dg"), out_dir=workdir / "first")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    report("lrd_dg", "quick", out_dir=workdir / "default")
    readme = (workdir / "default" / "README.md").read_text()
    assert "MLflow experiment `lrd_dg-quick` at `sqlite:///mlruns.db`" in readme
    assert str(workdir) not in readme
