"""Drop-Activation against the paper's eq. 3–5 (papers.md, Drop-Activation).

Every test here runs twice on the CPU: with the compiled forward kernel and with its numpy
fallback (the same draws, so the same results bit for bit).
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

from trainables.regularizers import DropActivation, _native, drop_activation
from trainables.regularizers._sampling import bernoulli_positions
from trainables.regularizers.drop_activation import _save_exact_zeros, _unpack_bits


@pytest.fixture(autouse=True, params=["native", "numpy"])
def cpu_path(request, monkeypatch):
    """Which CPU forward runs: the compiled kernel, or the numpy path it falls back to."""
    if request.param == "numpy":
        monkeypatch.setenv(_native.DISABLE_ENV, "0")
    elif not _native.available():
        pytest.skip("the compiled kernel did not build here (see the RuntimeWarning)")
    return request.param


def negative_inputs(n: int, seed: int = 0) -> torch.Tensor:
    """Strictly negative inputs: there the output is x exactly when the element became identity."""
    g = torch.Generator().manual_seed(seed)
    return -(1.0 + torch.rand(n, generator=g))


def inputs_with_zeros(n: int, seed: int = 0) -> torch.Tensor:
    """A third exact zeros (+0.0 and -0.0), the rest normal (nonzero almost surely)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g)
    x[::3] = 0.0
    x[::6] = -0.0
    return x


def identity_mask(numel: int, p: float, seed: int) -> torch.Tensor:
    """Which elements drop_activation(..., generator=Generator().manual_seed(seed)) makes
    identity, rebuilt from the same draws of the sampler."""
    mask = torch.zeros(numel, dtype=torch.bool)
    mask[
        bernoulli_positions(numel, 1 - p, torch.device("cpu"), torch.Generator().manual_seed(seed))
    ] = True
    return mask


def saved_tensors(fn, x):
    """(dtype, bytes) of every tensor autograd saves for backward while ``fn(x)`` runs."""
    saved = []

    def pack(t):
        saved.append((t.dtype, t.numel() * t.element_size()))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(x)
    return out, saved


def test_p_one_is_exactly_relu_in_train_and_eval():
    x = inputs_with_zeros(64 * 32).view(64, 32).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    for training in (True, False):
        out = drop_activation(x, p=1.0, training=training)
        ref = torch.relu(x_ref)
        assert torch.equal(out, ref)
        grad = torch.randn_like(out)
        (gx,) = torch.autograd.grad(out, x, grad)
        (gref,) = torch.autograd.grad(ref, x_ref, grad)
        assert torch.equal(gx, gref)


def test_eval_is_leaky_relu_with_slope_one_minus_p():
    x = torch.randn(1000)
    for p in (0.6, 0.9, 0.95):
        assert torch.equal(drop_activation(x, p, training=False), F.leaky_relu(x, 1 - p))


def test_eval_is_the_expectation_of_training_output():
    """Eq. 5: E[train output] = (1 - p) x + p relu(x); averaged over 4000 draws per element,
    the sample mean of x * Bernoulli has std |x| sqrt(p(1-p)/4000) <= 0.0049 for |x| <= 1, p = 0.9;
    6 std = 0.03."""
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 101)
    draws = torch.stack([drop_activation(x, 0.9) for _ in range(4000)])
    assert torch.allclose(draws.mean(0), drop_activation(x, 0.9, training=False), atol=0.03)


def test_training_output_is_relu_or_identity_per_element():
    torch.manual_seed(0)
    x = torch.randn(256, 64)
    y = drop_activation(x, p=0.7)
    assert torch.all((y == torch.relu(x)) | (y == x))


def test_identity_fraction_matches_binomial():
    """On negative inputs the number of identity elements is Binomial(N, 1 - p):
    N = 400_000, 1 - p = 0.1 -> mean 40_000, std sqrt(N 0.1 0.9) = 189.7; allow 5 std."""
    torch.manual_seed(1)
    x = negative_inputs(400_000)
    identity = (drop_activation(x, p=0.9) == x).sum().item()
    assert abs(identity - 40_000) < 5 * 189.7


@pytest.mark.parametrize("p", [0.6, 0.95, 0.999])
def test_identity_fraction_holds_across_p(p):
    n = 200_000
    q = 1 - p
    torch.manual_seed(2)
    x = negative_inputs(n)
    identity = (drop_activation(x, p=p) == x).sum().item()
    assert abs(identity - n * q) < 5 * math.sqrt(n * q * (1 - q)) + 1


