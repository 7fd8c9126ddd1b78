"""Drop-Activation (Liang, Khoo & Yang; papers.md, Drop-Activation eq. 3–5).

Training: every element keeps its ReLU with probability ``p`` and becomes the
identity otherwise, a fresh Bernoulli draw per element per forward pass
(eq. 3). Evaluation: the expectation, ``(1 - p) x + p relu(x)`` (eq. 5), a leaky
ReLU with negative slope ``1 - p``. ``p = 1`` is exactly ``torch.relu``.

Two implementations of eq. 3, the same function with the same gradient:

- CPU, eager (the sparse path). Only the identity positions are drawn
  (:mod:`._sampling`, exact i.i.d. Bernoulli(1 - p) by geometric gaps), a
  fraction ``1 - p`` of the elements instead of one random number per element,
  and the output is ``relu(x)`` with those positions copied back from ``x``: by
  the compiled kernel (:mod:`._native`, ``csrc/drop_activation.cpp``) in one
  pass over memory, block by block, or where it could not be built through
  numpy views of the two tensors, slab by slab on large ones. Both take the
  same positions, so they give the same output bit for bit.
- Accelerators, and any device under ``torch.compile`` (the dense path): one
  float32 uniform per element and ``where(identity or x > 0, x, 0)``, plain
  tensor operations with static shapes and no host-device synchronisation,
  which inductor fuses into one kernel with its neighbours. ``identity`` is
  ``U < 1 - p``, exact to the uniform's resolution (2**-24). Under compile the
  default generator of the device draws (dynamo cannot trace a ``Generator``).

The gradient is exact everywhere, x = 0 included: 1 for every identity element
(the identity has derivative 1 everywhere), and for the others ``torch.relu``'s
gradient, 1 where x > 0 and 0 where x <= 0 (its convention at exactly 0).

Memory of the sparse path. Backward keeps what ``torch.relu`` keeps, the output
``out``, and passes the gradient wherever ``out != 0`` (one fused
``softshrink_backward(grad, out, 0)``, the same single pass as ReLU's
``threshold_backward``); the one case ``out`` cannot tell apart is an identity
element with x == 0 exactly (after zero padding, pooling of ReLU outputs, ...).
Forward finds those among the values it already gathered at the identity
positions and saves their flat positions too, in whichever form is smaller, so
the extra memory never exceeds one bit per element: an index tensor (int32 when
``numel < 2**31``, else int64) when ``count * index_bytes * 8 <= numel``,
otherwise a packed bitmask (uint8, bit ``i % 8`` of byte ``i // 8`` for flat
position ``i``, ``ceil(numel / 8)`` bytes). Without exact zeros (the common
case) the index tensor is empty, and exactly ReLU's bytes are saved. The dense
path saves only the 1-byte mask of where the gradient passes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.methods import Grid, Interval, Knob, Method

from . import _native
from ._sampling import iter_positions

_SPARSE_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_NO_ZEROS = torch.empty(0, dtype=torch.int32)
_NO_POSITIONS = np.empty(0, dtype=np.int64)
# Elements per slab of the copy-back: a float32 slab of input and output fits in L2.
SLAB = 1 << 17
_SOFTSHRINK_BACKWARD = torch.ops.aten.softshrink_backward.default


def _check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p <= 1.0:
        raise ValueError(f"Drop-Activation p must be a number in (0, 1], got p={p!r}")
    return float(p)


def _save_exact_zeros(positions: Tensor, numel: int) -> tuple[Tensor, bool]:
    """``positions`` (sorted flat int64) in the smaller of the two forms: an index tensor when
    it costs at most one bit per element, else a packed bitmask. Returns (tensor, is_packed)."""
    index_dtype = torch.int32 if numel < 2**31 else torch.int64
    index_bytes = 4 if index_dtype == torch.int32 else 8
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


def _as_numpy(t: Tensor) -> np.ndarray:
    """A numpy view of contiguous CPU ``t``, no copy (bfloat16 as its uint16 bit patterns)."""
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy(force=True).view(np.uint16)
    return t.numpy(force=True)


def _zero_mask(values: np.ndarray) -> np.ndarray | None:
    """Where ``values`` are +0 or -0, or None if nowhere (one counting pass in the usual case)."""
    if values.dtype == np.uint16:
        zero = (values & 0x7FFF) == 0
        return zero if zero.any() else None
    if np.count_nonzero(values) == values.size:
        return None
    return values == 0


def _slab_by_slab(
    x: Tensor, positions: np.ndarray, source: np.ndarray, inplace: bool
) -> tuple[Tensor, list[np.ndarray]]:
    """relu(x) with ``positions`` copied back from ``x``, in slabs of :data:`SLAB` elements, so
    the scattered copies hit a slab while the ReLU pass has it in cache. Returns the output and
    the identity positions where x == 0 exactly."""
    numel = x.numel()
    out = x if inplace else torch.empty_like(x)
    flat_in, flat_out = x.detach().view(-1), out.detach().view(-1)
    source, target = source.reshape(-1), _as_numpy(flat_out)
    starts = range(0, numel, SLAB)
    cuts = [0, *np.searchsorted(positions, starts[1:]).tolist(), len(positions)]
    zeros = []
    for i, start in enumerate(starts):
        slab = positions[cuts[i] : cuts[i + 1]]
        values = np.take(source, slab)
        stop = min(start + SLAB, numel)
        torch.clamp_min(flat_in[start:stop], 0, out=flat_out[start:stop])
        target[slab] = values
        zero = _zero_mask(values)
        if zero is not None:
            zeros.append(slab[zero])
    return out, zeros


def _numpy_forward(x: Tensor, positions: np.ndarray, inplace: bool) -> tuple[Tensor, Tensor]:
    """relu(x) with ``positions`` copied back from ``x``, and the identity positions where
    x == 0 exactly (int64), without the compiled kernel."""
    source = _as_numpy(x)
    if x.numel() <= SLAB:
        values = np.take(source, positions)
        out = x.relu_() if inplace else torch.relu(x)
        _as_numpy(out).reshape(-1)[positions] = values
        zeros = [positions[zero]] if (zero := _zero_mask(values)) is not None else []
    else:
        out, zeros = _slab_by_slab(x, positions, source, inplace)
    return out, torch.from_numpy(np.concatenate([_NO_POSITIONS, *zeros]))


def _native_forward(x: Tensor, positions: Tensor, inplace: bool) -> tuple[Tensor, Tensor]:
    """:func:`_numpy_forward` in one pass over memory (``csrc/drop_activation.cpp``)."""
    return torch.ops.regstudy.drop_activation_forward(x, positions, inplace)


class _DropActivationFunction(torch.autograd.Function):
    """relu(x) with a Bernoulli(1 - p) subset of elements passed through unchanged (CPU).

    Backward keeps the output, as ``torch.relu`` does, and the positions of the identity
    elements with x == 0 exactly (usually none): the gradient passes where the output is
    nonzero (x > 0, or the element is identity) and at those positions.
    """

    @staticmethod
    def forward(ctx, x: Tensor, drop_rate: float, generator, inplace: bool) -> Tensor:
        numel = x.numel()
        chunks = list(iter_positions(numel, drop_rate, generator))
        positions = chunks[0] if len(chunks) == 1 else np.concatenate([_NO_POSITIONS, *chunks])
        if _native.available():
            out, exact_zeros = _native_forward(x, torch.from_numpy(positions), inplace)
        else:
            out, exact_zeros = _numpy_forward(x, positions, inplace)
        if inplace:
            ctx.mark_dirty(x)
        saved, ctx.packed = _NO_ZEROS, False
        if exact_zeros.numel():
            saved, ctx.packed = _save_exact_zeros(exact_zeros, numel)
        ctx.save_for_backward(out, saved)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        out, saved = ctx.saved_tensors
        # grad where out != 0 (x > 0, or identity with x != 0): softshrink's backward at 0.
        grad_in = _SOFTSHRINK_BACKWARD(grad_out, out, 0.0)
        # Identity elements with x == 0 (out == 0 there, so grad_in is 0): derivative 1.
        if ctx.packed:
            mask = _unpack_bits(saved, out.numel()).view(out.shape)
            torch.where(mask, grad_out, grad_in, out=grad_in)
        elif saved.numel():
            positions = saved.long()
            grad_in.put_(positions, grad_out.reshape(-1).index_select(0, positions))
        return grad_in, None, None, None


def _sparse_forward(x: Tensor, drop_rate: float, generator, inplace: bool) -> Tensor:
    """The sparse path on ``x``'s memory in storage order: a channels-last batch goes through
    as its NHWC view (an i.i.d. mask is i.i.d. in any order), anything else not contiguous is
    made so."""
    if x.is_contiguous():
        return _DropActivationFunction.apply(x, drop_rate, generator, inplace)
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        nhwc = _DropActivationFunction.apply(x.permute(0, 2, 3, 1), drop_rate, generator, inplace)
        return nhwc.permute(0, 3, 1, 2)
    return _DropActivationFunction.apply(x.contiguous(), drop_rate, generator, inplace)


def _dense_forward(
    x: Tensor, drop_rate: float, generator: torch.Generator | None = None, inplace: bool = False
) -> Tensor:
    """Eq. 3 as plain tensor operations: a float32 uniform per element, ``identity = U < 1 - p``,
    output ``x`` where identity or ``x > 0`` (NaN kept, as ``torch.relu`` keeps it), else 0.

    Static shapes, no synchronisation, one fused kernel under inductor; autograd saves the
    bool mask ``keep`` and gives the gradient ``grad * keep``: 1 at identity elements (x == 0
    included), ReLU's elsewhere.
    """
    uniform = torch.empty_like(x, dtype=torch.float32).uniform_(generator=generator)
    keep = (uniform < drop_rate) | ~(x <= 0)
    if inplace:
        return x.masked_fill_(~keep, 0.0)
    return torch.where(keep, x, 0.0)


def _uses_dense_path(x: Tensor) -> bool:
    return x.device.type != "cpu" or x.dtype not in _SPARSE_DTYPES or torch.compiler.is_compiling()


def drop_activation(
    x: Tensor,
    p: float = 0.95,
    training: bool = True,
    generator: torch.Generator | None = None,
    inplace: bool = False,
) -> Tensor:
    """Drop-Activation of ``x``, ReLU retain probability ``p`` (eq. 3 in training, eq. 5 in eval).

    ``generator`` draws the mask; ``None`` uses torch's default generator of ``x``'s device,
    so ``torch.manual_seed`` makes runs repeatable. Under ``torch.compile`` leave it None:
    dynamo cannot trace a ``Generator`` object.
    """
    p = _check_p(p)
    if p == 1.0:
        return x.relu_() if inplace else torch.relu(x)
    if not training:
        return F.leaky_relu(x, negative_slope=1.0 - p, inplace=inplace)
    if _uses_dense_path(x):
        return _dense_forward(x, 1.0 - p, generator, inplace)
    return _sparse_forward(x, 1.0 - p, generator, inplace)


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
