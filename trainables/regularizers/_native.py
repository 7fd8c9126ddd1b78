"""The compiled CPU kernels (``csrc/``), built on first use with ``torch.utils.cpp_extension``.

What they buy: Drop-Activation's CPU forward in one pass over memory (``csrc/drop_activation.cpp``)
instead of a ReLU pass plus scattered copies, and its identity positions drawn and summed in one
call with a cheap log (``csrc/geometric_positions.cpp``) instead of five tensor passes. The build
takes seconds with the C++ compiler that PyTorch's own extensions need; ``make`` builds it once
when it installs, into PyTorch's extension cache (``TORCH_EXTENSIONS_DIR``, default
``~/.cache/torch_extensions``) in a folder named for this Python and this torch (a library built
against one torch must not load into another), and every later process loads the built library in
~0.1 s. Where no compiler is found or the build fails, one warning says why and the numpy path
runs: same draws, same results, slower.
``REGSTUDY_NATIVE=0`` turns the kernels off (benchmarks compare the two paths that way).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import warnings
from pathlib import Path

import torch

NAME = "regstudy_native"
SOURCES = tuple(
    Path(__file__).with_name("csrc") / name
    for name in ("drop_activation.cpp", "geometric_positions.cpp")
)
FLAGS = ("-O3",)
DISABLE_ENV = "REGSTUDY_NATIVE"
STALE_LOCK_S = 600.0  # a build takes seconds: a lock this old is a killed build's

_lock = threading.Lock()
_state: dict[str, bool] = {}


def enabled() -> bool:
    """Whether the user allows the kernels (``REGSTUDY_NATIVE`` is not ``0``)."""
    return os.environ.get(DISABLE_ENV, "1") != "0"


def build_directory() -> Path:
    """Where the kernels are built: one folder per Python and torch version."""
    from torch.utils.cpp_extension import get_default_build_root

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    torch_version = torch.__version__.replace("+", "_")
    return Path(root) / f"{NAME}-{python}-torch{torch_version}"


def clear_stale_lock(directory: Path, older_than_s: float = STALE_LOCK_S) -> bool:
    """Remove the build lock a killed build left behind (PyTorch would wait for it forever);
    a recent lock, a build under way in another process, is left alone. True if removed."""
    lock = directory / "lock"
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return False
    if age < older_than_s:
        return False
    lock.unlink(missing_ok=True)
    warnings.warn(
        f"removed a build lock {age:.0f} s old at {lock} (a build killed part way)",
        RuntimeWarning,
        stacklevel=2,
    )
    return True


def build(verbose: bool = False) -> None:
    """Compile (or find already compiled) and load the kernels into ``torch.ops.regstudy``;
    raises what the compiler or loader raised."""
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_logger.level
    cpp_logger.setLevel(logging.ERROR)  # "No CUDA runtime is found": irrelevant to a CPU kernel
    try:
        from torch.utils import cpp_extension

        directory = build_directory()
        directory.mkdir(parents=True, exist_ok=True)
        clear_stale_lock(directory)
        cpp_extension.load(
            name=NAME,
            sources=[str(s) for s in SOURCES],
            extra_cflags=list(FLAGS),
            build_directory=str(directory),
            is_python_module=False,
            verbose=verbose,
        )
    finally:
        cpp_logger.setLevel(level)


def available() -> bool:
    """True once the kernels are loaded in this process; the first call builds or loads them
    (once per process, thread-safe). False, with one warning, if that fails."""
    if not enabled():
        return False
    loaded = _state.get(NAME)
    if loaded is not None:
        return loaded
    with _lock:
        if NAME not in _state:
            try:
                build()
                _state[NAME] = True
            except Exception as err:  # a missing compiler, a failed build: the numpy path runs
                reason = " ".join(str(err).split())[:300]
                warnings.warn(
                    f"regstudy's compiled CPU kernels are unavailable ({reason}); Drop-Activation "
                    "runs its numpy path (the same results, slower)",
                    RuntimeWarning,
                    stacklevel=2,
                )
                _state[NAME] = False
    return _state[NAME]


def main() -> int:
    """Build the kernels now and say so (``make`` calls this when it installs)."""
    if not enabled():
        print(f"{DISABLE_ENV}=0: compiled kernels turned off, nothing built")
        return 0
    try:
        build()
    except Exception as err:
        reason = " ".join(str(err).split())[:300]
        print(f"compiled kernels not built ({reason}); the numpy path will run")
        return 0
    print(f"compiled kernels ready: {torch.ops.regstudy.drop_activation_forward}")
    return 0
