"""How a driver ends: whatever stops a sweep, a resume or a recipe, no MLflow run it opened is
left RUNNING, and the command exits non-zero with one line.

- Ctrl-C (SIGINT) and SIGTERM mean the same. While Tune runs, the first one stops it the way
  Tune stops itself (it saves the experiment's state; the trials it stopped end KILLED and
  ``study resume`` continues them); a second one, or one at any other time, raises
  :class:`Interrupted` (a ``KeyboardInterrupt``) at once. The handlers are installed for the
  driver's duration only (:func:`driver`) and the old ones restored.
- Inside :func:`ending`, any exception ends the run (a sweep's or a recipe's) and its trial
  runs still RUNNING: KILLED for an interrupt, FAILED otherwise, with the reason in
  ``regstudy.failure``; then it is raised again.
- The outermost driver turns an interrupt, a storage error (``OSError``, or ``EOFError`` and
  ``pickle.UnpicklingError``: what a full disk leaves for Tune to read back, a file cut short) or
  a tracking error into one line on stderr and
  :class:`DriverStopped` (a ``SystemExit``: 130 for SIGINT, 143 for SIGTERM, 1 otherwise).
  Anything else is raised as it is (the CLI names its own errors in one line).
- A tracking error once a sweep's trials run (:func:`syncs_with`) names ``study sync NAME``:
  Ray's storage holds every result, and that command writes what MLflow missed.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from .runs import FAILED, KILLED, end_run, end_running_trials
from .store import unreachable

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}
_TUNE_SIGINT = "TUNE_DISABLE_SIGINT_HANDLER"  # Tune's own Ctrl-C handler: ours replaces it
_CUT_SHORT = (EOFError, pickle.UnpicklingError)  # Tune read back a file it could not write whole
_KNOWN = (OSError, *_CUT_SHORT, MlflowException)


class Interrupted(KeyboardInterrupt):
    """The driver was asked to stop: ``signal_name`` (SIGINT, SIGTERM) says how."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class DriverStopped(SystemExit):
    """The driver stopped after ending its runs; its one line is on stderr."""

    def __init__(self, code: int, line: str) -> None:
        super().__init__(code)
        self.line = line


@dataclass
class _Driver:
    label: str
    again: str
    stop: str | None = None
    fitting: bool = False
    ended: list[str] = field(default_factory=list)
    sync: str | None = None


_current: _Driver | None = None


def resumable(label: str, again: str) -> None:
    """From now on driver ``label`` (if it is the outermost) continues with ``again``: a sweep
    once its record exists (before, only starting it again helps)."""
    if _current is not None and _current.label == label:
        _current.again = again


def syncs_with(command: str | None) -> None:
    """Said by the trial logger: ``command`` (`` `study sync NAME` ``) writes what MLflow
    missed of the sweep whose trials now run; ``None`` as a new sweep starts."""
    if _current is not None:
        _current.sync = command


def stop_requested() -> str | None:
    """The signal that asked the current driver to stop, if one did."""
    return _current.stop if _current is not None else None


def _on_signal(signum: int, frame) -> None:
    name = signal.Signals(signum).name
    current = _current
    if current is None:
        raise Interrupted(name)
    first = current.stop is None
    current.stop = current.stop or name
    tune_stop = signal.getsignal(signal.SIGUSR1)
    if first and current.fitting and callable(tune_stop):
        print(
            f"[study] {name}: stopping Tune and ending the runs (again to stop at once)",
            file=sys.stderr,
            flush=True,
        )
        logging.getLogger("ray.tune.tune").setLevel(logging.ERROR)
        tune_stop(signum, frame)  # Tune's graceful stop, which it installs for every fit
        return
    raise Interrupted(current.stop)


