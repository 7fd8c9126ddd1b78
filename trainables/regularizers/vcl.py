"""The Variance Constancy Loss (Littwin & Wolf; papers.md, VCL eq. 17 and section 2.4).

:class:`VarianceConstancy` sits where batchnorm would, before the activation,
and returns its input unchanged. In training it records, per neuron,

    L = (1 - var(s1) / (var(s2) + beta))**2                              (eq. 17)

with s1, s2 the first two consecutive subsets of n examples of the minibatch,
unbiased sample variances and a learnable beta per neuron, averaged over the
layer's neurons. :func:`vcl_penalty` sums the layers' losses; the trainer adds
``gamma * vcl_penalty(model)`` to the task loss and clips each layer's gradient
with :func:`clip_grad_norm_per_layer_` (section 2.4).

Cost. Both subsets' variances come from one contiguous two-pass reduction
(:func:`_subset_ratio`), the loss's gradient is written out analytically and added to the 2n
rows it touches (:class:`_RecordLoss`), statistics are float32 or wider whatever the
activations' dtype (bfloat16 under autocast), and nothing is read back to the host. Under
``torch.compile`` the same loss is recorded with plain autograd expressions, which trace whole.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from trainables.methods import Bound, Grid, Interval, Knob, Method, Nullable, OneOf

Per = Literal["channel", "neuron"]
_PER_VALUES = ("channel", "neuron")


def _inverse_softplus(value: float) -> float:
    # On the CPU explicitly: a number, also under a ``torch.device("meta")`` context.
    minus = torch.tensor(-value, dtype=torch.float64, device="cpu")
    return value + torch.log(-torch.expm1(minus)).item()


class VarianceConstancy(LazyModuleMixin, nn.Module):
    """Identity layer that records the variance constancy loss of its input (eq. 17).

    What a neuron is, for a conv input of shape (N, C, *spatial):

    - ``per="neuron"`` (default): every (channel, position) is a neuron with its
      sample the n values across the subset and its own beta, as in the reference
      code (avirambh/vcl_pytorch). beta has shape (C, *spatial), materialised from
      the first input like any lazy module: run one forward before building the
      optimizer or reading ``beta`` (``trainables.models.build_model`` does).
    - ``per="channel"``: a channel is one neuron. Its sample from a subset of n
      examples is all n x H x W activations of that channel, since a convolution
      applies the same filter at every position, which makes a channel's
      positions draws from one distribution (batchnorm's reasoning). beta has
      shape (C,) and exists from construction.

    For a (N, features) input both conventions give the same loss, with beta of shape
    (features,).

    beta is kept from making the denominator vanish by storing ``raw_beta`` and
    using ``beta = min_beta + softplus(raw_beta)``: whatever the optimizer does,
    ``var(s2) + beta >= min_beta > 0`` (eq. 17 asks beta > 0; the floor also
    bounds the loss), and unlike a clamp the parametrisation never zeroes
    beta's gradient.
    """

    cls_to_become = None

    def __init__(
        self,
        num_features: int,
        n: int = 2,
        beta_init: float = 1.0,
        per: Per = "neuron",
        min_beta: float = 1e-3,
    ) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Lazy modules are a new feature")
            super().__init__()
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ValueError(f"VCL subset size n must be an integer >= 2, got n={n!r}")
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive integer, got {num_features!r}")
        if not min_beta > 0:
            raise ValueError(f"VCL min_beta must be > 0, got min_beta={min_beta!r}")
        if not beta_init > min_beta:
            raise ValueError(
                f"VCL beta_init must be > min_beta={min_beta}, got beta_init={beta_init!r}"
            )
        if per not in _PER_VALUES:
            raise ValueError(f"VCL per must be one of {_PER_VALUES}, got per={per!r}")
        self.num_features = num_features
        self.n = n
        self.beta_init = float(beta_init)
        self.min_beta = float(min_beta)
        self.per = per
        self.raw_beta: nn.Parameter = (
            UninitializedParameter() if per == "neuron" else nn.Parameter(torch.empty(num_features))
        )
        self.last_loss: Tensor | None = None
        if per == "channel":
            self.reset_parameters()

    @property
    def beta(self) -> Tensor:
        return self.min_beta + F.softplus(self.raw_beta)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params():
            nn.init.constant_(self.raw_beta, _inverse_softplus(self.beta_init - self.min_beta))

    def initialize_parameters(self, x: Tensor) -> None:
        if self.has_uninitialized_params():
            self._check_channels(x)
            with torch.no_grad():
                self.raw_beta.materialize(tuple(x.shape[1:]), device=x.device, dtype=x.dtype)
                self.reset_parameters()

    def _check_channels(self, x: Tensor) -> None:
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"VarianceConstancy(num_features={self.num_features}) got an input of shape "
                f"{tuple(x.shape)}; expected (N, {self.num_features}, ...)"
            )

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        self._check_channels(x)
        if x.shape[0] < 2 * self.n:
            raise ValueError(
                f"VCL needs a batch of at least 2n = {2 * self.n} examples for n={self.n}, "
                f"got batch size {x.shape[0]}"
            )
        if not torch.is_grad_enabled() or torch.compiler.is_compiling():
            self.last_loss = self.layer_loss(x)
            return x
        out, self.last_loss = _RecordLoss.apply(
            x, self.raw_beta, self.n, self._channel_wise(x), self.min_beta
        )
        return out

    def layer_loss(self, x: Tensor) -> Tensor:
        """Eq. 17 averaged over this layer's neurons, on the first 2n examples of ``x``."""
        ratio, _, _, _ = _subset_ratio(
            x[: 2 * self.n], self.raw_beta, self.n, self._channel_wise(x), self.min_beta
        )
        return (1.0 - ratio).square().mean()

    def _channel_wise(self, x: Tensor) -> bool:
        return self.per == "channel" and x.dim() > 2

    def extra_repr(self) -> str:
        return f"{self.num_features}, n={self.n}, beta_init={self.beta_init}, per={self.per!r}"


def _statistics_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def _subset_ratio(
    head: Tensor, raw_beta: Tensor, n: int, channel_wise: bool, min_beta: float
) -> tuple[Tensor, Tensor, Tensor, int]:
    """Eq. 17's ratio ``var(s1) / (var(s2) + beta)`` per neuron, from ``head`` = s1 then s2.

    Both subsets in one pass: ``head`` viewed as (2, n, ...) is centred on each subset's mean
    and the unbiased variances are the sums of squares over the subset (and, channel-wise,
    over positions) divided by ``count`` = samples - 1. Two-pass, as accurate as
    ``torch.var``, and unlike ``var`` over a leading dim of 2n rows, a contiguous reduction.
    Statistics are taken in at least float32 (bfloat16 activations under autocast).
    Returns (ratio, var(s2) + beta, the centred subsets, count).
    """
    pairs = head.to(_statistics_dtype(head.dtype)).unflatten(0, (2, n))
    dims = (1, *range(3, pairs.dim())) if channel_wise else (1,)
    count = math.prod([pairs.shape[d] for d in dims]) - 1
    centred = pairs - pairs.mean(dims, keepdim=True)
    var = centred.square().sum(dims) / count
    denominator = var[1] + (min_beta + F.softplus(raw_beta))
    return var[0] / denominator, denominator, centred, count


class _RecordLoss(torch.autograd.Function):
    """Identity on x that also returns the VCL loss (eq. 17) of its first 2n examples.

    The gradient of the loss is written analytically: with ``r = v1 / (v2 + beta)``
    averaged over M neurons, ``dL/dr = 2 (r - 1) / M``, ``dL/dv1 = dL/dr / (v2 + beta)``,
    ``dL/dv2 = dL/dbeta = -dL/dr * r / (v2 + beta)``, ``dbeta/draw = sigmoid(raw)``, and
    a variance's gradient to a sample is ``2 (x - mean) / count``. Backward copies the
    incoming gradient once and adds this to the 2n rows only (autograd's slicing would
    send back a dense zero tensor the size of x plus a dense add).
    """

    @staticmethod
    def forward(ctx, x: Tensor, raw_beta: Tensor, n: int, channel_wise: bool, min_beta: float):
        ctx.set_materialize_grads(False)
        ratio, denominator, centred, count = _subset_ratio(
            x[: 2 * n].detach(), raw_beta.detach(), n, channel_wise, min_beta
        )
        ctx.save_for_backward(ratio, denominator, centred, raw_beta)
        ctx.count, ctx.x_shape, ctx.dtype = count, x.shape, x.dtype
        ctx.dims = (1, *range(3, centred.dim())) if channel_wise else (1,)
        return x.view_as(x), (1.0 - ratio).square().mean().to(raw_beta.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor | None, grad_loss: Tensor | None):
        ratio, denominator, centred, raw_beta = ctx.saved_tensors
        if grad_loss is None:
            return grad_out, None, None, None, None
        grad_ratio = (ratio - 1.0) * (2.0 / ratio.numel()) * grad_loss
        grad_var2 = -grad_ratio * ratio / denominator
        grad_beta = (grad_var2 * torch.sigmoid(raw_beta)).to(raw_beta.dtype)
        keep = [1 if d in ctx.dims else size for d, size in enumerate(centred.shape)]
        grad_var = torch.stack((grad_ratio / denominator, grad_var2)).reshape(keep)
        grad_head = (centred * grad_var * (2.0 / ctx.count)).flatten(0, 1).to(ctx.dtype)
        if grad_out is None:
            grad_x = torch.zeros(ctx.x_shape, dtype=ctx.dtype, device=centred.device)
        else:
            grad_x = grad_out.clone()
        grad_x[: grad_head.shape[0]] += grad_head
        return grad_x, grad_beta, None, None, None


def vcl_penalty(model: nn.Module) -> Tensor:
    """Sum of the layer losses recorded by ``model``'s VCL layers in their last training forward."""
    losses = [
        m.last_loss
        for m in model.modules()
        if isinstance(m, VarianceConstancy) and m.last_loss is not None
    ]
    if losses:
        return torch.stack(losses).sum()
    for parameter in model.parameters():
        return torch.zeros((), device=parameter.device)
    return torch.zeros(())


def clip_grad_norm_per_layer_(model: nn.Module, max_norm: float = 1.0) -> Tensor:
    """Clip the L2 norm of each layer's gradient to ``max_norm`` separately (VCL section 2.4).

    A layer is a module that owns parameters directly (a conv's weight and bias
    together). Each layer is scaled by ``min(1, max_norm / (norm + 1e-6))``, as
    ``torch.nn.utils.clip_grad_norm_`` would, but all layers in a few fused
    ``_foreach`` calls. Returns the layers' gradient norms before clipping.
    """
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got max_norm={max_norm!r}")
    layers = [
        [p.grad for p in module.parameters(recurse=False) if p.grad is not None]
        for module in model.modules()
    ]
    layers = [grads for grads in layers if grads]
    if not layers:
        return torch.zeros(0)
    grads = [g for layer in layers for g in layer]
    tensor_norms = torch.stack(torch._foreach_norm(grads))
    owner = _layer_owner(tuple(len(layer) for layer in layers), tensor_norms.device)
    squares = torch.zeros(len(layers), dtype=tensor_norms.dtype, device=tensor_norms.device)
    norms = squares.index_add_(0, owner, tensor_norms.square()).sqrt_()
    scale = (max_norm / (norms + 1e-6)).clamp_(max=1.0)
    torch._foreach_mul_(grads, list(scale[owner].unbind()))
    return norms


@functools.lru_cache(maxsize=64)
def _layer_owner(sizes: tuple[int, ...], device: torch.device) -> Tensor:
    """Which layer each gradient tensor belongs to, built once per model and device: building
    it from a host list every step would copy to the device and wait for it."""
    counts = torch.tensor(sizes)
    return torch.repeat_interleave(torch.arange(len(sizes)), counts).to(device)


def _vcl_layer(
    num_features: int, dims: int, n: int = 2, per: str = "neuron", beta_init: float = 1.0
) -> nn.Module:
    return VarianceConstancy(num_features, n=n, beta_init=beta_init, per=per)


def _suggest(trial) -> dict:
    trial.suggest_float("vcl_gamma", 1e-4, 1e-1, log=True)
    trial.suggest_categorical("vcl_n", (2, 3, 5, 7, 9))
    return {"norm": "vcl"}


RECORD = Method(
    name="vcl",
    slot="norm",
    summary="Variance Constancy Loss (Littwin & Wolf) where batchnorm would sit, weighted by gamma",
    knobs=(
        Knob(
            "vcl_n",
            2,
            Interval(2, Bound(lambda c: c.batch_size // 2, "batch_size / 2"), integer=True),
            argument="n",
            help="size of each of the two subsets whose variances are compared",
        ),
        Knob(
            "vcl_per",
            "neuron",
            OneOf(("neuron", "channel")),
            argument="per",
            help="neuron: every channel x position is a neuron (reference code); channel",
        ),
        Knob("vcl_gamma", 0.01, Interval(0, None), help="weight of the loss (eq. 17)"),
    ),
    module=_vcl_layer,
    penalty=vcl_penalty,
    weight="vcl_gamma",
    full_batches=True,
    conv_bias=True,
    space=_suggest,
    space_description="gamma ~ log-U[1e-4, 1e-1], n in {2, 3, 5, 7, 9}",
    grids={
        "vcl_grid": Grid(
            "Table 2: n in {2, 3, 5, 7, 9} at gamma = 0.01",
            {"vcl_n": (2, 3, 5, 7, 9)},
            {"norm": "vcl", "vcl_gamma": 0.01},
        )
    },
    paper="Littwin & Wolf, The Variance Constancy Loss",
)
CLIP_PER_LAYER = Method(
    name="clip_per_layer",
    slot="additive",
    summary="each layer's gradient clipped to an L2 norm (VCL section 2.4, any arm)",
    knobs=(
        Knob(
            "clip_per_layer",
            None,
            Nullable(Interval(0, None, closed="neither")),
            argument="max_norm",
            help="the largest L2 norm of a layer's gradient; null = no clipping",
        ),
    ),
    active=lambda k: k["clip_per_layer"] is not None,
    gradients=clip_grad_norm_per_layer_,
)
