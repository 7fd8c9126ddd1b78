"""Every regularizer under ``torch.compile(fullgraph=True)``, and compiled results against eager.

How compiled and eager are compared, and why. Drop-Activation's mask is random and the
compiled graph draws it with its own RNG ops, so two comparisons are made:

- the same program, same seed: inductor with ``fallback_random`` (its random ops call torch's
  generator, as eager does) against ``backend="eager"`` (dynamo's trace run op by op by aten):
  the masks are then the same draws, so outputs, losses and gradients agree to float32
  reassociation in fused kernels (rtol 1e-5, atol 1e-6);
- the compiled mask against the CPU eager one, which draws only the identity positions (a
  different stream by design): the identity count is checked against Binomial(N, 1 - p).

Deterministic parts (VCL's loss, ReLU, the optimizer arithmetic) are compared to plain eager
directly, to the same tolerance. LRD's masks are compared through what must hold whatever they
are: every element equals its base update or its previous value exactly, kept at rate p.

Fullgraph checks use the ``aot_eager`` backend: dynamo must trace the forward with no graph
break and AOTAutograd the backward, without the minutes inductor's code generation takes on
a CPU; one test runs inductor itself, on a small model.
"""

import math

import pytest
import torch
import torch._inductor.config as inductor_config
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.proxy_tensor import make_fx

from trainables.regularizers import (
    DropActivation,
    VarianceConstancy,
    disturb_labels,
    drop_activation,
    vcl_penalty,
)
from trainables.regularizers.lrd import bernoulli_mask, keep_updates_

RTOL, ATOL = 1e-5, 1e-6


def fullgraph(fn):
    return torch.compile(fn, fullgraph=True, backend="aot_eager")


def small_net(norm: nn.Module, act: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), norm, act, nn.Flatten(), nn.Linear(64, 3))
    net(torch.randn(8, 2, 4, 4))
    return net


def loss_and_grads(net: nn.Module, forward, x: torch.Tensor, y: torch.Tensor):
    net.zero_grad(set_to_none=True)
    loss = forward(net, x, y)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in net.parameters()]