def test_mask_is_independent_between_neighbours():
    """Adjacent identity pairs among N - 1 neighbours: mean (N-1) q^2 = 4000 for N = 400_000,
    q = 0.1. Overlapping pairs are 1-dependent, so the variance is below
    (N-1)(q^2(1-q^2) + 2 q^3(1-q)) = 4680 (std 68.4); allow 5 std."""
    torch.manual_seed(3)
    x = negative_inputs(400_000)
    identity = drop_activation(x, p=0.9) == x
    pairs = (identity[1:] & identity[:-1]).sum().item()
    assert abs(pairs - 4000) < 5 * 68.4


def test_mask_is_fresh_per_forward_and_per_example():
    torch.manual_seed(4)
    x = negative_inputs(64 * 512).view(64, 512)
    first, second = drop_activation(x, 0.9) == x, drop_activation(x, 0.9) == x
    assert not torch.equal(first, second)
    assert len({tuple(row.nonzero().view(-1).tolist()) for row in first}) == 64


def test_same_seed_gives_same_output():
    x = torch.randn(128, 128)
    torch.manual_seed(5)
    a = drop_activation(x, 0.8)
    torch.manual_seed(5)
    b = drop_activation(x, 0.8)
    assert torch.equal(a, b)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(drop_activation(x, 0.8, generator=g1), drop_activation(x, 0.8, generator=g2))


def test_gradient_passes_where_relu_kept_positive_or_identity():
    torch.manual_seed(6)
    x = torch.randn(10_000, requires_grad=True)
    y = drop_activation(x, 0.6)
    upstream = torch.randn_like(y)
    (grad,) = torch.autograd.grad(y, x, upstream)
    passes = (x > 0) | (y == x)
    assert torch.equal(grad, upstream * passes)


def test_gradcheck_with_a_fixed_mask():
    x = torch.randn(6, 7, dtype=torch.float64, requires_grad=True)

    def fixed_mask_da(t):
        return drop_activation(t, 0.5, generator=torch.Generator().manual_seed(0))

    assert torch.autograd.gradcheck(fixed_mask_da, (x,))


def test_inplace_matches_out_of_place():
    x = torch.randn(32, 100)
    torch.manual_seed(8)
    expected = drop_activation(x.clone(), 0.8)
    torch.manual_seed(8)
    y = x.clone()
    out = drop_activation(y, 0.8, inplace=True)
    assert out.data_ptr() == y.data_ptr()
    assert torch.equal(out, expected)


def test_inplace_after_a_layer_backpropagates():
    torch.manual_seed(9)
    lin = nn.Linear(8, 8)
    module = DropActivation(0.7, inplace=True)
    x = torch.randn(4, 8)
    module(lin(x)).sum().backward()
    assert lin.weight.grad is not None


def test_bfloat16_matches_float32_under_same_seed():
    x = torch.randn(64, 64).to(torch.bfloat16)
    torch.manual_seed(10)
    low = drop_activation(x, 0.8)
    torch.manual_seed(10)
    full = drop_activation(x.float(), 0.8)
    assert low.dtype == torch.bfloat16
    assert torch.equal(low.float(), full)


def test_non_contiguous_input():
    torch.manual_seed(11)
    x = torch.randn(16, 32).t()
    y = drop_activation(x, 0.8)
    assert y.shape == x.shape
    assert torch.all((y == torch.relu(x)) | (y == x))


def test_backward_keeps_exactly_what_relu_keeps_without_exact_zeros():
    """Bytes saved for backward: the output, as torch.relu saves (4 bytes/element in float32),
    and an empty index tensor of exact-zero identity positions."""
    x = torch.randn(128, 32, 16, 16, requires_grad=True)
    _, relu_saved = saved_tensors(torch.relu, x)
    _, da_saved = saved_tensors(lambda t: drop_activation(t, 0.95), x)
    assert sum(b for _, b in relu_saved) == x.numel() * 4
    assert sum(b for _, b in da_saved) == sum(b for _, b in relu_saved)


@pytest.mark.parametrize(
    ("p", "fill", "kind"),
    [
        (0.6, 0.0, torch.uint8),
        (0.95, 0.0, torch.uint8),
        (0.99, 0.0, torch.int32),
        (0.6, None, torch.int32),
    ],
)
def test_saved_bytes_at_most_relu_plus_one_bit_per_element(p, fill, kind):
    """All zeros at p = 0.6 or 0.95: the identity zeros (40% or 5%) cost more as int32 indices
    (32 bits each) than one bit per element, so a packed bitmask of numel / 8 bytes is saved;
    at p = 0.99 (1%) int32 indices are cheaper; on normal inputs the index tensor is empty."""
    shape = (64, 16, 8, 8)
    x = torch.full(shape, fill) if fill is not None else torch.randn(shape)
    x.requires_grad_()
    numel = x.numel()
    out, da_saved = saved_tensors(
        lambda t: drop_activation(t, p, generator=torch.Generator().manual_seed(20)), x
    )
    _, relu_saved = saved_tensors(torch.relu, x)
    relu_bytes = sum(b for _, b in relu_saved)
    extra = sum(b for _, b in da_saved) - relu_bytes
    assert [d for d, _ in da_saved] == [torch.float32, kind]
    assert 0 <= extra <= numel / 8
    if kind == torch.uint8:
        assert extra == numel / 8
    if fill is None:
        assert extra == 0
    (grad,) = torch.autograd.grad(out, x, torch.ones_like(out))
    identity = identity_mask(numel, p, seed=20).view(shape)
    assert torch.equal(grad, (identity | (x > 0)).float())


