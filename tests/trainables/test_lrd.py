"""Learning Rate Dropout against the paper's Algorithm 1, and dropout on the gradient."""

import copy
import math

import pytest
import torch
from torch import nn

from trainables.regularizers import GradientDropout, LearningRateDropout

OPTIMIZERS = {
    "sgdm": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4),
    "rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=1e-3),
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-3),
    "amsgrad": lambda ps: torch.optim.Adam(ps, lr=1e-3, amsgrad=True),
    "radam": lambda ps: torch.optim.RAdam(ps, lr=3e-2),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=1e-2),
}


def small_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 64), nn.Tanh(), nn.Linear(64, 5))


def train_steps(model, optimizer, steps: int, seed: int = 100) -> None:
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(32, 20, generator=g)
        y = torch.randint(0, 5, (32,), generator=g)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


def fixed_gradients(model, step: int) -> None:
    g = torch.Generator().manual_seed(step)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_lrd_with_p_one_matches_base_optimizer_bit_for_bit(name):
    base_model, lrd_model = small_model(), small_model()
    train_steps(base_model, OPTIMIZERS[name](base_model.parameters()), 10)
    train_steps(lrd_model, LearningRateDropout(OPTIMIZERS[name](lrd_model.parameters()), p=1.0), 10)
    for a, b in zip(base_model.parameters(), lrd_model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_element_takes_the_base_step_or_stays(name):
    """W_t = W_{t-1} + D ∘ (W_base - W_{t-1}) (Alg. 1, l. 9-12), exactly, element by element."""
    lrd_model = small_model()
    base_model = copy.deepcopy(lrd_model)
    before = [p.detach().clone() for p in lrd_model.parameters()]
    fixed_gradients(lrd_model, 0)
    fixed_gradients(base_model, 0)
    LearningRateDropout(OPTIMIZERS[name](lrd_model.parameters()), p=0.5).step()
    OPTIMIZERS[name](base_model.parameters()).step()
    any_moved = any_stayed = False
    for w, w_base, w_prev in zip(lrd_model.parameters(), base_model.parameters(), before):
        moved, stayed = w == w_base, w == w_prev
        assert torch.all(moved | stayed)
        any_moved |= bool(moved.any())
        any_stayed |= bool((stayed & ~moved).any())
    assert any_moved and any_stayed


def test_kept_fraction_is_binomial_p():
    """Moved elements ~ Binomial(N, p): N = 20*64 + 64 + 64*5 + 5 = 1669 per step over 20 steps
    (33_380 draws), p = 0.3: mean 10_014, std sqrt(33_380 * 0.21) = 83.7; allow 5 std."""
    model = small_model()
    opt = LearningRateDropout(torch.optim.SGD(model.parameters(), lr=0.1), p=0.3)
    moved = 0
    for step in range(20):
        before = [p.detach().clone() for p in model.parameters()]
        fixed_gradients(model, step)
        opt.step()
        moved += sum((p != b).sum().item() for p, b in zip(model.parameters(), before))
    assert abs(moved - 10_014) < 5 * 83.7


@pytest.mark.parametrize("name", ["sgdm", "adam", "rmsprop"])
def test_optimizer_state_accumulates_the_full_gradient(name):
    """Momentum and moments never see the mask: with the same gradient sequence the base's
    state is identical with and without LRD (weight decay off, since it reads the weights)."""
    makers = {
        "sgdm": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
        "adam": OPTIMIZERS["adam"],
        "rmsprop": OPTIMIZERS["rmsprop"],
    }
    plain_model, lrd_model = small_model(), small_model()
    plain = makers[name](plain_model.parameters())
    lrd = LearningRateDropout(makers[name](lrd_model.parameters()), p=0.5)
    for step in range(5):
        fixed_gradients(plain_model, step)
        fixed_gradients(lrd_model, step)
        plain.step()
        lrd.step()
    for p_plain, p_lrd in zip(plain_model.parameters(), lrd_model.parameters()):
        state_plain, state_lrd = plain.state[p_plain], lrd.state[p_lrd]
        for key, value in state_plain.items():
            assert torch.equal(value, state_lrd[key]), key


@pytest.mark.parametrize("wrapper", [LearningRateDropout, GradientDropout])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_resumed_run_continues_exactly(wrapper, name):
    model = small_model()
    opt = wrapper(OPTIMIZERS[name](model.parameters()), p=0.5)
    train_steps(model, opt, 3, seed=1)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    train_steps(model, opt, 4, seed=2)

    torch.manual_seed(12345)
    resumed_model = small_model(seed=99)
    resumed_opt = wrapper(OPTIMIZERS[name](resumed_model.parameters()), p=0.5)
    resumed_model.load_state_dict(saved_model)
    resumed_opt.load_state_dict(saved_opt)
    train_steps(resumed_model, resumed_opt, 4, seed=2)
    for a, b in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(a, b)


def test_same_seed_same_trajectory():
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = small_model()
        train_steps(model, LearningRateDropout(torch.optim.Adam(model.parameters()), p=0.5), 5)
        runs.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs))


