"""``study importance``: fANOVA and PED-ANOVA over a sweep's MLflow trial runs (no Ray), the
seed ranked as a param of its own; the table printed, written and logged to the sweep's run."""

from __future__ import annotations

import csv

import optuna
import pytest
from mlflow.tracking import MlflowClient

from study.cli import main
from study.importance import importance
from tests.study.test_optuna_store import BASE, PLACE, add_trial, make_sweep, storage


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """A sweep where da_p drives val_error, the seed shifts it a little, batch_size does nothing;
    returns (directory, tracking URI, parent run)."""
    directory = tmp_path_factory.mktemp("importance")
    uri, sweep_id = make_sweep(directory, name="pgrid")
    return directory, uri, sweep_id


def test_the_driving_knob_ranks_above_seed_noise_and_a_dead_knob_ranks_last(sweep, tmp_path):
    _, uri, sweep_id = sweep
    result = importance(uri, "pgrid", "val_error", "min", storage(tmp_path), tmp_path)
    table = result.table.set_index("param")
    assert list(table.index) == ["da_p", "seed", "batch_size"]
    assert table.loc["da_p", "fanova"] > 0.8
    assert table.loc["batch_size", "fanova"] < 0.02
    assert table.loc["da_p", "ped_anova"] > table.loc["batch_size", "ped_anova"]
    assert table["fanova"].sum() == pytest.approx(1.0)
    assert (result.completed, result.failed, result.sweep_run_id) == (30, 0, sweep_id)


def test_the_cli_prints_the_table_writes_both_files_and_logs_them(sweep, tmp_path, capsys):
    _, uri, sweep_id = sweep
    url = storage(tmp_path)
    argv = ["importance", "pgrid", "--tracking-uri", uri, "--optuna-storage", url]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "importance of val_error (min) in sweep pgrid: 30 completed trials, 0 failed"
    assert lines[1].split() == ["param", "fANOVA", "PED-ANOVA"]
    assert [line.split()[0] for line in lines[2:5]] == ["da_p", "seed", "batch_size"]
    assert lines[5] == f"Optuna study 'pgrid' in {url}"
    with open(tmp_path / "out" / "importance.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["param"] for r in rows] == ["da_p", "seed", "batch_size"]
    assert set(rows[0]) == {"param", "fanova", "ped_anova"}
    assert (tmp_path / "out" / "importance.png").read_bytes()[:4] == b"\x89PNG"
    logged = MlflowClient(uri).list_artifacts(sweep_id, "importance")
    assert {a.path for a in logged} == {"importance/importance.csv", "importance/importance.png"}
    assert len(optuna.load_study(study_name="pgrid", storage=url).trials) == 30


def test_the_study_lands_beside_the_store_and_reports_default_under_reports(
    tmp_path, monkeypatch, capsys
):
    uri, _ = make_sweep(tmp_path, name="small", da_ps=(0.6, 1.0), batch_sizes=(64,), seeds=(0, 1))
    monkeypatch.chdir(tmp_path)
    assert main(["importance", "small", "--tracking-uri", uri]) == 0
    assert "Optuna study 'small' in sqlite:///" in capsys.readouterr().out
    assert (tmp_path / "reports" / "importance" / "small" / "importance.csv").is_file()
    assert len(optuna.load_study(study_name="small", storage=storage(tmp_path)).trials) == 4


def _refused(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()  # what building the store printed
    code = main(argv)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return code, err


def test_an_unknown_experiment_is_one_line_and_exit_1(sweep, tmp_path, capsys):
    _, uri, _ = sweep
    argv = ["importance", "nope", "--tracking-uri", uri, "--out", str(tmp_path)]
    code, err = _refused(argv, capsys)
    assert code == 1 and err.startswith("error: no MLflow experiment 'nope' at ")


def test_a_sweep_without_completed_trials_is_refused(tmp_path, capsys):
    uri, sweep_id = make_sweep(tmp_path, name="broken", da_ps=(), seeds=())
    client = MlflowClient(uri)
    for seed in (0, 1):
        record = {**BASE, **PLACE, "da_p": 0.8, "batch_size": 64, "seed": seed}
        add_trial(client, sweep_id, record, {}, failure="loss is nan")
    argv = ["importance", "broken", "--tracking-uri", uri, "--out", str(tmp_path)]
    code, err = _refused(argv, capsys)
    assert code == 1
    assert err == (
        "error: sweep 'broken' of experiment 'broken': no completed trial with a finite "
        "val_error (2 ended, 2 failed); nothing to rank\n"
    )


def test_a_sweep_with_one_varying_param_is_refused(tmp_path, capsys):
    uri, _ = make_sweep(tmp_path, name="one", da_ps=(0.6, 0.8, 1.0), batch_sizes=(64,), seeds=(0,))
    argv = ["importance", "one", "--tracking-uri", uri, "--out", str(tmp_path)]
    code, err = _refused(argv, capsys)
    assert code == 1
    assert err.startswith("error: sweep 'one' of experiment 'one': ['da_p'] varies over its 3 ")
    assert "needs two or more" in err


def test_bad_flags_are_usage_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = _refused(["importance", "x", "--metric", "accuracy"], capsys)
    assert code == 2 and "invalid choice: 'accuracy'" in err
    code, err = _refused(["importance", "x", "--optuna-storage", "o.db"], capsys)
    assert code == 2 and err.startswith("error: optuna_storage: 'o.db' is not allowed")


def test_a_knob_only_some_trials_have_is_listed_not_ranked(tmp_path, capsys):
    uri, sweep_id = make_sweep(tmp_path, name="arms", da_ps=(0.6, 1.0), batch_sizes=(64,))
    client = MlflowClient(uri)
    relu = {**BASE, **PLACE, "activation": "relu", "batch_size": 64}
    for seed in (0, 1, 2):
        add_trial(client, sweep_id, {**relu, "seed": seed}, {"val_error": 0.5 + seed / 100})
    argv = ["importance", "arms", "--tracking-uri", uri, "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out[2:4]] == ["activation", "seed"]
    assert out[4] == "not ranked (set in only some trials): da_p"
