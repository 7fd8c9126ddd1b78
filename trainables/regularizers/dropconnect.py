"""DropConnect (Wan, Zeiler, Zhang, LeCun & Fergus, ICML 2013, section 3).

Training. A fully connected layer ``r = a(u)`` computes

    u = (M ⋆ W) v,   M_ij ~ Bernoulli(p)   (section 3)

where ``v`` includes the bias input (the bias is a column of ``W`` on a constant
input 1, so the biases are masked too) and ``M`` is drawn independently *for
every example* of the minibatch at every forward pass ("a different
connectivity for each example seen"): a mask shared by the batch would be a
different method. ``p`` is the keep probability (the paper uses 0.5); nothing
is rescaled by ``1/p``.

Inference. ``eval()`` uses the paper's *mean inference*, the dropout-style
approximation ``E_M[a((M ⋆ W) v)] ≈ a(E_M[(M ⋆ W) v]) = a(p W v)``: the layer
returns ``u = p (W v + b)``, the exact mean of ``u``.
:func:`dropconnect_moment_inference` is the paper's own inference (Algorithm 2):
match ``u`` of each unit by a Gaussian with the exact moments

    μ = E_M[u] = p W v,   σ² = V_M[u] = p (1 − p) (W ⋆ W)(v ⋆ v)

(bias folded in as above), draw ``Z`` samples ``u_z ~ N(μ, σ²)`` per unit and
return ``(1/Z) Σ_z a(u_z)``; it needs the nonlinearity ``a`` that follows the layer.

``p = 1`` is exactly ``F.linear``, in training and in eval.

Sampling. Example ``n``'s mask over ``[W | b]`` (``out × (in + 1)``, or
``out × in`` without a bias) keeps an element when a float32 ``torch.rand``
draw is below ``p``: Bernoulli(p) up to the uniform's resolution (CPU draws are
multiples of 2**-24, so ``p = 0.5`` is exact and any ``p`` is within 6e-8).
Masks are drawn example after example, row-major, one ``torch.rand`` call per
chunk of examples, from ``generator`` (or the default generator of the input's
device, so ``torch.manual_seed`` makes runs repeatable), in float32 whatever
the layer's dtype. On CPU torch fills uniforms serially, so the masks do not
depend on the chunking; on CUDA the chunking is part of the stream.

Cost. Per-example masks make the layer an elementwise product and a batched
matrix-vector product, ``N · out · (in + 1)`` random numbers, multiplies and
adds, instead of one GEMM: much slower than ``nn.Linear`` (on a CPU the random
numbers are most of the cost). Memory is bounded: examples are processed in
chunks whose mask holds at most ``max_mask_elements`` (default 2**22) elements
(at least one example per chunk), and nothing of size ``N × out × in`` is kept
for backward: the backward pass re-draws each chunk's masks from the generator
state saved at the forward (random numbers are drawn twice per step, the
generator itself advances once).
Gradients reach only the kept weights of each example:
``∂L/∂W = Σ_n M_n ⋆ (g_n v_nᵀ)``, ``∂L/∂v_n = (M_n ⋆ W)ᵀ g_n``. The training path
is opaque to ``torch.compile`` (a graph break around each layer: an in-graph form would keep
every example's mask, ``N · out · in`` elements, for backward), has no double backward and
does not run under ``torch.func.vmap``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn.parameter import is_lazy

from trainables.methods import Grid, Interval, Knob, Method, OneOf

from ._wrapper import check_keep_probability
from .replace import _included

MAX_MASK_ELEMENTS = 2**22


def _check_p(p: float) -> float:
    return check_keep_probability(p, "DropConnect")


def _default_generator(device: torch.device) -> torch.Generator:
    """The generator ``torch.rand(..., device=device)`` uses, the one ``manual_seed`` seeds."""
    if device.type == "cpu":
        return torch.default_generator
    backend = getattr(torch, device.type)
    index = device.index if device.index is not None else backend.current_device()
    return backend.default_generators[index]


def _examples_per_chunk(out_features: int, in_aug: int, max_mask_elements: int) -> int:
    return max(1, max_mask_elements // max(1, out_features * in_aug))


def _chunk_masks(
    generator: torch.Generator,
    examples: int,
    shape: tuple[int, int],
    p: float,
    per_chunk: int,
    dtype: torch.dtype,
) -> Iterator[tuple[slice, Tensor]]:
    """Yield (examples of the chunk, its 0/1 masks of shape (chunk, out, in + 1) in ``dtype``)."""
    for start in range(0, examples, per_chunk):
        stop = min(start + per_chunk, examples)
        keep = torch.rand((stop - start, *shape), generator=generator, device=generator.device)
        keep.lt_(p)
        yield slice(start, stop), keep if keep.dtype == dtype else keep.to(dtype)


def _augment(x: Tensor, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor]:
    """Fold the bias into W: ``v = [x, 1]`` and ``W = [W | b]``."""
    if bias is None:
        return x, weight
    ones = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
    return torch.cat([x, ones], dim=1), torch.cat([weight, bias.unsqueeze(1)], dim=1)


class _DropConnectFunction(torch.autograd.Function):
    """u_n = (M_n ⋆ W) v_n with a fresh mask M_n per example; backward re-draws the masks."""

    @staticmethod
    def forward(ctx, x, weight, bias, p, generator, max_mask_elements):
        v, w = _augment(x, weight, bias)
        per_chunk = _examples_per_chunk(w.shape[0], w.shape[1], max_mask_elements)
        ctx.state = generator.get_state()
        ctx.generator_device = generator.device
        ctx.p, ctx.per_chunk, ctx.has_bias = p, per_chunk, bias is not None
        ctx.save_for_backward(v, w)
        out = torch.empty(x.shape[0], w.shape[0], dtype=w.dtype, device=x.device)
        for rows, keep in _chunk_masks(generator, x.shape[0], w.shape, p, per_chunk, w.dtype):
            out[rows] = torch.bmm(keep.mul_(w), v[rows].unsqueeze(2)).squeeze(2)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        v, w = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        generator = torch.Generator(device=ctx.generator_device)
        generator.set_state(ctx.state)
        grad_v = torch.empty_like(v) if need_x else None
        accumulate = torch.float32 if w.dtype in (torch.float16, torch.bfloat16) else w.dtype
        grad_w = (
            torch.zeros(w.shape, dtype=accumulate, device=w.device) if need_w or need_b else None
        )
        grad_out = grad_out.to(w.dtype)
        for rows, keep in _chunk_masks(
            generator, v.shape[0], w.shape, ctx.p, ctx.per_chunk, w.dtype
        ):
            g = grad_out[rows]
            if grad_w is not None:  # Σ_n M_n ⋆ (g_n v_nᵀ)
                outer = g.unsqueeze(2) * v[rows].unsqueeze(1)
                grad_w += outer.mul_(keep).sum(0, dtype=accumulate)
            if grad_v is not None:  # (M_n ⋆ W)ᵀ g_n
                grad_v[rows] = torch.bmm(g.unsqueeze(1), keep.mul_(w)).squeeze(1)
        in_features = w.shape[1] - int(ctx.has_bias)
        grad_x = grad_v[:, :in_features] if grad_v is not None else None
        grad_weight = grad_w[:, :in_features].to(w.dtype) if need_w else None
        grad_bias = grad_w[:, in_features].to(w.dtype) if need_b and ctx.has_bias else None
        return grad_x, grad_weight, grad_bias, None, None, None


# Kept out of compiled graphs (its generator cannot be traced), by torch's lazy form of
# ``torch.compiler.disable``: the eager decorator imports dynamo (1.6 s, 150 MB) in every process
# that imports this module, among them each sweep's driver, which never trains.
@torch._disable_dynamo
def _train_forward(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    p: float,
    generator: torch.Generator | None,
    max_mask_elements: int,
) -> Tensor:
    if generator is None:
        generator = _default_generator(x.device)
    elif generator.device.type != x.device.type:
        raise ValueError(f"generator is on {generator.device} but the input is on {x.device}")
    rows = x.reshape(-1, x.shape[-1]) if x.dim() != 2 else x
    if rows.dtype != weight.dtype:  # autocast does not reach a custom Function: the weights' dtype
        rows = rows.to(weight.dtype)
    out = _DropConnectFunction.apply(rows, weight, bias, p, generator, max_mask_elements)
    return out.reshape(*x.shape[:-1], weight.shape[0])


def dropconnect_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    p: float = 0.5,
    training: bool = True,
    generator: torch.Generator | None = None,
    *,
    max_mask_elements: int = MAX_MASK_ELEMENTS,
) -> Tensor:
    """A linear layer under DropConnect with keep probability ``p`` (section 3).

    ``x`` is ``(N, in)`` or ``(N, *, in)``; every row of the flattened leading
    dimensions is an example with its own mask. Training: ``u_n = (M_n ⋆ W) v_n``
    with ``M_n ~ Bernoulli(p)`` over ``[W | b]``. Eval: mean inference,
    ``u = p (W v + b)``. ``p = 1``: ``F.linear(x, weight, bias)`` exactly.
    """
    p = _check_p(p)
    if p == 1.0:
        return F.linear(x, weight, bias)
    if not training:
        return F.linear(x, weight * p, None if bias is None else bias * p)
    if isinstance(max_mask_elements, bool) or not isinstance(max_mask_elements, int):
        raise ValueError(f"max_mask_elements must be a positive int, got {max_mask_elements!r}")
    if max_mask_elements < 1:
        raise ValueError(f"max_mask_elements must be a positive int, got {max_mask_elements!r}")
    return _train_forward(x, weight, bias, p, generator, max_mask_elements)


def dropconnect_moments(
    x: Tensor, weight: Tensor, bias: Tensor | None, p: float
) -> tuple[Tensor, Tensor]:
    """The exact mean and variance of each unit's ``u`` under training masks (Algorithm 2, l. 2).

    ``μ = p W v`` and ``σ² = p (1 − p) (W ⋆ W)(v ⋆ v)``, the bias a weight on the input 1.
    """
    p = _check_p(p)
    mean = F.linear(x, weight * p, None if bias is None else bias * p)
    var = F.linear(x * x, weight * weight, None if bias is None else bias * bias) * (p * (1 - p))
    return mean, var


def dropconnect_moment_inference(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    p: float,
    activation: Callable[[Tensor], Tensor],
    samples: int,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The paper's inference (Algorithm 2): ``(1/Z) Σ_z a(u_z)``, ``u_z ~ N(μ, σ²)`` per unit.

    ``activation`` is ``a``, the nonlinearity after the layer; ``samples`` is
    ``Z``. Sample ``z`` is ``u_z = μ + σ ε_z`` with ``ε_z`` one ``torch.randn`` of
    ``μ``'s shape from ``generator`` (default: the device's), in order of ``z``;
    the sum is taken in at least float32. ``p = 1`` gives ``a(W v + b)`` exactly.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive int, got {samples!r}")
    mean, var = dropconnect_moments(x, weight, bias, p)
    if p == 1.0:
        return activation(mean)
    std = var.sqrt()
    total = torch.zeros_like(mean, dtype=torch.promote_types(mean.dtype, torch.float32))
    for _ in range(samples):
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        total += activation(torch.addcmul(mean, std, noise))
    return (total / samples).to(mean.dtype)


class DropConnectLinear(nn.Module):
    """An ``nn.Linear`` under DropConnect: the module form of :func:`dropconnect_linear`.

    It shares ``linear``'s weight and bias (the same ``Parameter`` objects), so
    the model's initialisation is kept, an optimizer built before the swap still
    updates them, and ``state_dict`` keys (``weight``, ``bias``) match ``nn.Linear``'s.
    """

    def __init__(self, linear: nn.Linear, p: float = 0.5) -> None:
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"DropConnectLinear wraps an nn.Linear, got {type(linear).__name__}")
        if is_lazy(linear.weight):
            raise ValueError("DropConnectLinear needs a materialised nn.Linear, not a LazyLinear")
        self.p = _check_p(p)
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias

    def forward(self, x: Tensor) -> Tensor:
        return dropconnect_linear(x, self.weight, self.bias, self.p, self.training)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, p={self.p}"
        )


def apply_dropconnect(model: nn.Module, p: float, include: Sequence[str] | None = None) -> int:
    """Replace every ``nn.Linear`` of ``model`` by a :class:`DropConnectLinear`, in place.

    ``include`` limits the swap to modules whose qualified names start with one
    of its prefixes (as :func:`replace_activations`). The ``out_proj`` of an
    ``nn.MultiheadAttention`` is left alone: that module reads its weights
    without calling it. Returns how many were replaced; raises ``ValueError`` if none.
    """
    p = _check_p(p)
    if isinstance(include, str):
        include = (include,)
    skipped = {
        f"{name}.{child}" if name else child
        for name, module in model.named_modules()
        if isinstance(module, nn.MultiheadAttention)
        for child, _ in module.named_children()
    }
    matches = [
        name
        for name, module in model.named_modules()
        if name
        and isinstance(module, nn.Linear)
        and name not in skipped
        and _included(name, include)
    ]
    for name in matches:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, DropConnectLinear(getattr(parent, child), p))
    if not matches:
        raise ValueError(
            "apply_dropconnect found no nn.Linear modules"
            + (f" under {list(include)}" if include is not None else "")
            + f" in {type(model).__name__}"
        )
    return len(matches)


def last_linear(model: nn.Module) -> str:
    """The qualified name of ``model``'s last ``nn.Linear`` in module order (its classifier)."""
    names = [n for n, m in model.named_modules() if n and isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no nn.Linear module")
    return names[-1]


def _dropconnect_model(model: nn.Module, p: float, layers: str) -> nn.Module:
    include = None if layers == "all" else (last_linear(model),)
    apply_dropconnect(model, p, include=include)
    return model


def _space(trial: Any) -> dict[str, Any]:
    trial.suggest_float("dropconnect_p", 0.3, 1.0)
    return {}


RECORD = Method(
    name="dropconnect",
    slot="additive",
    summary=(
        "DropConnect (Wan et al. 2013): each weight of every linear layer kept with "
        "probability p, per example"
    ),
    knobs=(
        Knob(
            "dropconnect_p",
            1.0,
            Interval(0, 1, closed="right"),
            argument="p",
            help="keep probability of each weight; 1 = off",
        ),
        Knob(
            "dropconnect_layers",
            "all",
            OneOf(("all", "classifier")),
            argument="layers",
            help="which nn.Linear layers: all, or only the classifier (the model's last one)",
        ),
    ),
    active=lambda k: k["dropconnect_p"] < 1,
    model=_dropconnect_model,
    space=_space,
    space_description="p ~ U[0.3, 1.0]",
    grids={
        "dropconnect_grid": Grid(
            "keep probability p in {0.3, 0.5, 0.7, 0.9, 1.0}",
            {"dropconnect_p": (0.3, 0.5, 0.7, 0.9, 1.0)},
        )
    },
    paper="Wan et al., ICML 2013",
)
