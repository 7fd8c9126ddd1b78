"""Drop-Activation (Liang, Khoo & Yang; papers.md, Drop-Activation eq. 3–5).

Training: every element keeps its ReLU with probability ``p`` and becomes the
identity otherwise, a fresh Bernoulli draw per element per forward pass
(eq. 3). Evaluation: the expectation, ``(1 - p) x + p relu(x)`` (eq. 5), a leaky
ReLU with negative slope ``1 - p``. ``p = 1`` is exactly ``torch.relu``.

Speed and memory. Only the identity positions are drawn (:mod:`._sampling`), a
fraction ``1 - p`` of the elements, instead of one random number per element,
and the output is ``relu(x)`` with those positions copied back from ``x``.

The gradient is exact everywhere, x = 0 included: 1 for every identity element
(the identity has derivative 1 everywhere), and for the others ``torch.relu``'s
gradient, 1 where x > 0 and 0 where x <= 0 (its convention at exactly 0).
Backward keeps what ``torch.relu`` keeps, the output ``out``, where the
gradient passes wherever ``out != 0``; the one case ``out`` cannot tell apart is
an identity element with x == 0 exactly (after zero padding, pooling of ReLU
outputs, ...). Forward finds those among the values it already gathered at the
identity positions and saves their flat positions too, in whichever form is
smaller, so the extra memory never exceeds one bit per element: an index tensor
(int32 when ``numel < 2**31``, else int64) when ``count * index_bytes * 8 <=
numel``, otherwise a packed bitmask (uint8, bit ``i % 8`` of byte ``i // 8``
for flat position ``i``, ``ceil(numel / 8)`` bytes). Without exact zeros (the
common case) the index tensor is empty, and exactly ReLU's bytes are saved.
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


def _save_exact_zeros(positions: Tensor, numel: int) -> tuple[Tensor, bool]:
    """``positions`` (sorted flat int64) in the smaller of the two forms: an index tensor when
    it costs at most one bit per element, else a packed bitmask. Returns (tensor, is_packed)."""
    index_dtype = torch.int32 if numel < 2**31 else torch.int64
    index_bytes = torch.empty((), dtype=index_dtype).element_size()
    if positions.numel() * index_bytes * 8 <= numel:
        return positions.to(index_dtype), False
    # Positions are distinct, so the powers of two added into one byte never carry: sum == OR.
    bits = torch.zeros((numel + 7) // 8, dtype=torch.uint8, device=positions.device)
    one = torch.ones((), dtype=torch.uint8, device=positions.device)
    bits.index_add_(
        0, positions >> 3, one.expand(positions.numel()) << (positions & 7).to(torch.uint8)
    )
    return bits, True


def _unpack_bits(bits: Tensor, numel: int) -> Tensor:
    shifts = torch.arange(8, dtype=torch.uint8, device=bits.device)
    return ((bits.unsqueeze(1) >> shifts) & 1).view(-1)[:numel].bool()


class _DropActivationFunction(torch.autograd.Function):
    """relu(x) with a Bernoulli(1 - p) subset of elements passed through unchanged.

    Backward keeps the output, as ``torch.relu`` does, and the positions of the identity
    elements with x == 0 exactly (usually none): the gradient passes where the output is
    nonzero (x > 0, or the element is identity) and at those positions.
    """

    @staticmethod
    def forward(ctx, x: Tensor, drop_rate: float, generator, inplace: bool) -> Tensor:
        numel = x.numel()
        chunks = iter_bernoulli_positions(numel, drop_rate, x.device, generator)
        zero_chunks = []
        if inplace:
            identity = list(chunks)
            passed = [x.view(-1).index_select(0, positions) for positions in identity]
            out = x.relu_()
            ctx.mark_dirty(x)
            for positions, values in zip(identity, passed):
                out.view(-1).index_copy_(0, positions, values)
                zero_chunks.append(positions[values == 0])
        else:
            out = torch.relu(x)
            for positions in chunks:
                values = x.view(-1).index_select(0, positions)
                out.view(-1).index_copy_(0, positions, values)
                zero_chunks.append(positions[values == 0])
        zeros = (
            torch.cat(zero_chunks)
            if zero_chunks
            else torch.empty(0, dtype=torch.int64, device=x.device)
        )
        saved, ctx.packed = _save_exact_zeros(zeros, numel)
        ctx.save_for_backward(out, saved)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        out, saved = ctx.saved_tensors
        # |out| is written into the gradient's own buffer and thresholded there in place: the
        # gradient passes where out != 0, and nothing is allocated beyond what ReLU allocates.
        grad_in = torch.abs(out)
        torch.ops.aten.threshold_backward.grad_input(grad_out, grad_in, 0, grad_input=grad_in)
        # Identity elements with x == 0 (out == 0 there, so grad_in is 0): derivative 1.
        if ctx.packed:
            mask = _unpack_bits(saved, out.numel()).view(out.shape)
            torch.where(mask, grad_out, grad_in, out=grad_in)
        elif saved.numel():
            positions = saved.long()
            grad_in.view(-1).index_copy_(0, positions, torch.take(grad_out, positions))
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
