"""Drop-Activation's two implementations of eq. 3 and the sampler's regimes.

The CPU path draws only the identity positions and copies them back slab by slab; the dense
path (accelerators, and any device under torch.compile) draws one uniform per element in the
graph. Both must give relu(x) or x per element, an i.i.d. Bernoulli(1 - p) identity mask, and
the exact gradient (1 at every identity element, x == 0 included).
"""

import math
import sys

import numpy as np
import pytest
import torch
from scipy import stats

import trainables.regularizers._sampling as sampling
from trainables.regularizers import _native, drop_activation
from trainables.regularizers._sampling import bernoulli_positions

da = sys.modules["trainables.regularizers.drop_activation"]
CPU = torch.device("cpu")


def with_zeros(shape, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    x.view(-1)[::7] = 0.0
    return x


@pytest.mark.parametrize("inplace", [False, True])
def test_slab_by_slab_copy_back_is_bit_identical_to_the_sampler(monkeypatch, inplace):
    """A tensor of 25 slabs (slab shrunk to 1000 elements): the output is relu(x) with exactly
    the sampler's positions copied from x, and the gradient is 1 exactly at identity or x > 0
    (exact zeros every 7th element, so identity zeros fall in every slab)."""
    monkeypatch.setenv(_native.DISABLE_ENV, "0")  # the numpy path is the one with slabs
    monkeypatch.setattr(da, "SLAB", 1000)
    n, p = 24_567, 0.7
    x = with_zeros(n, seed=1)
    leaf = x.clone().requires_grad_()
    out = drop_activation(leaf * 1, p, generator=torch.Generator().manual_seed(2), inplace=inplace)
    positions = bernoulli_positions(n, 1 - p, CPU, torch.Generator().manual_seed(2))
    ref = torch.relu(x)
    ref[positions] = x[positions]
    assert torch.equal(out.detach().view(torch.int32), ref.view(torch.int32))
    out.backward(torch.ones(n))
    identity = torch.zeros(n, dtype=torch.bool)
    identity[positions] = True
    assert torch.equal(leaf.grad, (identity | (x > 0)).float())


@pytest.mark.parametrize("inplace", [False, True])
def test_channels_last_keeps_its_layout_and_the_exact_gradient(inplace):
    x = with_zeros((8, 6, 5, 5), seed=3).contiguous(memory_format=torch.channels_last)
    leaf = x.clone().requires_grad_()
    torch.manual_seed(4)
    out = drop_activation(leaf * 1, 0.6, inplace=inplace)
    assert out.is_contiguous(memory_format=torch.channels_last)
    identity = (out == x) & (x < 0)
    assert torch.all((out == torch.relu(x)) | (out == x))
    (grad,) = torch.autograd.grad(out, leaf, torch.ones_like(out))
    assert torch.all(grad[(x > 0) | identity] == 1) and torch.all(grad[(x < 0) & ~identity] == 0)
    zero_grads = grad[x == 0]
    assert set(zero_grads.unique().tolist()) == {0.0, 1.0}


def test_draws_beyond_one_chunk_keep_the_law(monkeypatch):
    """Chunks of 64 draws (instead of 2**20): the positions still cover the tensor, sorted and
    unique, and the count over N = 100_000 at rate 0.05 is Binomial: sd 68.9; allow 5 sd."""
    monkeypatch.setattr(sampling, "CHUNK_DRAWS", 64)
    pos = bernoulli_positions(100_000, 0.05, CPU, torch.Generator().manual_seed(5))
    assert torch.all(pos[1:] > pos[:-1]) and pos.max() < 100_000
    assert abs(len(pos) - 5000) < 5 * math.sqrt(100_000 * 0.05 * 0.95)


def test_more_draws_than_the_scratch_buffer_keep_the_law():
    """N = 8M at rate 0.05 needs more draws than the per-thread scratch holds (2**18), so the
    buffers are fresh: count sd 616; allow 5 sd."""
    n = 8_000_000
    pos = bernoulli_positions(n, 0.05, CPU, torch.Generator().manual_seed(6))
    assert torch.all(pos[1:] > pos[:-1])
    assert abs(len(pos) - n * 0.05) < 5 * math.sqrt(n * 0.05 * 0.95)


def test_positions_returned_do_not_alias_the_next_call():
    g = torch.Generator().manual_seed(7)
    first = bernoulli_positions(10_000, 0.1, CPU, g)
    kept = first.clone()
    bernoulli_positions(10_000, 0.1, CPU, g)
    assert torch.equal(first, kept)


@pytest.mark.parametrize("rate", [0.4, 0.05, 1e-3])
def test_gap_law_at_both_ends_of_the_grid(rate):
    """Gaps are Geometric(rate), P(G <= m) = 1 - (1 - rate)**m: chi-square over 20 bins of
    near-equal probability (edges at the law's 5% quantiles); with a fixed seed the p-value is
    a fixed number, asserted above 1e-3."""
    n = 4_000_000
    gaps = np.diff(bernoulli_positions(n, rate, CPU, torch.Generator().manual_seed(8)).numpy())
    quantiles = np.arange(1, 20) / 20
    edges = np.unique(np.ceil(np.log1p(-quantiles) / np.log1p(-rate)).astype(np.int64))
    cdf = np.concatenate([[0.0], 1.0 - (1.0 - rate) ** edges, [1.0]])
    below = np.searchsorted(np.sort(gaps), edges, side="right")
    observed = np.diff(np.concatenate([[0], below, [len(gaps)]]))
    _, pvalue = stats.chisquare(observed, np.diff(cdf) * len(gaps))
    assert pvalue > 1e-3


def test_masks_of_consecutive_calls_are_independent():
    """On negative inputs, elements identity in both of two calls: Binomial(N, q^2) with
    N = 200_000, q = 0.2: mean 8000, sd 87.6; allow 5 sd."""
    torch.manual_seed(9)
    x = -(1.0 + torch.rand(200_000))
    first, second = drop_activation(x, 0.8) == x, drop_activation(x, 0.8) == x
    assert abs((first & second).sum().item() - 8000) < 5 * math.sqrt(200_000 * 0.04 * 0.96)


class TestDensePath:
    """The accelerator / compiled path, run eagerly on the CPU."""

    def test_identity_count_is_binomial(self):
        """N = 200_000 negative inputs, p = 0.9: Binomial(N, 0.1), sd 134.2; allow 5 sd."""
        torch.manual_seed(10)
        x = -(1.0 + torch.rand(200_000))
        identity = (da._dense_forward(x, 0.1) == x).sum().item()
        assert abs(identity - 20_000) < 5 * math.sqrt(200_000 * 0.1 * 0.9)

    @pytest.mark.parametrize("inplace", [False, True])
    def test_identity_zeros_get_gradient_one(self, inplace):
        """All zeros at p = 0.6: the gradient sum is the identity count, Binomial(1e5, 0.4),
        sd 154.9; allow 5 sd; every element's gradient is 0 or 1."""
        torch.manual_seed(11)
        leaf = torch.zeros(100_000, requires_grad=True)
        da._dense_forward(leaf * 1, 0.4, inplace=inplace).sum().backward()
        assert abs(leaf.grad.sum().item() - 40_000) < 5 * 154.9
        assert torch.all((leaf.grad == 0) | (leaf.grad == 1))

    def test_output_is_relu_or_identity_and_keeps_nan(self):
        torch.manual_seed(12)
        x = torch.randn(4096)
        x[0] = float("nan")
        out = da._dense_forward(x, 0.3)
        assert torch.isnan(out[0])
        assert torch.all((out[1:] == torch.relu(x[1:])) | (out[1:] == x[1:]))

    def test_same_generator_state_same_mask(self):
        x = torch.randn(1000)
        a = da._dense_forward(x, 0.3, torch.Generator().manual_seed(13))
        b = da._dense_forward(x, 0.3, torch.Generator().manual_seed(13))
        assert torch.equal(a, b)

    def test_chosen_off_the_cpu_and_under_compile_only(self):
        assert not da._uses_dense_path(torch.empty(3))
        assert da._uses_dense_path(torch.empty(3, device="meta"))


def test_clipped_gaps_keep_the_law(monkeypatch):
    """The clip that guards tiny rates against int64 overflow (gaps capped at numel + 1, past
    the end from any start), forced on at rate 0.05: count over N = 200_000 is Binomial,
    sd 97.5, allow 5 sd; and a near-zero rate puts nothing in the tensor."""
    monkeypatch.setattr(sampling, "_CLIP_BELOW_RATE", 1.0)
    pos = bernoulli_positions(200_000, 0.05, CPU, torch.Generator().manual_seed(14))
    assert torch.all(pos[1:] > pos[:-1])
    assert abs(len(pos) - 10_000) < 5 * math.sqrt(200_000 * 0.05 * 0.95)
    monkeypatch.undo()
    assert len(bernoulli_positions(1_000_000, 1e-12, CPU, torch.Generator().manual_seed(15))) == 0
