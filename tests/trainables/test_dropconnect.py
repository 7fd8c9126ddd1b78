"""DropConnect against Wan et al. (ICML 2013), section 3 and Algorithm 2."""

import math
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainables.models import build_model
from trainables.regularizers.dropconnect import (
    RECORD,
    DropConnectLinear,
    apply_dropconnect,
    dropconnect_linear,
    dropconnect_moment_inference,
    dropconnect_moments,
)


def layer(in_features=5, out_features=4, bias=True, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(out_features, in_features, generator=g, dtype=dtype)
    b = torch.randn(out_features, generator=g, dtype=dtype) if bias else None
    return weight, b


def gen(seed):
    return torch.Generator().manual_seed(seed)


def grads(out, inputs, upstream):
    inputs = [t for t in inputs if t is not None]
    return torch.autograd.grad(out, inputs, upstream)


def test_p_one_is_exactly_nn_linear_in_train_and_eval():
    linear = nn.Linear(7, 3)
    dc = DropConnectLinear(nn.Linear(7, 3), p=1.0)
    dc.load_state_dict(linear.state_dict())
    x = torch.randn(10, 7)
    upstream = torch.randn(10, 3)
    for training in (True, False):
        linear.train(training)
        dc.train(training)
        out, ref = dc(x), linear(x)
        assert torch.equal(out, ref)
        for g, g_ref in zip(
            grads(out, [dc.weight, dc.bias], upstream),
            grads(ref, [linear.weight, linear.bias], upstream),
        ):
            assert torch.equal(g, g_ref)


def test_eval_is_mean_inference_p_times_w_v_plus_p_times_b():
    """Mean inference: E_M[(M ⋆ W) v] = p W v, the bias a weight on the input 1."""
    weight, bias = layer(6, 3)
    x = torch.randn(8, 6)
    for p in (0.3, 0.5, 0.9):
        out = dropconnect_linear(x, weight, bias, p, training=False)
        assert torch.equal(out, F.linear(x, p * weight, p * bias))
        torch.testing.assert_close(out, p * (x @ weight.T) + p * bias)
        assert torch.equal(
            dropconnect_linear(x, weight, None, p, training=False), F.linear(x, p * weight)
        )


def test_training_draws_a_different_mask_for_each_example():
    """W_oi = 2^i, b_o = 2^16 and v = 1 make u_o = Σ_i M_oi 2^i + M_o,16 2^16: each output
    row spells the example's mask [W | b] in binary (exact in float32). Two identical examples
    get identical outputs only if all out · (in + 1) = 4 · 17 = 68 mask bits agree, probability
    (p² + (1 − p)²)^68 = 2^-68 at p = 0.5; over the 64 · 63 / 2 pairs of a batch of 64 at most
    2016 · 2^-68 < 1e-17. A mask shared by the batch would make all 64 rows equal."""
    weight = (2.0 ** torch.arange(16)).repeat(4, 1)
    bias = torch.full((4,), 2.0**16)
    out = dropconnect_linear(torch.ones(64, 16), weight, bias, 0.5, generator=gen(0))
    assert torch.equal(out, out.round()) and out.min() >= 0 and out.max() < 2**17
    assert torch.unique(out, dim=0).shape[0] == 64


@pytest.mark.parametrize("p", [0.3, 0.5, 0.9])
def test_keep_rate_matches_p_within_binomial_spread(p):
    """With W = 1, b = 1 and v = 1, Σ u counts the kept elements of all N masks over [W | b]:
    Binomial(N · out · (in + 1), p) with N · out · (in + 1) = 500 · 40 · 100 = 2e6 trials,
    std sqrt(2e6 p (1 − p)) <= 708; allow 5 std. With upstream gradient 1, Σ ∂L/∂W + Σ ∂L/∂b
    = Σ_n Σ M_n counts the same masks again: backward re-draws exactly the forward's masks."""
    trials = 500 * 40 * 100
    weight = torch.ones(40, 99, requires_grad=True)
    bias = torch.ones(40, requires_grad=True)
    out = dropconnect_linear(torch.ones(500, 99), weight, bias, p, generator=gen(1))
    kept = out.double().sum().item()
    assert abs(kept - trials * p) < 5 * math.sqrt(trials * p * (1 - p))
    g_w, g_b = grads(out, [weight, bias], torch.ones_like(out))
    assert g_w.double().sum().item() + g_b.double().sum().item() == kept


@pytest.mark.parametrize("with_bias", [True, False])
def test_training_matches_brute_force_per_example_loop(with_bias):
    """u_n = (M_n ⋆ W) v_n + m_n ⋆ b, [M_n | m_n] the next out · (in + 1) uniforms (out · in
    without a bias) below p, example after example (the documented draw order); gradients
    reach the kept weights of each example only."""
    n, fan_in, fan_out, p = 6, 5, 4, 0.5
    weight, bias = layer(fan_in, fan_out, with_bias)
    weight.requires_grad_()
    if bias is not None:
        bias.requires_grad_()
    x = torch.randn(n, fan_in, requires_grad=True)
    out = dropconnect_linear(x, weight, bias, p, generator=gen(3))

    width = fan_in + int(with_bias)
    masks = (torch.rand(n, fan_out, width, generator=gen(3)) < p).float()
    rows = []
    for i in range(n):
        u = (masks[i, :, :fan_in] * weight) @ x[i]
        rows.append(u + masks[i, :, fan_in] * bias if bias is not None else u)
    ref = torch.stack(rows)
    torch.testing.assert_close(out, ref)

    upstream = torch.randn(n, fan_out)
    for g, g_ref in zip(
        grads(out, [x, weight, bias], upstream), grads(ref, [x, weight, bias], upstream)
    ):
        torch.testing.assert_close(g, g_ref)


def test_leading_dimensions_are_examples():
    weight, bias = layer(5, 4)
    x = torch.randn(2, 3, 5)
    out = dropconnect_linear(x, weight, bias, 0.5, generator=gen(4))
    flat = dropconnect_linear(x.reshape(6, 5), weight, bias, 0.5, generator=gen(4))
    assert out.shape == (2, 3, 4)
    assert torch.equal(out.reshape(6, 4), flat)


def test_chunked_equals_unchunked_with_the_same_generator():
    """On CPU torch fills uniforms serially, so chunks of examples draw the same masks."""
    weight, bias = layer(30, 20)
    weight.requires_grad_()
    bias.requires_grad_()
    x = torch.randn(50, 30, requires_grad=True)
    upstream = torch.randn(50, 20)
    results = []
    for max_elements in (1, 7 * 20 * 31, 2**22):  # one example, 7 examples, all 50 per chunk
        out = dropconnect_linear(
            x, weight, bias, 0.5, generator=gen(5), max_mask_elements=max_elements
        )
        results.append((out, *grads(out, [x, weight, bias], upstream)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b)


def test_reproducible_under_manual_seed_and_backward_leaves_the_stream_alone():
    dc = DropConnectLinear(nn.Linear(12, 6), p=0.5)
    x = torch.randn(9, 12)
    runs = []
    for backward in (True, False):
        torch.manual_seed(0)
        out = dc(x)
        if backward:
            out.sum().backward()
        runs.append((out.detach(), torch.rand(5)))
    assert torch.equal(runs[0][0], runs[1][0])
    assert torch.equal(runs[0][1], runs[1][1])


def test_bfloat16_uses_the_float32_masks():
    """Masks are drawn in float32 whatever the dtype; bf16 then only rounds (2^-8 relative)."""
    weight, bias = layer(16, 8, dtype=torch.bfloat16)
    x = torch.randn(10, 16).bfloat16()
    out = dropconnect_linear(x, weight, bias, 0.5, generator=gen(6))
    ref = dropconnect_linear(x.float(), weight.float(), bias.float(), 0.5, generator=gen(6))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=2e-2, atol=5e-2)
    w = weight.clone().requires_grad_()
    (g,) = grads(
        dropconnect_linear(x, w, bias, 0.5, generator=gen(6)),
        [w],
        torch.ones(10, 8, dtype=torch.bfloat16),
    )
    w32 = weight.float().requires_grad_()
    (g32,) = grads(
        dropconnect_linear(x.float(), w32, bias.float(), 0.5, generator=gen(6)),
        [w32],
        torch.ones(10, 8),
    )
    assert g.dtype == torch.bfloat16
    torch.testing.assert_close(g.float(), g32, rtol=2e-2, atol=5e-2)


def test_moments_match_monte_carlo_of_training_u():
    """Algorithm 2's moments, μ = p W v and σ² = p(1 − p)(W ⋆ W)(v ⋆ v), against K = 20_000
    training draws of u for one example (a batch of K copies: one mask each). Per unit the
    sample mean has std σ/√K; u is a sum of independent scaled Bernoulli(1/2) terms, whose
    excess kurtosis is −2, so u's is <= 0 and the sample variance has std <= σ² √(2/(K − 1)).
    Allow 5 std for each of the 6 units."""
    k, p = 20_000, 0.5
    weight, bias = layer(20, 6, seed=7)
    v = torch.randn(1, 20, generator=gen(8))
    mean, var = dropconnect_moments(v, weight, bias, p)
    torch.testing.assert_close(mean[0], p * (weight @ v[0] + bias))
    torch.testing.assert_close(
        var[0], p * (1 - p) * ((weight * weight) @ (v[0] * v[0]) + bias * bias)
    )
    u = dropconnect_linear(v.expand(k, 20), weight, bias, p, generator=gen(9)).double()
    mean, var = mean[0].double(), var[0].double()
    assert torch.all((u.mean(0) - mean).abs() < 5 * var.sqrt() / math.sqrt(k))
    assert torch.all((u.var(0) - var).abs() < 5 * var * math.sqrt(2 / (k - 1)))


def test_moment_inference_is_algorithm_2():
    """r̂ = (1/Z) Σ_z a(u_z), u_z = μ + σ ε_z, ε_z ~ N(0, 1) drawn per unit, z after z."""
    p, samples = 0.5, 8
    weight, bias = layer(9, 5)
    x = torch.randn(3, 9)
    out = dropconnect_moment_inference(x, weight, bias, p, torch.tanh, samples, gen(10))
    mu = p * (x @ weight.T + bias)
    sigma = (p * (1 - p) * ((x * x) @ (weight * weight).T + bias * bias)).sqrt()
    g = gen(10)
    ref = (
        sum(torch.tanh(mu + sigma * torch.randn(mu.shape, generator=g)) for _ in range(samples))
        / samples
    )
    torch.testing.assert_close(out, ref)
    assert torch.equal(
        dropconnect_moment_inference(x, weight, bias, 1.0, torch.tanh, samples),
        torch.tanh(F.linear(x, weight, bias)),
    )


def test_moment_inference_samples_have_mean_mu_and_variance_sigma2():
    """With a(u) = u and a(u) = u², Z = 4000 samples estimate E[u] = μ (std σ/√Z) and
    E[u²] = μ² + σ² (for a Gaussian, Var(u²) = 2σ⁴ + 4μ²σ²); allow 5 std per unit."""
    p, z = 0.5, 4000
    weight, bias = layer(9, 5, seed=11)
    x = torch.randn(2, 9, generator=gen(12))
    mean, var = dropconnect_moments(x, weight, bias, p)
    first = dropconnect_moment_inference(x, weight, bias, p, lambda u: u, z, gen(13))
    second = dropconnect_moment_inference(x, weight, bias, p, torch.square, z, gen(14))
    assert torch.all((first - mean).abs() < 5 * (var / z).sqrt())
    spread = ((2 * var**2 + 4 * mean**2 * var) / z).sqrt()
    assert torch.all((second - (mean**2 + var)).abs() < 5 * spread)


def test_module_shares_the_linear_parameters_and_round_trips_state_dict():
    linear = nn.Linear(8, 3)
    dc = DropConnectLinear(linear, p=0.5)
    assert dc.weight is linear.weight and dc.bias is linear.bias
    assert set(dc.state_dict()) == {"weight", "bias"}
    assert "p=0.5" in repr(dc)
    other = DropConnectLinear(nn.Linear(8, 3), p=0.5)
    other.load_state_dict(dc.state_dict())
    x = torch.randn(4, 8)
    torch.manual_seed(0)
    a = dc(x)
    torch.manual_seed(0)
    assert torch.equal(a, other(x))
    assert torch.equal(dc.eval()(x), other.eval()(x))


def test_apply_dropconnect_replaces_every_linear_of_fcnet_and_trains_one_step():
    torch.manual_seed(0)
    model = build_model("fcnet", 10, (1, 28, 28), norm="none")
    before = {n: p for n, p in model.named_parameters()}
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert apply_dropconnect(model, 0.5) == len(linears) == 3
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert all(isinstance(model.get_submodule(n), DropConnectLinear) for n in linears)
    assert all(before[n] is p for n, p in model.named_parameters())  # initialisation kept

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert all(not torch.equal(start[n], p) for n, p in model.named_parameters())
    assert model.eval()(x).shape == (4, 10)


def test_apply_dropconnect_include_limits_the_swap():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    assert apply_dropconnect(model, 0.5, include=("2",)) == 1
    assert isinstance(model[0], nn.Linear) and isinstance(model[2][0], DropConnectLinear)
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        apply_dropconnect(nn.Sequential(nn.ReLU()), 0.5)


@pytest.mark.parametrize("p", [0, 0.0, -0.1, 1.5, float("nan"), True, "0.5", None])
def test_bad_p_is_refused(p):
    weight, bias = layer()
    x = torch.randn(2, 5)
    with pytest.raises(ValueError, match=r"DropConnect p must be a number in \(0, 1\]"):
        dropconnect_linear(x, weight, bias, p)
    with pytest.raises(ValueError, match="DropConnect p"):
        DropConnectLinear(nn.Linear(5, 4), p)
    with pytest.raises(ValueError, match="DropConnect p"):
        apply_dropconnect(nn.Sequential(nn.Linear(5, 4)), p)
    with pytest.raises(ValueError, match="DropConnect p"):
        dropconnect_moment_inference(x, weight, bias, p, torch.relu, 4)


def test_record_model_hook_applies_dropconnect_where_asked():
    for layers, expected in (
        ("all", {"layers.0.0", "layers.1.0", "output"}),
        ("classifier", {"output"}),
    ):
        config = SimpleNamespace(dropconnect_p=0.5, dropconnect_layers=layers)
        assert RECORD.is_active(config)
        model = build_model("fcnet", 10, (1, 28, 28), norm="none", hidden=(32, 16))
        model = RECORD.model(model, **RECORD.arguments(config))
        swapped = {n for n, m in model.named_modules() if isinstance(m, DropConnectLinear)}
        assert swapped == expected
        assert all(m.p == 0.5 for m in model.modules() if isinstance(m, DropConnectLinear))
    assert not RECORD.is_active(SimpleNamespace(dropconnect_p=1.0, dropconnect_layers="all"))
    p_knob, layers_knob = RECORD.knobs
    assert p_knob.check(1.0, None) is None and p_knob.check(0.0, None) is not None
    assert layers_knob.check("conv", None) is not None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_keeps_the_semantics():
    """As the keep-rate test, on CUDA with the default generator: 2e6 trials, 5 std; backward
    re-draws the forward's masks from the CUDA generator's saved state; manual_seed repeats."""
    trials, p = 500 * 40 * 100, 0.5
    weight = torch.ones(40, 99, device="cuda", requires_grad=True)
    bias = torch.ones(40, device="cuda", requires_grad=True)
    x = torch.ones(500, 99, device="cuda")
    torch.manual_seed(16)
    out = dropconnect_linear(x, weight, bias, p)
    kept = out.double().sum().item()
    assert abs(kept - trials * p) < 5 * math.sqrt(trials * p * (1 - p))
    g_w, g_b = grads(out, [weight, bias], torch.ones_like(out))
    assert g_w.double().sum().item() + g_b.double().sum().item() == kept
    torch.manual_seed(16)
    assert torch.equal(dropconnect_linear(x, weight, bias, p), out)
    for dtype in (torch.float32, torch.bfloat16):
        w, b = layer(9, 4, dtype=dtype)
        v = torch.randn(6, 9, dtype=dtype)
        cpu_eval = dropconnect_linear(v, w, b, p, training=False)
        cuda_eval = dropconnect_linear(v.cuda(), w.cuda(), b.cuda(), p, training=False)
        torch.testing.assert_close(cuda_eval.cpu(), cpu_eval)


def test_record_space_suggests_only_the_keep_probability():
    optuna = pytest.importorskip("optuna")
    trial = optuna.trial.FixedTrial({"dropconnect_p": 0.5})
    assert RECORD.space(trial) == {}
    assert trial.params == {"dropconnect_p": 0.5}
    assert RECORD.grids["dropconnect_grid"].axes == {"dropconnect_p": (0.3, 0.5, 0.7, 0.9, 1.0)}


def test_importing_the_regularizers_does_not_import_dynamo():
    """The compile guard is made on first use: importing dynamo costs every process ~1.6 s
    and ~150 MB, a sweep's driver among them, which never trains."""
    code = "import sys, trainables.regularizers; print('torch._dynamo' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_under_torch_compile_the_layer_runs_eagerly_with_the_same_draws():
    weight = torch.randn(5, 4)
    x = torch.randn(3, 4)
    compiled = torch.compile(lambda x: dropconnect_linear(x, weight, None, 0.5), backend="eager")
    torch.manual_seed(0)
    traced = compiled(x)
    torch.manual_seed(0)
    assert torch.equal(traced, dropconnect_linear(x, weight, None, 0.5))
