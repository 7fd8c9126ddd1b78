"""Every bad input is refused early, in one line: the field, the value, what is allowed.

Each row runs ``study.cli.main`` with real argv in an empty working directory and checks the
whole contract of a refusal: exit 2 for a bad spec or argument, 1 for a read of something that
is not there (an MLflow database, an experiment, a folder); stderr exactly one line, no
traceback; Ray not started; nothing created or changed in the working directory (no MLflow
database or run, no Ray results); well under 15 s. Imports are paid once per process (the
``warm`` fixture), not per refusal; ``test_a_refusal_from_the_console_is_one_line`` runs whole
commands in fresh processes.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import ray
import torch
import yaml
from mlflow.tracking import MlflowClient

from study.cli import main

GOOD = {
    "name": "unit",
    "space": "drop_activation_grid",
    "train": {"dataset": "digits", "model": "pgrid_cnn", "batch_size": 64},
    "budget": {"epochs": 2, "repeats": 2},
}
UNDIRECTED = """
title: a claim without a direction
paper: none
artifact: test
defaults:
  space: none
  metric: test_error
  grid: {activation: [relu, drop_activation]}
  train: {dataset: digits, model: fcnet, norm: none, val_fraction: 0.0}
scales:
  quick: {parts: {only: {budget: {epochs: 1}}}}
  paper: {parts: {only: {budget: {epochs: 1}}}}
report:
  kind: comparison
  arms: {relu: relu, DA: drop_activation}
  claims:
    - {method: DA, baseline: relu}
