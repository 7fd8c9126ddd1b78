"""Drop-Activation (Liang, Khoo & Yang; papers.md, Drop-Activation eq. 3–5).

Training: every element keeps its ReLU with probability ``p`` and becomes the
identity otherwise, a fresh Bernoulli draw per element per forward pass
(eq. 3). Evaluation: the expectation, ``(1 - p) x + p relu(x)`` (eq. 5), a leaky
ReLU with negative slope ``1 - p``. ``p = 1`` is exactly ``torch.relu``.

Speed and memory. Only the identity positions are drawn (:mod:`._sampling`), a
fraction ``1 - p`` of the elements, instead of one random number per element;
backward keeps a bool mask of where the gradient passes, one byte per element
where ``torch.relu`` keeps its output (four bytes in float32).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._sampling import bernoulli_positions


def _check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p <= 1.0:
        raise ValueError(f"Drop-Activation p must be a number in (0, 1], got p={p!r}")
    return float(p)


class _DropActivationFunction(torch.autograd.Function):
    """relu(x) with a Bernoulli(1 - p) subset of elements passed through unchanged.

    Backward needs only where the gradient passes, ``(x > 0) | identity``, kept
    as a bool mask: a quarter of what ``torch.relu`` keeps in float32.
    """

    @staticmethod
    def forward(ctx, x: Tensor, drop_rate: float, generator, inplace: bool) -> Tensor:
        passes = x > 0
        identity = bernoulli_positions(x.numel(), drop_rate, x.device, generator)
        passes.view(-1).index_put_((identity,), torch.ones((), dtype=torch.bool, device=x.device))
        zero = torch.zeros((), dtype=x.dtype, device=x.device)
        if inplace:
            out = torch.where(passes, x, zero, out=x)
            ctx.mark_dirty(x)
        else:
            out = torch.where(passes, x, zero)
        ctx.save_for_backward(passes)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (passes,) = ctx.saved_tensors
        return grad_out * passes, None, None, None


@torch.compiler.disable
def _train_forward(x: Tensor, drop_rate: float, generator, inplace: bool) -> Tensor:
    if not x.is_contiguous():
        x = x.contiguous()
    return _DropActivationFunction.apply(x, drop_rate, generator, inplace)


def drop_activation(
    x: Tensor,
    p: float = 0.95,
    training: bool = True,
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> Tensor:
    """Drop-Activation of ``x``, ReLU retain probability ``p`` (eq. 3 in training, eq. 5 in eval).

    ``generator`` draws the identity positions; ``None`` uses torch's default
    generator of ``x``'s device, so ``torch.manual_seed`` makes runs repeatable.
    """
    p = _check_p(p)
    if p == 1.0:
        return x.relu_() if inplace else torch.relu(x)
    if not training:
        return F.leaky_relu(x, negative_slope=1.0 - p, inplace=inplace)
    return _train_forward(x, 1.0 - p, generator, inplace)


class DropActivation(nn.Module):
    """Module form of :func:`drop_activation`; a drop-in replacement for ``nn.ReLU``."""

    def __init__(self, p: float = 0.95, inplace: bool = False) -> None:
        super().__init__()
        self.p = _check_p(p)
        self.inplace = inplace

    def forward(self, x: Tensor) -> Tensor:
        return drop_activation(x, self.p, self.training, inplace=self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}" + (", inplace=True" if self.inplace else "")
