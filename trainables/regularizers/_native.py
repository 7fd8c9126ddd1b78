"""The compiled CPU kernels (``csrc/``), built on first use with ``torch.utils.cpp_extension``.

What they buy: Drop-Activation's CPU forward in one pass over memory (``csrc/drop_activation.cpp``)
instead of a ReLU pass plus scattered copies, and its identity positions drawn and summed in one
call with a cheap log (``csrc/geometric_positions.cpp``) instead of five tensor passes. The build
takes seconds with the C++ compiler that PyTorch's own extensions need; ``make`` builds it once
when it installs, into PyTorch's extension cache (``TORCH_EXTENSIONS_DIR``, default
``~/.cache/torch_extensions``) in a folder named for this Python, this torch and the sources'
digest (a library built against one torch must not load into another), and every later process
loads the built library in ~0.05 s, without the build lock or ninja. Where no compiler is found or
the build fails, one warning says why and the numpy path runs: same draws, same results, slower.
``REGSTUDY_NATIVE=0`` turns the kernels off (benchmarks compare the two paths that way).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import time
import warnings
from pathlib import Path

import torch

NAME = "regstudy_native"
CSRC = Path(__file__).with_name("csrc")
SOURCES = (CSRC / "drop_activation.cpp", CSRC / "geometric_positions.cpp")
HEADERS = (CSRC / "widest_simd.h",)
FLAGS = ("-O3",)
DISABLE_ENV = "REGSTUDY_NATIVE"
STALE_LOCK_S = 600.0  # a build takes seconds: a lock this old is a killed build's
STAMP = "built"  # beside the library once a build has finished

_lock = threading.Lock()
_state: dict[str, bool] = {}


def enabled() -> bool:
    """Whether the user allows the kernels (``REGSTUDY_NATIVE`` is not ``0``)."""
    return os.environ.get(DISABLE_ENV, "1") != "0"


def build_directory() -> Path:
    """Where the kernels are built: one folder per Python, torch version and source digest (two
    checkouts with different kernels never build into, or load from, each other's folder)."""
    from torch.utils.cpp_extension import get_default_build_root

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()
    python = f"py{sys.version_info.major}{sys.version_info.minor}"
    torch_version = torch.__version__.replace("+", "_")
    return Path(root) / f"{NAME}-{python}-torch{torch_version}-{source_digest()[:16]}"


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


def source_digest() -> str:
    """What a library is built from: the sources, the headers they include and the flags."""
    digest = hashlib.sha256()
    for path in (*SOURCES, *HEADERS):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    digest.update(" ".join(FLAGS).encode())
    return digest.hexdigest()


def load_built(directory: Path) -> bool:
    """Load the library in ``directory`` if a build there finished (the folder is named for the
    sources); False if none did. No lock and no ninja run: ``cpp_extension.load`` takes the folder's
    build lock and runs ninja even when nothing needs building, so trial workers starting
    together queued on each other (and a torch whose lock is a plain file, not an OS lock,
    leaves it behind when the holder is killed)."""
    library = directory / f"{NAME}.so"
    if not ((directory / STAMP).is_file() and library.is_file()):
        return False
    torch.ops.load_library(str(library))
    return True


def build(verbose: bool = False) -> None:
    """Load the kernels into ``torch.ops.regstudy``, compiling them first unless they were built
    from these sources already; raises what the compiler or loader raised."""
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_logger.level
    cpp_logger.setLevel(logging.ERROR)  # "No CUDA runtime is found": irrelevant to a CPU kernel
    try:
        directory = build_directory()
        if load_built(directory):
            return
        from torch.utils import cpp_extension

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
        (directory / STAMP).touch()
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