def test_explicit_generator_drives_the_mask():
    results = []
    for _ in range(2):
        model = small_model()
        gen = torch.Generator().manual_seed(42)
        opt = LearningRateDropout(torch.optim.SGD(model.parameters(), lr=0.1), 0.5, gen)
        torch.manual_seed(len(results))
        train_steps(model, opt, 3)
        results.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_lr_scheduler_drives_the_base_optimizer():
    model = small_model()
    base = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    opt = LearningRateDropout(base, p=0.5)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2], gamma=0.1)
    for _ in range(3):
        train_steps(model, opt, 1)
        scheduler.step()
    assert base.param_groups[0]["lr"] == pytest.approx(0.01)
    assert opt.param_groups is base.param_groups


def test_zero_grad_clears_the_gradients():
    model = small_model()
    opt = LearningRateDropout(torch.optim.SGD(model.parameters(), lr=0.1))
    fixed_gradients(model, 0)
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_closure_is_supported():
    model = small_model()
    opt = LearningRateDropout(torch.optim.SGD(model.parameters(), lr=0.1), p=0.5)
    x, y = torch.randn(8, 20), torch.randint(0, 5, (8,))

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    assert math.isfinite(opt.step(closure).item())


@pytest.mark.parametrize("wrapper", [LearningRateDropout, GradientDropout])
@pytest.mark.parametrize("p", [0.0, -0.5, 1.01, float("nan"), True])
def test_invalid_p_is_rejected_naming_p(wrapper, p):
    with pytest.raises(ValueError, match="p="):
        wrapper(torch.optim.SGD(small_model().parameters(), lr=0.1), p=p)


def test_wrapping_something_else_is_a_type_error():
    with pytest.raises(TypeError, match="Optimizer"):
        LearningRateDropout(small_model().parameters(), p=0.5)


def test_loading_a_plain_optimizer_state_is_rejected():
    model = small_model()
    plain = torch.optim.SGD(model.parameters(), lr=0.1)
    opt = LearningRateDropout(torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match="LearningRateDropout"):
        opt.load_state_dict(plain.state_dict())


class TestGradientDropout:
    def test_masks_the_gradient_before_the_step(self):
        """Plain SGD with lr 1 moves each element by -G or not at all; both happen."""
        model = small_model()
        before = [p.detach().clone() for p in model.parameters()]
        fixed_gradients(model, 0)
        grads = [p.grad.clone() for p in model.parameters()]
        GradientDropout(torch.optim.SGD(model.parameters(), lr=1.0), p=0.5).step()
        outcomes = []
        for w, w0, g in zip(model.parameters(), before, grads):
            full, none = torch.isclose(w, w0 - g), w == w0
            assert torch.all(full | none)
            outcomes.append(full & ~none)
        moved = torch.cat([o.view(-1) for o in outcomes])
        assert moved.any() and not moved.all()

    def test_momentum_sees_the_masked_gradient(self):
        model = small_model()
        opt = GradientDropout(torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), p=0.5)
        fixed_gradients(model, 0)
        opt.step()
        first = next(iter(model.parameters()))
        assert (opt.state[first]["momentum_buffer"] == 0).any()

    def test_p_one_matches_base(self):
        a, b = small_model(), small_model()
        train_steps(a, torch.optim.Adam(a.parameters()), 5)
        train_steps(b, GradientDropout(torch.optim.Adam(b.parameters()), p=1.0), 5)
        assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