"""
NO_GPU = pytest.mark.skipif(torch.cuda.device_count() > 0, reason="this machine has GPUs")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


class Case(NamedTuple):
    argv: list[str]
    code: int
    says: tuple[str, ...]  # each in the one line: the field, the value, what is allowed
    setup: str = ""  # "store": an MLflow database in the working directory; "recipes": ours


def case(id_: str, argv: str, code: int, *says: str, setup: str = "", marks=()):
    return pytest.param(Case(argv.split(), code, says, setup), id=id_, marks=marks)


SWEEP = "sweep spec.yaml"
CASES = [
    # unknown names: every registry lists its members
    case("model", f"{SWEEP} --model resnet9000", 2, "model='resnet9000'", "choose one of", "'mlp'"),
    case("dataset", f"{SWEEP} --dataset imagenet", 2, "dataset='imagenet'", "'cifar10'"),
    case("activation", f"{SWEEP} --set train.activation=swish", 2, "activation='swish'", "'relu'"),
    case("norm", f"{SWEEP} --set train.norm=batch", 2, "norm='batch'", "['bn', 'gn'"),
    case("optimizer", f"{SWEEP} --set train.optimizer=lion", 2, "optimizer='lion'", "'adam'"),
    case("schedule", f"{SWEEP} --set train.schedule=linear", 2, "schedule='linear'", "'cosine'"),
    case("space", f"{SWEEP} --space dropout", 2, "space: unknown search space 'dropout'", "'vcl'"),
    case(
        "metric",
        f"{SWEEP} --metric accuracy",
        2,
        "metric: unknown metric 'accuracy'",
        "'val_error'",
    ),
    case(
        "scheduler",
        f"{SWEEP} --scheduler hyperband",
        2,
        "scheduler.kind",
        "'fifo' or 'asha'",
        "'hyperband'",
    ),
    # the methods' knobs out of range: the message derives from the record's one constraint
    case(
        "da_p",
        f"{SWEEP} --set train.activation=drop_activation --set train.da_p=1.5",
        2,
        "train: da_p=1.5 is not allowed: must be a number in (0, 1]",
    ),
    case("lrd_p", f"{SWEEP} --set train.lrd_p=0", 2, "lrd_p=0.0 is not allowed", "(0, 1]"),
    case(
        "vcl_n-below-2",
        f"{SWEEP} --set train.norm=vcl --set train.vcl_n=1",
        2,
        "vcl_n=1 is not allowed: must be an integer in [2, batch_size / 2 = 32]",
    ),
    case(
        "vcl_n-vs-batch",
        f"{SWEEP} --set train.norm=vcl --set train.vcl_n=40",
        2,
        "vcl_n=40 is not allowed",
        "batch_size / 2 = 32",
    ),
    case(
        "vcl-space-vs-batch",
        f"{SWEEP} --space vcl --set train.batch_size=16",
        2,
        "search space 'vcl' reaches an illegal config",
        "batch_size / 2 = 8",
    ),
    case(
        "vcl_gamma",
        f"{SWEEP} --set train.norm=vcl --set train.vcl_gamma=-1",
        2,
        "vcl_gamma=-1.0 is not allowed: must be a number >= 0",
    ),
    case(
        "clip_per_layer",
        f"{SWEEP} --set train.clip_per_layer=0",
        2,
        "clip_per_layer=0 is not allowed: must be a number > 0, or null",
    ),
    case(
        "label_noise",
        f"{SWEEP} --set train.label_noise=1",
        2,
        "label_noise=1.0 is not allowed: must be a number in [0, 1)",
    ),
    # wrong types: named before any rule reads them
    case(
        "batch_size-type",
        f"{SWEEP} --set train.batch_size=big",
        2,
        "train: batch_size='big' is not allowed: must be an integer >= 1",
    ),
    case(
        "epochs-type",
        f"{SWEEP} --set budget.epochs=ten",
        2,
        "budget.epochs: Input should be a valid integer",
        "(got 'ten')",
    ),
    case(
        "epochs-flag-type",
        f"{SWEEP} --epochs ten",
        2,
        "argument --epochs: invalid int value: 'ten'",
        "study sweep --help",
    ),
    case(
        "train-not-a-mapping",
        f"{SWEEP} --set train=5",
        2,
        "train: Input should be a valid dictionary",
        "(got 5)",
    ),
    case(
        "lrd_p-type",
        f"{SWEEP} --set train.lrd_p=big",
        2,
        "lrd_p='big' is not allowed",
    ),
    case(
        "label_noise-type",
        f"{SWEEP} --set train.label_noise=big",
        2,
        "label_noise='big' is not allowed",
    ),
    # zero or negative sizes
    case(
        "epochs-zero",
        f"{SWEEP} --epochs 0",
        2,
        "budget.epochs",
        "greater than or equal to 1",
        "(got 0)",
    ),
    case(
        "repeats-negative",
        f"{SWEEP} --repeats -1",
        2,
        "budget.repeats",
        "greater than or equal to 1",
        "(got -1)",
    ),
    case(
        "batch_size-zero",
        f"{SWEEP} --set train.batch_size=0",
        2,
        "train: batch_size=0 is not allowed: must be an integer >= 1",
    ),
    # resources and schedule
    case(
        "gpu-fraction-above-1",
        f"{SWEEP} --gpus-per-trial 1.5",
        2,
        "resources.gpus_per_trial: 1.5 is not allowed",
        "above 1 use whole GPUs",
    ),
    case(
        "gpus-without-gpus",
        f"{SWEEP} --gpus-per-trial 0.25",
        2,
        "resources.gpus_per_trial=0.25 but this machine has no GPUs",
        "gpus_per_trial: 0",
        marks=NO_GPU,
    ),
    case(
        "cuda-without-cuda",
        f"{SWEEP} --set train.device=cuda",
        2,
        "train.device='cuda' is not allowed: this machine has no CUDA device",
        "'auto' or 'cpu'",
        marks=NO_CUDA,
    ),
    case(
        "grace-period-over-epochs",
        f"{SWEEP} --scheduler asha --grace-period 5",
        2,
        "scheduler.grace_period=5 is not allowed: must be at most budget.epochs = 2",
    ),
    case(
        "val-metric-without-val-split",
        f"{SWEEP} --set train.val_fraction=0",
        2,
        "metric='val_error' is not allowed with train.val_fraction=0",
        "test_ or train_ metric",
    ),
    # the spec's form: files, --set, fields
    case("spec-missing", "sweep nowhere.yaml", 2, "cannot read spec nowhere.yaml"),
    case(
        "spec-malformed",
        "sweep malformed.yaml",
        2,
        "malformed.yaml: not valid YAML at line 3, column 1",
        "expected ',' or '}'",
        "flow mapping at line 2, column 8",
    ),
    case(
        "spec-not-a-mapping",
        "sweep list.yaml",
        2,
        "list.yaml: a spec is a YAML mapping",
        "got a list",
    ),
    case(
        "set-malformed",
        f"{SWEEP} --set train.milestones=[100,",
        2,
        "--set train.milestones=[100,: not valid YAML at line 1, column 23",
    ),
    case(
        "set-without-equals", f"{SWEEP} --set train.lr", 2, "--set train.lr: expected FIELD=VALUE"
    ),
    case(
        "unknown-spec-field",
        f"{SWEEP} --set optimizer=adam",
        2,
        "optimizer: unknown field (got 'adam'); the fields of the spec are [",
        "'train'",
    ),
    case(
        "unknown-section-field",
        f"{SWEEP} --set budget.seeds=3",
        2,
        "budget.seeds: unknown field (got 3); the fields of budget are [",
        "'repeats'",
    ),
    case(
        "unknown-train-key",
        f"{SWEEP} --set train.learning_rate=0.1",
        2,
        "train: unknown config keys ['learning_rate']; known keys are [",
        "'lr'",
    ),
    # endpoints and storage: refused by preflight in seconds, before Ray or MLflow start
    case(
        "tracking-unreachable",
        f"{SWEEP} --tracking-uri http://127.0.0.1:1",
        2,
        "tracking store: http://127.0.0.1:1 does not answer within",
        "study server",
    ),
    case(
        "reproduce-tracking-unreachable",
        "reproduce da_pgrid --tracking-uri http://127.0.0.1:1",
        2,
        "tracking store: http://127.0.0.1:1 does not answer within",
    ),
    case(
        "address-unreachable",
        f"{SWEEP} --address 127.0.0.1:1",
        2,
        "ray: 127.0.0.1:1 does not answer within",
    ),
    case(
        "storage-unwritable",
        f"{SWEEP} --storage-path /proc/1/regstudy",
        2,
        "storage: cannot write under /proc/1/regstudy",
        "--storage-path",
    ),
    # recipes
    case("recipe", "reproduce nope", 2, "unknown recipe 'nope'; choose one of [", "'da_pgrid'"),
    case(
        "recipe-scale",
        "reproduce da_pgrid --scale huge",
        2,
        "recipe 'da_pgrid' has scales ['quick', 'paper'], not 'huge'",
    ),
    case(
        "recipe-part",
        "reproduce lrd_table1 --part cifar10",
        2,
        "recipe 'lrd_table1' at quick has parts ['mnist'], not ['cifar10']",
    ),
    case(
        "recipe-fresh-script",
        "reproduce da_fig2 --fresh",
        2,
        "--fresh: recipe 'da_fig2' is a script",
        "remove that folder",
    ),
    case(
        "recipe-override",
        "reproduce da_pgrid --set train.da_p=2",
        2,
        "recipe 'da_pgrid', quick part 'mnist': train: da_p=2.0 is not allowed",
    ),
    case(
        "recipe-claim-without-direction",
        "reproduce undirected",
        2,
        "recipe 'undirected'",
        "report.claims[0] (DA vs relu): expect is required",
        "`expect: better`, `worse` or `equivalent`",
        setup="recipes",
    ),
    case(
        "report-scale",
        "report da_pgrid --scale huge",
        2,
        "has scales ['quick', 'paper'], not 'huge'",
    ),
    # read-only commands: what they read is not there (exit 1), and they create nothing
    case(
        "best-unknown-experiment",
        "best --experiment nope",
        1,
        "no MLflow experiment 'nope'",
        "experiments there: ['Default', 'pgrid-digits']",
        setup="store",
    ),
    case(
        "best-missing-database",
        "best --experiment pgrid-digits --tracking-uri sqlite:///nowhere.db",
        1,
        "tracking URI sqlite:///",
        "no MLflow database at",
        "nowhere.db",
    ),
    case("report-missing-database", "report da_pgrid", 1, "no MLflow database at", "mlruns.db"),
    case(
        "best-server-unreachable",
        "best --experiment pgrid-digits --tracking-uri http://127.0.0.1:1",
        1,
        "tracking URI http://127.0.0.1:1 does not answer within 5 s",
        "study server",
    ),
    case(
        "report-server-unreachable",
        "report da_pgrid --tracking-uri http://127.0.0.1:1",
        1,
        "tracking URI http://127.0.0.1:1 does not answer within 5 s",
    ),
    case(
        "power-unknown-experiment",
        "power da_pgrid",
        1,
        "no MLflow experiment 'da_pgrid-quick'",
        setup="store",
    ),
    case(
        "summary-missing-folder",
        "summary --reports nowhere",
        1,
        "--reports nowhere: no such folder",
    ),
]


@pytest.fixture(scope="module")
def warm():
    """Import what the commands import, once: a refusal's time is then its own."""
    for module in ("trainables.config", "analysis.query", "study.best", "study.cluster"):
        importlib.import_module(module)
    importlib.import_module("study.reproduce")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """An MLflow SQLite database holding one experiment and no runs."""
    path = tmp_path_factory.mktemp("store") / "mlruns.db"
    MlflowClient(f"sqlite:///{path}").create_experiment("pgrid-digits")
    return path


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("RAY_worker_niceness", "0")
    (work / "spec.yaml").write_text(yaml.safe_dump(GOOD))
    (work / "malformed.yaml").write_text("name: x\ntrain: {dataset: digits\n")
    (work / "list.yaml").write_text("- name: x\n- space: none\n")
    return work


