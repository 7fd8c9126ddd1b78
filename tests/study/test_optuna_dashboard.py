"""optuna-dashboard serves a sweep's Optuna study on 127.0.0.1, and what it serves is what
``optuna.load_study`` reads and what MLflow holds: an Optuna-space sweep (its search's own study)
and a grid sweep (recorded from its trial runs), both real sweeps into one store."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from analysis.schema import CONFIG_TAG, SEED_TAG
from study.cli import main
from tests.support import locations, runs, write_spec

pytestmark = pytest.mark.usefixtures("ray_session")

DASHBOARD = Path(sys.executable).with_name("optuna-dashboard")
REPEATS = 2  # seeds per config of the Optuna-space sweep
SAMPLES = 2  # configs TPE samples


@pytest.fixture(scope="module")
def store(ray_session, tmp_path_factory) -> Path:
    """One MLflow store with two finished sweeps, their studies in ``optuna.db`` beside it:
    ``tpe`` (TPE over da_p, 2 configs x 2 seeds) and ``grid`` (activation x lr, one lr
    diverging, seed 0); 1 epoch each."""
    directory = tmp_path_factory.mktemp("dashboard")
    tpe = write_spec(
        directory,
        name="tpe",
        space="drop_activation",
        budget={"epochs": 1, "repeats": REPEATS, "num_samples": SAMPLES},
    )
    grid = write_spec(
        directory,
        name="grid",
        grid={"activation": ["relu", "drop_activation"], "lr": [0.05, 1.0e12]},
        budget={"epochs": 1, "repeats": 1},
    )
    for spec in (tpe, grid):
        assert main(["sweep", str(spec), *locations(directory), "--no-best"]) == 0
    return directory


def storage_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'optuna.db'}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an HTTP proxy


def get_json(url: str) -> Any:
    with LOCAL.open(url, timeout=10) as reply:
        return json.load(reply)


@pytest.fixture(scope="module")
def dashboard(store, request) -> tuple[subprocess.Popen, str]:
    """``optuna-dashboard URL --host 127.0.0.1 --port P`` on the sweeps' storage, answering;
    returns the process and its base URL. Terminated with the module."""
    port = free_port()
    command = [str(DASHBOARD), storage_url(store), "--host", "127.0.0.1", "--port", str(port)]
    log = (store / "dashboard.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()

    request.addfinalizer(stop)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"optuna-dashboard exited {process.returncode}: {_log(store)}")
        try:
            get_json(f"{base}/api/meta")
            return process, base
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"optuna-dashboard did not answer on {base} in 60 s: {_log(store)}")
            time.sleep(0.3)


def _log(directory: Path) -> str:
    return (directory / "dashboard.log").read_text(errors="replace")[-2000:]


def served_study(base: str, name: str) -> dict[str, Any]:
    """The dashboard's detail of study ``name``, found in its list of studies."""
    listed = get_json(f"{base}/api/studies")["study_summaries"]
    named = [s for s in listed if s["study_name"] == name]
    assert len(named) == 1, [s["study_name"] for s in listed]
    return get_json(f"{base}/api/studies/{named[0]['study_id']}")


def served(trial: dict[str, Any]) -> dict[str, Any]:
    """A trial as the dashboard's JSON has it."""
    return {
        "number": trial["number"],
        "state": trial["state"],
        "params": {
            p["name"]: (p["param_external_value"], p["param_internal_value"])
            for p in trial["params"]
        },
        "values": trial.get("values"),
        "user_attrs": {a["key"]: a["value"] for a in trial["user_attrs"]},
    }


def loaded(trial: FrozenTrial) -> dict[str, Any]:
    """A trial as ``optuna.load_study`` reads it, in the dashboard's terms."""
    return {
        "number": trial.number,
        "state": trial.state.name.capitalize(),
        "params": {
            name: (str(value), trial.distributions[name].to_internal_repr(value))
            for name, value in trial.params.items()
        },
        "values": trial.values,
        "user_attrs": {
            k: v if isinstance(v, str) else json.dumps(v) for k, v in trial.user_attrs.items()
        },
    }


def same_param(value: Any, text: str) -> bool:
    """An Optuna param's value against the MLflow param (a string) of the same knob."""
    if isinstance(value, float):
        return float(text) == value
    return str(value) == text


