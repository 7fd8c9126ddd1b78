"""The Variance Constancy Loss against the paper's eq. 17 and section 2.4."""

import numpy as np
import pytest
import torch
from torch import nn

from trainables.regularizers import VarianceConstancy, clip_grad_norm_per_layer_, vcl_penalty


def eq17(v1: np.ndarray, v2: np.ndarray, beta: np.ndarray) -> float:
    return float(np.mean((1.0 - v1 / (v2 + beta)) ** 2))


def test_loss_is_eq17_on_features():
    torch.manual_seed(0)
    x = torch.randn(10, 5, dtype=torch.float64)
    vcl = VarianceConstancy(5, n=3).double()
    vcl(x)
    a = x.numpy()
    expected = eq17(a[:3].var(0, ddof=1), a[3:6].var(0, ddof=1), vcl.beta.detach().numpy())
    assert vcl.last_loss.item() == pytest.approx(expected, rel=1e-12)


def test_per_channel_pools_the_subset_examples_and_positions():
    torch.manual_seed(1)
    x = torch.randn(6, 4, 3, 3, dtype=torch.float64)
    vcl = VarianceConstancy(4, n=2, beta_init=0.5, per="channel").double()
    vcl(x)
    a = x.numpy()
    per_channel = [a[s].transpose(1, 0, 2, 3).reshape(4, -1) for s in (slice(0, 2), slice(2, 4))]
    v1, v2 = (c.var(1, ddof=1) for c in per_channel)
    assert vcl.beta.shape == (4,)
    assert vcl.last_loss.item() == pytest.approx(eq17(v1, v2, vcl.beta.detach().numpy()), rel=1e-12)


def test_per_neuron_treats_every_channel_position_as_a_neuron():
    torch.manual_seed(2)
    x = torch.randn(8, 4, 3, 3, dtype=torch.float64)
    vcl = VarianceConstancy(4, n=4, per="neuron").double()
    vcl(x)
    a = x.numpy()
    expected = eq17(a[:4].var(0, ddof=1), a[4:8].var(0, ddof=1), vcl.beta.detach().numpy())
    assert vcl.beta.shape == (4, 3, 3)
    assert vcl.last_loss.item() == pytest.approx(expected, rel=1e-12)


def test_only_the_first_two_subsets_count():
    torch.manual_seed(3)
    x = torch.randn(9, 5)
    vcl = VarianceConstancy(5, n=2)
    vcl(x)
    first = vcl.last_loss.clone()
    x[4:] = 100 * torch.randn(5, 5)
    vcl(x)
    assert torch.equal(vcl.last_loss, first)


def test_per_neuron_is_the_default_as_in_the_reference_code():
    vcl = VarianceConstancy(4)
    assert vcl.per == "neuron" and vcl.has_uninitialized_params()
    vcl(torch.randn(6, 4, 3, 3))
    assert vcl.beta.shape == (4, 3, 3)


@pytest.mark.parametrize("per", ["channel", "neuron"])
def test_beta_starts_at_beta_init_and_stays_positive(per):
    vcl = VarianceConstancy(3, beta_init=2.5, per=per)
    vcl(torch.randn(4, 3))  # per="neuron" materialises beta from the first input
    assert torch.allclose(vcl.beta, torch.full((3,), 2.5), atol=1e-6)
    with torch.no_grad():
        vcl.raw_beta.fill_(-80.0)
    assert torch.all(vcl.beta > 0)
    x = torch.zeros(4, 3)
    x[:2] = torch.randn(2, 3)
    vcl(x)
    assert torch.isfinite(vcl.last_loss)


def test_beta_is_learned_and_gradient_reaches_the_input():
    x = torch.randn(8, 6, requires_grad=True)
    vcl = VarianceConstancy(6, n=4)
    vcl(x)
    vcl_penalty(vcl).backward()
    assert vcl.raw_beta.grad is not None and vcl.raw_beta.grad.abs().sum() > 0
    assert x.grad is not None and x.grad[:8].abs().sum() > 0


def test_layer_is_identity_in_both_modes():
    x = torch.randn(4, 3, requires_grad=True)
    vcl = VarianceConstancy(3)
    out = vcl(x)
    assert torch.equal(out, x) and out.data_ptr() == x.data_ptr()
    vcl.eval()
    assert vcl(x) is x


