"""Drop-Activation (Liang, Khoo & Yang; papers.md, Drop-Activation eq. 3–5).

Training: every element keeps its ReLU with probability ``p`` and becomes the
identity otherwise, a fresh Bernoulli draw per element per forward pass
(eq. 3). Evaluation: the expectation, ``(1 - p) x + p relu(x)`` (eq. 5), a leaky
ReLU with negative slope ``1 - p``. ``p = 1`` is exactly ``torch.relu``.

Speed and memory. Only the identity positions are drawn (:mod:`._sampling`), a
fraction ``1 - p`` of the elements, instead of one random number per element,
and the output is ``relu(x)`` with those positions copied back from ``x``.
Backward keeps exactly what ``torch.relu`` keeps, the output. The derivative
at exactly x = 0 is taken as 0 for every element, the convention of
``torch.relu``; everywhere else the gradient is exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.methods import Grid, Interval, Knob, Method

from ._sampling import iter_bernoulli_positions


def _check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p <= 1.0:
        raise ValueError(f"Drop-Activation p must be a number in (0, 1], got p={p!r}")
    return float(p)


class _DropActivationFunction(torch.autograd.Function):
    """relu(x) with a Bernoulli(1 - p) subset of elements passed through unchanged.

    Backward keeps only the output, as ``torch.relu`` does: the gradient passes
    where the output is nonzero, i.e. where x > 0 or the element is identity.
    """

    @staticmethod
    def forward(ctx, x: Tensor, drop_rate: float, generator, inplace: bool) -> Tensor:
        chunks = iter_bernoulli_positions(x.numel(), drop_rate, x.device, generator)
        if inplace:
            identity = list(chunks)
            passed = [x.view(-1).index_select(0, positions) for positions in identity]
            out = x.relu_()
            ctx.mark_dirty(x)
            for positions, values in zip(identity, passed):
                out.view(-1).index_copy_(0, positions, values)
        else:
            out = torch.relu(x)
            for positions in chunks:
                out.view(-1).index_copy_(0, positions, x.view(-1).index_select(0, positions))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        (out,) = ctx.saved_tensors
        # |out| is written into the gradient's own buffer and thresholded there in place: the
        # gradient passes where out != 0, and nothing is allocated beyond what ReLU allocates.
        grad_in = torch.abs(out)
        torch.ops.aten.threshold_backward.grad_input(grad_out, grad_in, 0, grad_input=grad_in)
        return grad_in, None, None, None


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


def _suggest(trial) -> dict:
    trial.suggest_float("da_p", 0.6, 1.0)
    return {"activation": "drop_activation"}


RECORD = Method(
    name="drop_activation",
    slot="activation",
    summary="Drop-Activation (Liang, Khoo & Yang): ReLU kept with probability p, else identity",
    knobs=(
        Knob(
            "da_p",
            0.95,
            Interval(0, 1, closed="right"),
            argument="p",
            help="retain probability of each ReLU; 1 is ReLU",
        ),
    ),
    module=DropActivation,
    space=_suggest,
    space_description="p ~ U[0.6, 1.0] for Optuna (TPE)",
    grids={
        "drop_activation_grid": Grid(
            "Figure 5: p = 0.60, 0.65, ..., 1.00",
            {"da_p": tuple(round(0.60 + 0.05 * k, 2) for k in range(9))},
            {"activation": "drop_activation"},
        )
    },
    paper="Liang, Khoo & Yang, Drop-Activation",
)