def test_issue_example_identity_zeros_get_gradient_one():
    """x = 0 everywhere, p = 0.6: every identity element has derivative 1, so the gradient sum
    is the identity count, Binomial(100_000, 0.4): mean 40_000, std sqrt(1e5 0.4 0.6) = 154.9."""
    torch.manual_seed(21)
    x = torch.zeros(100_000, requires_grad=True)
    drop_activation(x, 0.6).sum().backward()
    assert abs(x.grad.sum().item() - 40_000) < 5 * 154.9
    assert torch.all((x.grad == 0) | (x.grad == 1))


@pytest.mark.parametrize("p", [0.6, 0.99])
@pytest.mark.parametrize("inplace", [False, True])
def test_gradient_with_exact_zeros_matches_explicit_mask(p, inplace):
    """Zeros, positives and negatives: the gradient is upstream where the element is identity
    (x == 0 included) or x > 0, and 0 elsewhere (ReLU's convention at 0 kept for ReLU elements).
    p = 0.6 takes the packed-bitmask branch, p = 0.99 the index branch."""
    n = 30_000
    x = inputs_with_zeros(n, seed=22).requires_grad_()
    upstream = torch.randn(n, generator=torch.Generator().manual_seed(23))
    out = drop_activation(
        x * 1 if inplace else x, p, generator=torch.Generator().manual_seed(24), inplace=inplace
    )
    (grad,) = torch.autograd.grad(out, x, upstream)
    identity = identity_mask(n, p, seed=24)
    assert ((x == 0) & identity).any() and ((x == 0) & ~identity).any()
    assert torch.equal(grad, upstream * (identity | (x > 0)))


@pytest.mark.parametrize("p", [0.6, 0.95, 0.99])
def test_inplace_gives_the_same_gradients_as_out_of_place(p):
    x = inputs_with_zeros(8 * 1000, seed=25).view(8, 1000)
    grads = []
    for inplace in (False, True):
        leaf = x.clone().requires_grad_()
        torch.manual_seed(26)
        drop_activation(leaf * 1, p, inplace=inplace).sum().backward()
        grads.append(leaf.grad)
    assert torch.equal(grads[0], grads[1])


@pytest.mark.parametrize("p", [0.6, 0.8, 0.95])
@pytest.mark.parametrize("inplace", [False, True])
def test_forward_is_bit_identical_to_the_sampler_draws(p, inplace):
    """The distribution is the sampler's, unchanged by the exact backward: the output is relu(x)
    with exactly the positions bernoulli_positions draws from the same generator state copied
    from x (bit for bit, -0.0 included), and no further random numbers are consumed."""
    n = 50_001
    x = inputs_with_zeros(n, seed=27)
    g = torch.Generator().manual_seed(28)
    out = drop_activation(x.clone(), p, generator=g, inplace=inplace)
    g_ref = torch.Generator().manual_seed(28)
    positions = bernoulli_positions(n, 1 - p, torch.device("cpu"), g_ref)
    ref = torch.relu(x)
    ref[positions] = x[positions]
    assert torch.equal(out.view(torch.int32), ref.view(torch.int32))
    assert torch.equal(torch.rand(4, generator=g), torch.rand(4, generator=g_ref))


def test_exact_zero_positions_are_saved_in_the_smaller_form():
    """Index when count * index_bytes * 8 <= numel (int32 below 2**31 elements, int64 from
    there), else a bitmask of ceil(numel / 8) bytes whose bits unpack to the positions."""
    positions = torch.tensor([3, 40])
    saved, packed = _save_exact_zeros(positions, 64)  # 2 * 4 * 8 = 64 bits <= 64
    assert not packed and saved.dtype == torch.int32 and saved.tolist() == [3, 40]
    positions = torch.tensor([0, 3, 40, 63, 69])
    saved, packed = _save_exact_zeros(positions, 70)  # 5 * 32 bits > 70
    assert packed and saved.dtype == torch.uint8 and saved.numel() == 9
    assert _unpack_bits(saved, 70).nonzero().view(-1).tolist() == positions.tolist()
    saved, packed = _save_exact_zeros(torch.tensor([0, 2**31]), 2**31 + 1)
    assert not packed and saved.dtype == torch.int64
    everything = torch.arange(1003)
    saved, packed = _save_exact_zeros(everything, 1003)
    assert packed and torch.equal(_unpack_bits(saved, 1003), torch.ones(1003, dtype=torch.bool))
    saved, packed = _save_exact_zeros(torch.empty(0, dtype=torch.int64), 10)
    assert not packed and saved.numel() == 0