@contextmanager
def driver(label: str, again: str) -> Iterator[None]:
    """The extent of one command's driver (``label``: "sweep grid"; ``again``: what continues
    it, "`study resume grid`"). Nested drivers (a recipe's sweeps) leave all of this to the
    outermost."""
    global _current
    if _current is not None:
        yield
        return
    current = _Driver(label, again)
    main = threading.current_thread() is threading.main_thread()
    old = {sig: signal.getsignal(sig) for sig in _SIGNALS} if main else {}
    old_env = os.environ.get(_TUNE_SIGINT)
    if main:
        os.environ[_TUNE_SIGINT] = "1"
        for sig in _SIGNALS:
            signal.signal(sig, _on_signal)
    _current = current
    try:
        yield
    except (KeyboardInterrupt, *_KNOWN) as err:
        code, line = _verdict(current, err)
        print(f"error: {line}", file=sys.stderr, flush=True)
        raise DriverStopped(code, line) from err
    finally:
        _current = None
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if main:
            if old_env is None:
                os.environ.pop(_TUNE_SIGINT, None)
            else:
                os.environ[_TUNE_SIGINT] = old_env


@contextmanager
def fitting() -> Iterator[None]:
    """While Tune runs: the first signal stops it gracefully instead of raising."""
    current = _current
    if current is None:
        yield
        return
    main = threading.current_thread() is threading.main_thread()
    old = signal.getsignal(signal.SIGUSR1) if main else None
    if main:  # until Tune installs its handler, a signal raises (a stale one would be lost)
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    tune_log = logging.getLogger("ray.tune.tune")  # its stop notes name Tuner.restore, not ours
    level = tune_log.level
    current.fitting = True
    try:
        yield
    finally:
        current.fitting = False
        tune_log.setLevel(level)
        if main:
            signal.signal(signal.SIGUSR1, old)


def raise_if_stopped(incomplete: bool = False) -> None:
    """After Tune returned: raise :class:`Interrupted` if a signal stopped it, or if it stopped
    with trials left unended (``incomplete``) for another reason."""
    stop = stop_requested()
    if stop or incomplete:
        raise Interrupted(stop or "Tune")


def reason_of(err: BaseException) -> str:
    """One line on why a run ended early."""
    if isinstance(err, Interrupted):
        return f"interrupted by {err.signal_name}"
    if isinstance(err, KeyboardInterrupt):
        return f"interrupted by {stop_requested() or 'SIGINT'}"
    if isinstance(err, MlflowException) and unreachable(err):
        return f"MLflow unreachable: {unreachable(err)}"
    text = str(err).strip().splitlines()
    reason = f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")[:500]
    if isinstance(err, _CUT_SHORT):
        reason += " (a truncated file: is the storage path's disk full?)"
    return reason


@contextmanager
def ending(client: MlflowClient, run_id: str, what: str) -> Iterator[None]:
    """Run ``run_id`` (``what``: "sweep", "recipe") is open inside; an exception ends it and its
    trial runs still RUNNING, then is raised again."""
    try:
        yield
    except BaseException as err:
        status = KILLED if isinstance(err, KeyboardInterrupt) else FAILED
        reason = reason_of(err)
        try:
            status = _end_open(client, run_id, status, reason)
            note = f"{what} run {run_id} {status}"
        except Exception as failed:  # the store itself may be what failed
            note = f"{what} run {run_id} left RUNNING: could not end it ({reason_of(failed)})"
        if _current is not None:
            _current.ended.append(note)
        raise


def _end_open(client: MlflowClient, run_id: str, status: str, reason: str) -> str:
    """End the run and its trial runs if still RUNNING (a sweep stopped by a signal was ended
    already, with its counts); returns the run's status."""
    current = client.get_run(run_id).info.status
    if current != "RUNNING":
        return current
    end_running_trials(client, run_id, status, reason)
    end_run(client, run_id, status, reason)
    return status


def _verdict(current: _Driver, err: BaseException) -> tuple[int, str]:
    ended = "; ".join(current.ended) or "no MLflow run was open"
    if isinstance(err, KeyboardInterrupt):
        name = err.signal_name if isinstance(err, Interrupted) else current.stop or "SIGINT"
        line = f"{current.label} interrupted by {name}; {ended}; continue with {current.again}"
        return _EXIT_CODES.get(name, 1), line
    if isinstance(err, MlflowException) and current.sync:
        then = f"the trials' results are in Ray's storage: once MLflow answers, {current.sync}"
        return 1, f"{current.label} failed: {reason_of(err)}; {ended}; {then} writes them"
    line = f"{current.label} failed: {reason_of(err)}; {ended}; fix it, then {current.again}"
    return 1, line