def forward_with_penalty(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(net(x), y) + 0.1 * vcl_penalty(net)


BATCH = (torch.randn(8, 2, 4, 4, generator=torch.Generator().manual_seed(1)), torch.arange(8) % 3)


@pytest.mark.parametrize(
    "act",
    [
        pytest.param(lambda: DropActivation(0.8), id="drop_activation"),
        pytest.param(lambda: DropActivation(0.8, inplace=True), id="drop_activation_inplace"),
        pytest.param(lambda: nn.RReLU(1 / 8, 1 / 3), id="rrelu"),
    ],
)
def test_each_activation_compiles_whole_with_its_backward(act):
    net = small_net(nn.BatchNorm2d(4), act())
    x, y = BATCH
    loss, grads = loss_and_grads(net, fullgraph(forward_with_penalty), x, y)
    assert torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("per", ["neuron", "channel"])
def test_vcl_compiles_whole_and_matches_eager(per):
    """VCL is deterministic: its compiled loss and gradients equal eager's to rtol 1e-5."""
    net = small_net(VarianceConstancy(4, n=2, per=per), nn.ReLU())
    x, y = BATCH
    eager = loss_and_grads(net, forward_with_penalty, x, y)
    compiled = loss_and_grads(net, fullgraph(forward_with_penalty), x, y)
    assert torch.allclose(compiled[0], eager[0], rtol=RTOL, atol=ATOL)
    for got, want in zip(compiled[1], eager[1]):
        assert torch.allclose(got, want, rtol=RTOL, atol=ATOL)


def test_drop_activation_function_compiles_whole():
    x = torch.randn(64, 32, requires_grad=True)
    out = fullgraph(lambda t: drop_activation(t, 0.9))(x)
    out.sum().backward()
    assert torch.all((out == torch.relu(x)) | (out == x))
    assert torch.equal(x.grad, (out == x).float())  # identity or x > 0 (no exact zeros here)


def test_compiled_drop_activation_mask_is_bernoulli():
    """On strictly negative inputs an element is identity exactly when out == x: the count over
    N = 200_000 at p = 0.9 is Binomial(N, 0.1), mean 20_000, sd 134.2; allow 5 sd."""
    torch.manual_seed(2)
    x = -(1.0 + torch.rand(200_000))
    compiled = torch.compile(lambda t: drop_activation(t, 0.9), fullgraph=True, backend="eager")
    identity = (compiled(x) == x).sum().item()
    assert abs(identity - 20_000) < 5 * math.sqrt(200_000 * 0.1 * 0.9)


def test_inductor_matches_eager_with_the_same_seed():
    """Drop-Activation and VCL in one small net, compiled by inductor with its random ops drawing
    torch's stream (``fallback_random``), against the same trace run eagerly under the same seed:
    the same masks, so loss and gradients agree to rtol 1e-5 over three SGD steps."""
    trajectories = []
    for backend in ("eager", "inductor"):
        net = small_net(VarianceConstancy(4, n=2), DropActivation(0.7))
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        step = torch.compile(forward_with_penalty, backend=backend, fullgraph=True)
        torch.manual_seed(3)
        losses, grads = [], []
        with inductor_config.patch(fallback_random=True):
            for _ in range(3):
                loss, g = loss_and_grads(net, step, *BATCH)
                optimizer.step()
                losses.append(loss)
                grads.append(g)
        trajectories.append((torch.stack(losses), grads))
    (eager_losses, eager_grads), (losses, grads) = trajectories
    assert torch.allclose(losses, eager_losses, rtol=RTOL, atol=ATOL)
    for step_grads, step_eager in zip(grads, eager_grads):
        for got, want in zip(step_grads, step_eager):
            assert torch.allclose(got, want, rtol=RTOL, atol=ATOL)


def test_lrd_update_compiles_whole_and_keeps_exact_endpoints():
    """Each element is exactly its base update or its previous value; kept at rate p = 0.5:
    N = 40_000 elements, kept count Binomial(N, 0.5), sd 100; allow 5 sd."""
    torch.manual_seed(4)
    new = [torch.randn(200, 100), torch.randn(20_000)]
    previous = [p + 1.0 for p in new]
    params = [p.clone() for p in new]
    fullgraph(keep_updates_)(params, previous, 0.5)
    kept = 0
    for param, base, before in zip(params, new, previous):
        assert torch.all((param == base) | (param == before))
        kept += (param == base).sum().item()
    assert abs(kept - 20_000) < 5 * 100


def test_gradient_dropout_mask_and_label_noise_compile_whole():
    torch.manual_seed(5)
    mask = fullgraph(lambda t: bernoulli_mask(t, 0.3))(torch.empty(10_000))
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert abs(mask.sum().item() - 3000) < 5 * math.sqrt(10_000 * 0.3 * 0.7)
    y = torch.arange(1000) % 10
    noisy = fullgraph(lambda t: disturb_labels(t, 10, 0.2))(y)
    assert abs((noisy != y).sum().item() - 200) < 5 * math.sqrt(1000 * 0.2 * 0.8)


# Ops that read data to decide a shape, or copy a value to the host: none may appear on the
# accelerator path (on the CPU path the sparse positions are exactly such a thing, by design).
DATA_DEPENDENT = {"nonzero", "masked_select", "index", "index_put", "_local_scalar_dense", "item"}


def traced_ops(fn, *args, mode: str) -> set[str]:
    graph = make_fx(fn, tracing_mode=mode)(*args).graph
    return {str(node.target).split(".")[1] for node in graph.nodes if node.op == "call_function"}


def forward_and_backward(x: torch.Tensor, grad: torch.Tensor):
    x = x.detach().requires_grad_()
    out = drop_activation(x, 0.9)
    return out, torch.autograd.grad(out, x, grad)[0]


def _fake_cuda_draws_without_a_gpu() -> bool:
    """Whether a random draw on a fake CUDA tensor traces here: torch 2.6 initialises CUDA for
    it (and fails without a GPU); 2.11 and later do not."""
    try:
        with FakeTensorMode():
            torch.empty(1, device="cuda").uniform_()
    except RuntimeError:
        return False
    return True


def assert_mask_drawn_in_the_graph(ops: set[str]) -> None:
    assert {"uniform_", "where"} <= ops
    assert not ops & DATA_DEPENDENT, ops & DATA_DEPENDENT


@pytest.mark.skipif(
    not _fake_cuda_draws_without_a_gpu(), reason="this torch needs a GPU to trace a fake CUDA draw"
)
def test_the_cuda_path_draws_its_mask_in_the_graph():
    """On a (fake) CUDA tensor Drop-Activation is rand, compare and where: no nonzero, no
    indexing by data, no host read."""
    with FakeTensorMode():
        fake_cuda = torch.empty(8, 16, device="cuda")
    assert_mask_drawn_in_the_graph(
        traced_ops(lambda t: drop_activation(t, 0.9), fake_cuda, mode="fake")
    )


def test_accelerator_path_draws_its_mask_in_the_graph_with_static_shapes():
    """Off the CPU (here meta tensors, no GPU needed) Drop-Activation is the same rand, compare
    and where forward and backward; traced with symbolic shapes, no output size depends on the
    data."""
    meta = torch.empty(8, 16, device="meta")
    assert_mask_drawn_in_the_graph(traced_ops(forward_and_backward, meta, meta, mode="fake"))
    assert_mask_drawn_in_the_graph(
        traced_ops(lambda t: drop_activation(t, 0.9), meta, mode="symbolic")
    )
