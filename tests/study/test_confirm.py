"""``study confirm``: more seeds for the best configs of a finished search, as new trials of the
same MLflow experiment and inside the same Ray experiment, until the verdict rules decide their
order; a confirm killed with SIGKILL continues when run again, every trial and epoch once.

Real Ray, real MLflow: a 3-config search (one learning rate that cannot learn in 2 epochs, so
one pair is decided at once) on the offline digits.
"""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from analysis.query import trial_runs
from analysis.schema import CONFIRMS_TAG, KIND_TAG, PARENT_TAG, SEED_TAG
from study.cli import main
from study.confirm import CONFIRM_TAG
from tests.support import TRAIN, locations, runs, store_count, write_spec

EPOCHS = 2
LRS = [0.1, 0.05, 1e-6]
CONFIRM_EPOCH = (
    "select count(*) from metrics m join tags t on m.run_uuid = t.run_uuid "
    f"where m.key = 'epoch' and t.key = '{KIND_TAG}' and t.value = 'trial' "
    "and m.run_uuid in (select run_uuid from tags where key = 'mlflow.runName' "
    "and value like '%seed=4%')"
)


def _uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlruns.db'}"


def _confirm(directory: Path, *flags: str) -> list[str]:
    return [
        "confirm",
        "search",
        *flags,
        "--storage-path",
        str(directory / "ray_results"),
        "--quiet",
    ]


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("confirm")
    spec = write_spec(
        directory,
        name="search",
        grid={"lr": LRS},
        budget={"epochs": EPOCHS, "repeats": 2},
        train={**TRAIN, "train_subset": 600},
    )
    assert main(["sweep", str(spec), *locations(directory), "--no-best"]) == 0
    return directory


def _seeds_by_lr(directory: Path) -> dict[str, list[int]]:
    _, trials = runs(directory, "search", "trial")
    seeds: dict[str, list[int]] = {}
    for run in trials:
        lr = run.data.params.get("lr", "no params yet")  # a run a kill cut short of its params
        seeds.setdefault(lr, []).append(int(run.data.tags[SEED_TAG]))
    return {lr: sorted(s) for lr, s in seeds.items()}


def _check_once(directory: Path) -> None:
    """Every (config, seed) one run, FINISHED, each epoch logged once."""
    client, trials = runs(directory, "search", "trial")
    pairs = Counter((r.data.params["lr"], r.data.tags[SEED_TAG]) for r in trials)
    assert max(pairs.values()) == 1, pairs
    for run in trials:
        assert run.info.status == "FINISHED", run.data.tags
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_error")]
        assert sorted(steps) == list(range(1, EPOCHS + 1))


def test_confirm_adds_seeds_to_the_top_as_trials_of_the_same_sweep(searched, capsys):
    before = _seeds_by_lr(searched)
    assert main(_confirm(searched, "--top", "2", "--seeds", "3")) == 0
    out = capsys.readouterr().out
    after = _seeds_by_lr(searched)
    top = [lr for lr in after if after[lr] == [0, 1, 2]]
    assert len(top) == 2 and "1e-06" not in top, after
    assert after["1e-06"] == before["1e-06"] == [0, 1]
    _check_once(searched)

    client, sweeps = runs(searched, "search", "sweep")
    _, rounds = runs(searched, "search", "confirm")
    (sweep,) = sweeps
    (first,) = rounds
    assert first.data.tags[CONFIRMS_TAG] == sweep.info.run_id
    assert first.data.tags[PARENT_TAG] == sweep.info.run_id
    assert first.info.status == "FINISHED"
    assert (searched / "ray_results" / "search" / "confirm-1").is_dir()
    pooled = trial_runs(_uri(searched), "search", sweep.info.run_id).to_pandas()
    assert len(pooled) == 8  # the search's 6 and the round's 2, read as one sweep's
    assert "confirm search: top 2 of 3 configs" in out
    sweep = client.get_run(sweep.info.run_id)
    assert sweep.data.tags[CONFIRM_TAG].split(";")[0] in ("decided", "undecided (2 configs)")
    artifacts = [a.path for a in client.list_artifacts(sweep.info.run_id, "confirm")]
    assert artifacts == ["confirm/ranking.csv"]

    assert main(_confirm(searched, "--top", "2", "--seeds", "3")) == 0  # met: runs nothing
    assert _seeds_by_lr(searched) == after
    assert len(runs(searched, "search", "confirm")[1]) == 1


def test_until_decided_adds_seeds_to_undecided_pairs_only_up_to_max(searched, capsys):
    flags = ["--top", "3", "--seeds", "3", "--until-decided", "--max-seeds", "4"]
    assert main(_confirm(searched, *flags)) == 0
    out = capsys.readouterr().out
    seeds = _seeds_by_lr(searched)
    assert seeds["1e-06"][:3] == [0, 1, 2]  # brought to --seeds first, like the others
    assert all(len(s) <= 4 for s in seeds.values())
    decided = "order decided" in out
    if not decided:  # stopped at --max-seeds: the undecided pair has 4 seeds
        assert any(len(s) == 4 for s in seeds.values()), (out, seeds)
    _check_once(searched)


def test_a_confirm_killed_mid_round_continues_when_run_again(searched):
    """Killed at seed 4's first logged epoch: 2 configs up to seed 7, two trainings at a time,
    leave at least three waves to do however fast the machine."""
    command = [sys.executable, "-m", "study", *_confirm(searched, "--top", "2", "--seeds", "8")]
    env = {**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    driver = subprocess.Popen(command, env=env, start_new_session=True, cwd=searched)
    deadline = time.time() + 300
    while store_count(searched / "mlruns.db", CONFIRM_EPOCH) < 1 and time.time() < deadline:
        assert driver.poll() is None, "the confirm ended before it could be killed"
        time.sleep(0.1)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    killed = _seeds_by_lr(searched)
    assert min(len(killed.get(lr, [])) for lr in ("0.1", "0.05")) < 8 or any(
        r.info.status == "RUNNING" for r in runs(searched, "search", "trial")[1]
    )

    again = subprocess.run(command, env=env, cwd=searched, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "was interrupted: resuming it" in again.stderr  # from its checkpoints, not anew
    seeds = _seeds_by_lr(searched)
    top = [lr for lr in seeds if lr != "1e-06"]
    assert all(seeds[lr] == list(range(8)) for lr in top), seeds
    _check_once(searched)
    _, rounds = runs(searched, "search", "confirm")
    assert all(r.info.status == "FINISHED" for r in rounds)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--top", "1", "--seeds", "3"], "--top 1: an order needs at least 2 configs"),
        (["--seeds", "0"], "--seeds 0: must be at least 1"),
        (["--seeds", "3", "--max-seeds", "5"], "--max-seeds needs --until-decided"),
        (["--seeds", "3", "--until-decided"], "--until-decided needs --max-seeds M"),
        (["--seeds", "5", "--until-decided", "--max-seeds", "4"], "M >= --seeds 5"),
        (["--seeds", "3", "--margin", "-1"], "--margin -1.0: must be > 0"),
    ],
)
def test_bad_flags_are_refused_before_anything_runs(tmp_path, capsys, flags, says):
    assert main(["confirm", "nothing", *flags, "--storage-path", str(tmp_path)]) == 2
    assert says in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_an_unknown_sweep_is_refused(tmp_path, capsys):
    assert main(["confirm", "nothing", "--seeds", "3", "--storage-path", str(tmp_path)]) == 2
    assert "no sweep named 'nothing'" in capsys.readouterr().err