def assert_dashboard_serves_the_loaded_study(base: str, study: optuna.Study) -> None:
    detail = served_study(base, study.study_name)
    assert detail["name"] == study.study_name
    assert detail["directions"] == ["minimize"]
    assert [served(t) for t in detail["trials"]] == [loaded(t) for t in study.trials]


def test_the_dashboard_answers_on_loopback_and_listens_nowhere_else(dashboard):
    process, base = dashboard
    port = int(base.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    listening = listening_addresses(process.pid)
    assert listening == {("127.0.0.1", port)}


def test_both_sweeps_studies_are_listed_by_their_sweeps_names(dashboard, store):
    _, base = dashboard
    listed = {s["study_name"] for s in get_json(f"{base}/api/studies")["study_summaries"]}
    assert listed == {"tpe", "grid"}
    assert set(optuna.study.get_all_study_names(storage_url(store))) == listed


def test_an_optuna_sweeps_study_is_served_as_mlflow_holds_it(dashboard, store):
    _, base = dashboard
    study = optuna.load_study(study_name="tpe", storage=storage_url(store))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * SAMPLES
    assert_dashboard_serves_the_loaded_study(base, study)
    # One Optuna trial per sampled config: its params are the config's, its value the mean of
    # the config's seeds' val_error in MLflow; every trial run is one seed of one of them.
    _, trial_runs = runs(store, "tpe", "trial")
    assert len(trial_runs) == SAMPLES * REPEATS
    assert all(r.info.status == "FINISHED" for r in trial_runs)
    claimed = []
    for trial in study.trials:
        assert set(trial.params) == {"da_p"}
        seeds = [r for r in trial_runs if same_param(trial.params["da_p"], r.data.params["da_p"])]
        assert sorted(r.data.tags[SEED_TAG] for r in seeds) == [str(s) for s in range(REPEATS)]
        assert all(r.data.params["activation"] == "drop_activation" for r in seeds)
        mean = sum(r.data.metrics["val_error"] for r in seeds) / len(seeds)
        assert trial.value == mean
        claimed += [r.info.run_id for r in seeds]
    assert sorted(claimed) == sorted(r.info.run_id for r in trial_runs)


def test_a_grid_sweeps_study_is_served_as_mlflow_holds_it(dashboard, store):
    _, base = dashboard
    study = optuna.load_study(study_name="grid", storage=storage_url(store))
    assert_dashboard_serves_the_loaded_study(base, study)
    # One Optuna trial per trial run: the run's knobs and seed as params, its val_error as value;
    # a diverged run (lr=1e12) is a FAIL trial without a value.
    _, trial_runs = runs(store, "grid", "trial")
    by_id = {r.info.run_id: r for r in trial_runs}
    assert len(study.trials) == len(trial_runs) == 4
    assert sorted(t.user_attrs["mlflow_run_id"] for t in study.trials) == sorted(by_id)
    for trial in study.trials:
        run = by_id[trial.user_attrs["mlflow_run_id"]]
        params = run.data.params
        differ = {
            k: (v, params.get(k))
            for k, v in trial.params.items()
            if k not in params or not same_param(v, params[k])
        }
        assert not differ
        assert str(trial.params["seed"]) == run.data.tags[SEED_TAG] == "0"
        assert trial.user_attrs["config_id"] == run.data.tags[CONFIG_TAG]
        knobs = set(params) - {"data_dir", "device", "num_threads"}
        assert set(trial.params) == knobs  # every knob the run has, no other
        if params["lr"] == "0.05":
            assert run.info.status == "FINISHED" and trial.state == TrialState.COMPLETE
            assert trial.value == run.data.metrics["val_error"]
        else:
            assert run.info.status == "FAILED" and trial.state == TrialState.FAIL
            assert trial.value is None
    relu = [t for t in study.trials if t.params["activation"] == "relu"]
    assert len(relu) == 2 and all("da_p" not in t.params for t in relu)


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """The (address, port) pairs process ``pid`` listens on over TCP, from ``/proc``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        lines = path.read_text().splitlines()[1:] if path.exists() else []  # no tcp6: no IPv6
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                found.add(_address(local))
    return found


def _address(local: str) -> tuple[str, int]:
    """``0100007F:1F90`` -> ("127.0.0.1", 8080); IPv6 as its hex words."""
    host, port = local.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        address = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # /proc writes IPv6 as four little-endian 32-bit words
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
        address = socket.inet_ntop(socket.AF_INET6, words)
    return address, int(port, 16)