@pytest.mark.parametrize("p", [0.0, -0.1, 1.5, float("nan"), True, "0.9", None])
def test_invalid_p_is_rejected_naming_p(p):
    with pytest.raises(ValueError, match="p="):
        DropActivation(p)
    with pytest.raises(ValueError, match="p="):
        drop_activation(torch.ones(3), p)


def test_module_follows_train_and_eval_modes():
    module = DropActivation(0.9)
    assert "p=0.9" in repr(module)
    x = negative_inputs(10_000)
    torch.manual_seed(12)
    assert (module(x) == x).any()
    module.eval()
    assert torch.equal(module(x), F.leaky_relu(x, 0.1))


def test_torch_compile_traces_the_layer_whole_in_train_and_eval():
    """Under torch.compile the mask is drawn inside the graph (no graph break; compared with
    eager and with its law in test_compile.py): each training output element is relu(x) or x,
    backward runs, and eval is exactly eager's leaky ReLU."""
    torch.manual_seed(13)
    model = nn.Sequential(nn.Linear(16, 32), DropActivation(0.8), nn.Linear(32, 4))
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    x = torch.randn(8, 16)
    hidden = model[0](x)
    out = torch.compile(model[1], backend="eager", fullgraph=True)(hidden)
    assert torch.all((out == torch.relu(hidden)) | (out == hidden))
    compiled(x).sum().backward()
    model.eval()
    assert torch.equal(compiled(x), model(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_semantics():
    x = -(1 + torch.rand(200_000, device="cuda"))
    torch.manual_seed(15)
    identity = (drop_activation(x, 0.9) == x).sum().item()
    assert abs(identity - 20_000) < 5 * math.sqrt(200_000 * 0.1 * 0.9)


class TestSparseBernoulliSampler:
    """The gap sampler of trainables.regularizers._sampling, checked against Bernoulli(rate)."""

    @pytest.mark.parametrize("numel", [1, 2, 63, 64, 1000, 123_457])
    @pytest.mark.parametrize("rate", [1e-4, 0.05, 0.4, 0.9])
    def test_positions_sorted_unique_in_range(self, numel, rate):
        pos = bernoulli_positions(
            numel, rate, torch.device("cpu"), torch.Generator().manual_seed(0)
        )
        assert pos.dtype == torch.int64
        assert torch.all(pos[1:] > pos[:-1])
        assert pos.numel() == 0 or (pos.min().item() >= 0 and pos.max().item() < numel)

    def test_gaps_are_geometric(self):
        """Gaps between ones of i.i.d. Bernoulli(q) are Geometric(q): chi-square over gaps 1..40
        and a tail bin; with a fixed seed the p-value is a fixed number, asserted above 1e-3."""
        q = 0.1
        pos = bernoulli_positions(
            2_000_000, q, torch.device("cpu"), torch.Generator().manual_seed(1)
        )
        gaps = np.diff(pos.numpy().astype(np.int64))
        k = np.arange(1, 41)
        expected_p = np.append(q * (1 - q) ** (k - 1), (1 - q) ** 40)
        observed = np.append(np.bincount(gaps, minlength=41)[1:41], (gaps > 40).sum())
        _, pvalue = stats.chisquare(observed, expected_p * len(gaps))
        assert pvalue > 1e-3

    def test_the_end_of_the_tensor_is_as_likely_as_the_start(self):
        """Over 2000 tensors of 1000 elements, each of the last 10 positions is a one
        Binomial(2000, 0.05) times: mean 100, std 9.7; allow 5 std on their total (std 30.8)."""
        g = torch.Generator().manual_seed(2)
        counts = np.zeros(1000)
        for _ in range(2000):
            counts[bernoulli_positions(1000, 0.05, torch.device("cpu"), g).numpy()] += 1
        assert abs(counts[-10:].sum() - 1000) < 5 * 30.8

    def test_rate_zero_draws_nothing(self):
        assert bernoulli_positions(100, 0.0, torch.device("cpu")).numel() == 0

    @pytest.mark.parametrize("rate", [-0.1, 1.0, 2.0])
    def test_invalid_rate(self, rate):
        with pytest.raises(ValueError, match="rate"):
            bernoulli_positions(10, rate, torch.device("cpu"))