def snapshot(directory: Path) -> dict[str, str]:
    """Every file and folder under ``directory``, with a hash of each file's bytes."""
    return {
        str(path.relative_to(directory)): (
            hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        )
        for path in sorted(directory.rglob("*"))
    }


@pytest.mark.parametrize("bad", CASES)
def test_a_bad_input_is_refused_in_one_line_before_anything_starts(
    bad, warm, workdir, store, tmp_path, monkeypatch, capfd
):
    if bad.setup == "store":
        shutil.copy(store, workdir / "mlruns.db")
    if bad.setup == "recipes":
        recipes = tmp_path / "recipes"
        recipes.mkdir()
        (recipes / "undirected.yaml").write_text(UNDIRECTED)
        monkeypatch.setenv("REGSTUDY_RECIPES", str(recipes))
    before = snapshot(workdir)
    capfd.readouterr()

    start = time.perf_counter()
    code = main(bad.argv)
    elapsed = time.perf_counter() - start

    err = capfd.readouterr().err
    assert code == bad.code, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for words in bad.says:
        assert words in lines[0], lines[0]
    assert not ray.is_initialized()
    assert snapshot(workdir) == before  # no database, no run, no Ray results, nothing
    assert elapsed < 15, f"{elapsed:.1f} s"


def test_the_table_covers_thirty_inputs():
    assert len(CASES) >= 30


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["sweep", "malformed.yaml"], "malformed.yaml: not valid YAML at line 3, column 1"),
        (["sweep", "spec.yaml", "--set", "train.batch_size=big"], "batch_size='big'"),
    ],
    ids=["yaml", "type"],
)
def test_a_refusal_from_the_console_is_one_line(workdir, argv, says):
    """A fresh process: no import-time warning or log line joins the refusal on stderr."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    before = snapshot(workdir)
    done = subprocess.run(
        [sys.executable, "-m", "study", *argv],
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(Path(__file__).parents[2])},
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [done.stderr.strip()] and says in done.stderr
    assert done.stdout == "" and snapshot(workdir) == before