@pytest.mark.parametrize("per", ["channel", "neuron"])
def test_backward_equals_plain_autograd_through_the_loss(per):
    """The custom backward (gradient added only to the 2n rows) against autograd on eq. 17."""
    torch.manual_seed(6)
    x = torch.randn(10, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    vcl = VarianceConstancy(4, n=3, per=per).double()
    vcl(x)
    upstream = torch.randn_like(x)
    out = vcl(x)
    total = (out * upstream).sum() + 0.7 * vcl_penalty(vcl)
    grad_x, grad_beta = torch.autograd.grad(total, (x, vcl.raw_beta))
    plain = (x * upstream).sum() + 0.7 * vcl.layer_loss(x)
    ref_x, ref_beta = torch.autograd.grad(plain, (x, vcl.raw_beta))
    assert torch.allclose(grad_x, ref_x, rtol=1e-12, atol=1e-12)
    assert torch.allclose(grad_beta, ref_beta, rtol=1e-12, atol=1e-12)


def test_without_the_penalty_in_the_loss_backward_is_the_identity():
    x = torch.randn(6, 3, requires_grad=True)
    upstream = torch.randn(6, 3)
    (grad,) = torch.autograd.grad(VarianceConstancy(3)(x), x, upstream)
    assert torch.equal(grad, upstream)


def test_eval_records_nothing():
    vcl = VarianceConstancy(3).eval()
    vcl(torch.randn(2, 3))
    assert vcl.last_loss is None
    assert vcl_penalty(vcl).item() == 0.0


def test_eval_forward_does_not_overwrite_the_training_loss():
    vcl = VarianceConstancy(3)
    vcl(torch.randn(4, 3))
    recorded = vcl.last_loss
    vcl.eval()
    vcl(torch.randn(4, 3) * 50)
    assert vcl_penalty(vcl) is not None and torch.equal(vcl_penalty(vcl), recorded)


def test_penalty_sums_layers_and_is_zero_without_vcl():
    torch.manual_seed(4)
    model = nn.Sequential(
        nn.Linear(5, 7), VarianceConstancy(7), nn.ReLU(), nn.Linear(7, 3), VarianceConstancy(3)
    )
    model(torch.randn(6, 5))
    losses = [m.last_loss for m in model if isinstance(m, VarianceConstancy)]
    assert torch.equal(vcl_penalty(model), losses[0] + losses[1])
    plain = vcl_penalty(nn.Linear(2, 2))
    assert plain.shape == () and plain.item() == 0.0


def test_batch_smaller_than_2n_is_rejected_naming_n_and_batch():
    vcl = VarianceConstancy(3, n=5)
    with pytest.raises(ValueError, match=r"n=5.*batch size 9"):
        vcl(torch.randn(9, 3))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n": 1}, "n=1"),
        ({"n": 2.5}, "n=2.5"),
        ({"beta_init": 0.0}, "beta_init"),
        ({"per": "pixel"}, "per"),
    ],
)
def test_bad_options_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VarianceConstancy(4, **kwargs)


def test_wrong_channel_count_is_rejected():
    with pytest.raises(ValueError, match="num_features=4"):
        VarianceConstancy(4)(torch.randn(6, 5))


def test_state_dict_round_trip_including_lazy_per_neuron_beta():
    source = VarianceConstancy(2, per="neuron")
    source(torch.randn(4, 2, 3, 3))
    with torch.no_grad():
        source.raw_beta.normal_()
    target = VarianceConstancy(2, per="neuron")
    target.load_state_dict(source.state_dict())
    assert torch.equal(target.beta, source.beta)


class TestPerLayerClipping:
    def model_with_grads(self, scales):
        model = nn.Sequential(*(nn.Linear(3, 3) for _ in scales))
        for layer, scale in zip(model, scales):
            layer.weight.grad = torch.full_like(layer.weight, scale)
            layer.bias.grad = torch.full_like(layer.bias, scale)
        return model

    def test_each_layer_is_clipped_on_its_own(self):
        model = self.model_with_grads([5.0, 0.1])
        norms = clip_grad_norm_per_layer_(model, max_norm=1.0)
        assert norms.tolist() == pytest.approx([5.0 * 12**0.5, 0.1 * 12**0.5])
        layer_norm = torch.cat([model[0].weight.grad.view(-1), model[0].bias.grad])
        assert layer_norm.norm().item() == pytest.approx(1.0, rel=1e-5)
        assert torch.all(model[1].weight.grad == 0.1)

    def test_matches_torch_clipping_layer_by_layer(self):
        torch.manual_seed(7)
        model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Linear(6, 3, bias=False))
        grads = [3 * torch.randn_like(p) for p in model.parameters()]
        for p, g in zip(model.parameters(), grads):
            p.grad = g.clone()
        expected_norms = []
        reference = [g.clone() for g in grads]
        start = 0
        for module in model:
            count = len(list(module.parameters(recurse=False)))
            layer = reference[start : start + count]
            total = torch.linalg.vector_norm(torch.cat([g.view(-1) for g in layer])).item()
            for g in layer:
                g.mul_(min(1.0, 1.0 / (total + 1e-6)))
            expected_norms.append(total)
            start += count
        norms = clip_grad_norm_per_layer_(model, 1.0)
        assert norms.tolist() == pytest.approx(expected_norms, rel=1e-6)
        for p, g in zip(model.parameters(), reference):
            assert torch.allclose(p.grad, g, rtol=1e-6, atol=1e-7)

    def test_invalid_max_norm(self):
        with pytest.raises(ValueError, match="max_norm"):
            clip_grad_norm_per_layer_(nn.Linear(2, 2), 0.0)


def test_runs_under_torch_compile():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(4, 8), VarianceConstancy(8, n=2), nn.ReLU(), nn.Linear(8, 2))
    compiled = torch.compile(model, backend="eager")
    x = torch.randn(6, 4)
    compiled(x)
    compiled_loss = vcl_penalty(model)
    model(x)
    assert torch.allclose(compiled_loss, vcl_penalty(model))
