"""The compiled CPU forward of Drop-Activation (``csrc/drop_activation.cpp``) against its numpy
path, and what happens where it cannot be built.

Both take the same identity positions, so they must agree bit for bit (-0.0 and NaN included),
in every floating dtype, in place or not, on one thread and several, and report the same
identity positions where x == 0 exactly. Where the kernel cannot be built, one warning says
why and drop_activation still runs, on the numpy path.
"""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from trainables.regularizers import _native, drop_activation
from trainables.regularizers._sampling import TINY, iter_positions
from trainables.regularizers.drop_activation import _native_forward, _numpy_forward

pytestmark = pytest.mark.skipif(
    not _native.available(), reason="the compiled kernel did not build here"
)

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}  # compared as bits: -0.0, NaN


def awkward(n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """Normal values with +0.0, -0.0 and NaN sprinkled in."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g)
    x[::5] = 0.0
    x[::7] = -0.0
    x[::11] = float("nan")
    return x.to(dtype)


def positions_for(n: int, rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.flatnonzero(rng.random(n) < rate).astype(np.int64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("n", [1, 4095, 4097, 300_001])  # around one block, and many blocks
def test_native_forward_is_bit_identical_to_the_numpy_path(dtype, inplace, n):
    x = awkward(n, dtype, seed=n)
    positions = positions_for(n, 0.3, seed=n + 1)
    native, native_zeros = _native_forward(x.clone(), torch.from_numpy(positions), inplace)
    numpy, numpy_zeros = _numpy_forward(x.clone(), positions, inplace)
    bits = BITS[dtype.itemsize]
    assert torch.equal(native.view(bits), numpy.view(bits))
    assert torch.equal(native_zeros, numpy_zeros)
    assert native_zeros.dtype == torch.int64


def test_in_place_writes_into_the_input():
    x = awkward(10_000, torch.float32, seed=3)
    out, _ = _native_forward(x, torch.from_numpy(positions_for(10_000, 0.1, 4)), True)
    assert out.data_ptr() == x.data_ptr()


def test_several_threads_give_the_same_output_and_sorted_zero_positions():
    n = 2_000_003  # ~490 blocks: parallel_for splits them across threads
    x = awkward(n, torch.float32, seed=5)
    positions = torch.from_numpy(positions_for(n, 0.05, seed=6))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one, one_zeros = _native_forward(x, positions, False)
        torch.set_num_threads(max(2, before))
        many, many_zeros = _native_forward(x, positions, False)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one.view(torch.int32), many.view(torch.int32))
    assert torch.equal(one_zeros, many_zeros)
    assert torch.all(many_zeros[1:] > many_zeros[:-1])


def test_no_positions_is_relu_and_all_positions_is_identity():
    x = awkward(9_000, torch.float32, seed=7)
    out, zeros = _native_forward(x, torch.empty(0, dtype=torch.int64), False)
    assert torch.equal(out.view(torch.int32), torch.relu(x).view(torch.int32))
    assert zeros.numel() == 0
    out, zeros = _native_forward(x, torch.arange(9_000), False)
    assert torch.equal(out.view(torch.int32), x.view(torch.int32))
    assert torch.equal(zeros, torch.nonzero(x == 0).view(-1))


def test_bad_arguments_are_refused_by_the_kernel():
    x = torch.randn(10)
    with pytest.raises(RuntimeError, match="positions must be a contiguous 1-d int64"):
        _native_forward(x, torch.tensor([1, 2], dtype=torch.int32), False)
    with pytest.raises(RuntimeError, match="x must be a contiguous CPU tensor"):
        _native_forward(torch.randn(4, 4).t(), torch.tensor([1]), False)


def _positions(
    numel: int, rate: float, seed: int, words_before: int = 0
) -> tuple[np.ndarray, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    torch.empty(words_before).uniform_(generator=generator)  # one engine word per float32
    chunks = [c.copy() for c in iter_positions(numel, rate, generator)]
    return np.concatenate([np.empty(0, dtype=np.int64), *chunks]), generator.get_state()


# From p = 0.6 to p = 0.999, and rates small enough that the cheap log's guard band is wide
# (1e-7: about 1 draw in 12 takes the exact log) or gaps are clipped (below 1e-9).
@pytest.mark.parametrize("rate", [0.4, 0.05, 0.001, 1e-7, 1e-10])
@pytest.mark.parametrize("seed", [0, 1])
def test_compiled_positions_are_the_tensor_path_s_bit_for_bit(monkeypatch, rate, seed):
    """The kernel draws the uniforms itself and takes a cheap log: the same positions as the
    tensor operations (uniform_, log_, ...), and the generator left in the same state."""
    numel = 3_000_000 if rate > 1e-6 else 10**12
    native, native_state = _positions(numel, rate, seed)
    monkeypatch.setenv(_native.DISABLE_ENV, "0")
    tensors, tensors_state = _positions(numel, rate, seed)
    assert len(native) > 0 or rate < 1e-6
    np.testing.assert_array_equal(native, tensors)
    assert torch.equal(native_state, tensors_state)


@pytest.mark.parametrize("words_before", [1, 623, 624, 1001])
def test_compiled_positions_continue_an_engine_mid_stream(monkeypatch, words_before):
    """The kernel draws the engine's words in bulk: from any point of its 624-word state (one
    word short of a twist, at one, past one), the same stream and final state as uniform_."""
    native, native_state = _positions(5_000, 0.3, 7, words_before)
    monkeypatch.setenv(_native.DISABLE_ENV, "0")
    tensors, tensors_state = _positions(5_000, 0.3, 7, words_before)
    np.testing.assert_array_equal(native, tensors)
    assert torch.equal(native_state, tensors_state)


def test_compiled_positions_draw_from_the_default_generator_when_given_none():
    torch.manual_seed(5)
    first = [c.copy() for c in iter_positions(100_000, 0.05)]
    torch.manual_seed(5)
    again = [c.copy() for c in iter_positions(100_000, 0.05)]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(again))


def test_bad_arguments_are_refused_by_the_positions_kernel():
    op = torch.ops.regstudy.geometric_positions
    good = torch.empty(8, dtype=torch.int64)
    with pytest.raises(RuntimeError, match="positions must be a contiguous 1-d int64"):
        op(None, torch.empty(8, dtype=torch.int32), TINY, 0.95, -19.5, float("inf"), -1)
    with pytest.raises(RuntimeError, match="need 0 < low < high <= 1"):
        op(None, good, 0.0, 0.95, -19.5, float("inf"), -1)
    with pytest.raises(RuntimeError, match="scale must be"):
        op(None, good, TINY, 0.95, 19.5, float("inf"), -1)


def test_a_failed_build_warns_once_and_the_numpy_path_runs(monkeypatch):
    def no_compiler(verbose: bool = False) -> None:
        raise RuntimeError("c++: command not found")

    monkeypatch.setattr(_native, "_state", {})
    monkeypatch.setattr(_native, "build", no_compiler)
    x = awkward(5_000, torch.float32, seed=8)
    with pytest.warns(RuntimeWarning, match="c\\+\\+: command not found"):
        out = drop_activation(x, 0.7, generator=torch.Generator().manual_seed(9))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = drop_activation(x, 0.7, generator=torch.Generator().manual_seed(9))
    assert torch.equal(out.view(torch.int32), again.view(torch.int32))
    assert not _native.available()


def test_the_install_step_builds_the_kernel_and_says_so():
    command = [sys.executable, "-c", "from trainables.regularizers._native import main; main()"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "compiled kernels ready: regstudy.drop_activation_forward" in done.stdout
    off = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "REGSTUDY_NATIVE": "0"},
    )
    assert "turned off, nothing built" in off.stdout


def test_the_build_folder_is_named_for_this_python_and_torch(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    folder = _native.build_directory()
    assert folder.parent == tmp_path
    assert f"py{sys.version_info.major}{sys.version_info.minor}" in folder.name
    assert torch.__version__.replace("+", "_") in folder.name


def test_a_killed_build_s_lock_is_removed_and_a_live_one_kept(tmp_path):
    lock = tmp_path / "lock"
    lock.touch()
    assert not _native.clear_stale_lock(tmp_path)  # a build under way elsewhere: wait for it
    assert lock.exists()
    old = lock.stat().st_mtime - _native.STALE_LOCK_S - 1
    os.utime(lock, (old, old))
    with pytest.warns(RuntimeWarning, match="a build killed part way"):
        assert _native.clear_stale_lock(tmp_path)
    assert not lock.exists()
    assert not _native.clear_stale_lock(tmp_path)  # nothing there: nothing to do


def test_a_library_built_from_these_sources_loads_without_the_build_lock(tmp_path):
    """Once built, a process loads the library directly: no lock, no ninja; a folder whose build
    did not finish sends it back to the build."""
    directory = _native.build_directory()
    assert (directory / _native.STAMP).is_file()
    assert directory.name.endswith(_native.source_digest()[:16])
    code = (
        "import time, torch\n"
        "from torch.utils import cpp_extension\n"
        "def refuse(*args, **kwargs): raise AssertionError('built again')\n"
        "cpp_extension.load = refuse\n"
        "from trainables.regularizers import _native\n"
        "assert _native.available()\n"
        "print(torch.ops.regstudy.geometric_positions)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (tmp_path / f"{_native.NAME}.so").write_bytes(b"")  # a build killed before it finished
    assert not _native.load_built(tmp_path)
    assert not _native.load_built(tmp_path / "none")


def test_the_digest_covers_every_source_header_and_flag(monkeypatch):
    before = _native.source_digest()
    monkeypatch.setattr(_native, "FLAGS", ("-O2",))
    assert _native.source_digest() != before
    assert {p.name for p in (*_native.SOURCES, *_native.HEADERS)} == {
        p.name for p in _native.CSRC.iterdir() if p.suffix in {".cpp", ".h"}
    }
