"""Preflight refuses, in seconds and before Ray or MLflow start, what would fail later."""

import sqlite3
import time

import pytest

from study.preflight import (
    check_address,
    check_storage,
    check_tracking,
    checkpoint_bytes,
    checkpoint_need,
    preflight,
)
from study.spec import SpecError, build_spec


def quick(check, *args):
    start = time.monotonic()
    result = check(*args)
    assert time.monotonic() - start < 15
    return result


def test_an_unreachable_tracking_server_is_refused_within_seconds():
    result = quick(check_tracking, "http://127.0.0.1:1", 2.0)
    assert not result.ok and "does not answer within 2 s" in result.detail
    assert "study server" in result.fix


@pytest.mark.parametrize(("status", "ok"), [(200, True), (503, False), (404, False)])
def test_a_server_that_answers_health_with_an_error_is_refused_and_named(status, ok):
    """Any HTTP answer means the server is there: the read-only commands go on and let MLflow
    speak (``_answers``); a sweep's preflight refuses anything but 200, naming the status."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from analysis.query import _answers

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        check = check_tracking(uri)
        assert check.ok is ok
        assert ok or f"answers /health with HTTP {status}" in check.line()
        assert _answers(uri) is None
    finally:
        server.shutdown()


def test_a_new_sqlite_store_in_a_writable_folder_passes(tmp_path):
    assert check_tracking(f"sqlite:///{tmp_path / 'mlruns.db'}").ok
    assert not (tmp_path / "mlruns.db").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a database at all" * 100, "not readable"), (None, "no MLflow store")],
)
def test_a_file_that_is_not_an_mlflow_store_is_refused(tmp_path, content, message):
    path = tmp_path / "mlruns.db"
    if content is None:
        with sqlite3.connect(path) as db:
            db.execute("create table other (x int)")
    else:
        path.write_bytes(content)
    result = check_tracking(f"sqlite:///{path}")
    assert not result.ok and message in result.detail


def test_a_folder_nobody_can_write_is_refused_for_the_store_and_the_checkpoints():
    # /proc refuses new files even to root, unlike a chmod-ed folder.
    assert not check_tracking("sqlite:////proc/1/regstudy/mlruns.db").ok
    storage = check_storage("/proc/1/regstudy/ray_results")
    assert not storage.ok and "cannot write under" in storage.detail


def test_checkpoints_that_would_not_fit_are_refused_before_training(tmp_path):
    spec = build_spec({"name": "s"})
    needed = checkpoint_bytes(spec, trials=10**6, params=10**9)
    result = check_storage(str(tmp_path / "ray_results"), needed)
    assert not result.ok and "GiB free, the checkpoints need about" in result.detail
    assert check_storage(str(tmp_path / "ray_results"), 1024).ok


def test_an_unreachable_ray_address_is_refused_within_seconds():
    result = quick(check_address, "127.0.0.1:1", 2.0)
    assert not result.ok and "does not answer" in result.detail
    assert check_address(None).ok


def test_preflight_raises_the_first_failure_with_its_fix(tmp_path):
    spec = build_spec(
        {
            "name": "s",
            "tracking_uri": "http://127.0.0.1:1",
            "storage_path": str(tmp_path / "ray_results"),
        }
    )
    with pytest.raises(SpecError, match=r"^tracking store: http://127.0.0.1:1 does not answer"):
        preflight(spec, lambda _: None)


def test_the_checkpoint_need_counts_every_trial_of_the_grid_with_its_model(tmp_path, data_root):
    def spec_with(repeats: int):
        return build_spec(
            {
                "name": "s",
                "space": "drop_activation_grid",
                "train": {"dataset": "digits", "model": "fcnet", "data_dir": str(data_root)},
                "budget": {"epochs": 1, "repeats": repeats},
            }
        )

    one, two = checkpoint_need(spec_with(1)), checkpoint_need(spec_with(2))
    assert one > 0 and two == 2 * one


def test_a_sweep_whose_checkpoints_would_not_fit_is_refused_before_ray(tmp_path, monkeypatch):
    import ray

    from study import runner

    spec = build_spec(
        {
            "name": "s",
            "storage_path": str(tmp_path / "ray_results"),
            "tracking_uri": f"sqlite:///{tmp_path / 'mlruns.db'}",
        }
    )
    monkeypatch.setattr(runner, "checkpoint_need", lambda _: 2**62)
    monkeypatch.setattr(runner, "provision_data", lambda _: None)
    with pytest.raises(SpecError, match=r"^storage: .* the checkpoints need about"):
        runner.sweep(spec)
    assert not ray.is_initialized() and not (tmp_path / "mlruns.db").exists()
