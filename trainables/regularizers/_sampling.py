"""Sparse Bernoulli sampling on the CPU: the positions where an i.i.d. Bernoulli(rate) mask is 1.

Drop-Activation needs a Bernoulli(1 - p) mask over every activation element,
and with p near 1 almost all of it is 0. On the CPU one random number per
element is the whole cost of the layer, so only the ones are drawn: the gaps
between consecutive ones of an i.i.d. Bernoulli(rate) sequence are i.i.d.
Geometric(rate) on {1, 2, ...}, and the positions are their running sums.

Exactness. Each gap is drawn by inversion: with W uniform on (0, 1 - rate),
``G = floor(log(W) / log(1 - rate))`` has ``P(G >= k) = P(W <= (1 - rate)**k) /
(1 - rate) = (1 - rate)**(k - 1)`` for k = 1, 2, ..., exactly Geometric(rate)
(``W < 1 - rate`` makes ``G >= 1`` without a ``+ 1``). W is
``TINY + U * (1 - rate - TINY)`` with U on [0, 1) at 2**-53 resolution
(``TINY = 2**-60`` keeps the log finite), so the law holds to within 2**-52
(and float64 rounding of the log). The draws continue until they pass the end
of the tensor, so no position is cut short. Nothing else is approximated: the
mask is i.i.d. Bernoulli(rate) per element, independently across calls.

Where U comes from: the torch generator (the default one, or the caller's),
``uniform_`` in float64 (53 random bits each), so ``torch.manual_seed`` and a
checkpointed generator state govern the stream and no state lives outside torch.

Cost. On the small activations of the main job a call's fixed cost, not its
draws, is what shows against ReLU, and on large ones fresh allocations (page
faults) and memory passes are; so the pipeline works in per-thread scratch
buffers, no per-element Python and no allocation: one call of the compiled
kernel (``csrc/geometric_positions.cpp``: W drawn as ``uniform_`` draws it, a
cheap vectorised log, and the exact one only where truncation could go either
way, then the running sums), or without it five in-place tensor operations
(``uniform_``, ``log_``, multiply by ``1 / log(1 - rate)``, truncate into int64,
``cumsum_``), the same positions from the same stream; then one ``searchsorted``
for the end.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator

import numpy as np
import torch

from . import _native

CHUNK_DRAWS = 1 << 20
SCRATCH_DRAWS = 1 << 18
TINY = 2.0**-60
# Below this rate a gap (at most log(TINY) / log(1 - rate)) times a chunk could pass 2**63, so
# gaps are clipped at numel + 1: any gap that long lands past the end from any start.
_CLIP_BELOW_RATE = 1e-9


class _Scratch(threading.local):
    """Per-thread buffers the draws are computed in, so a call allocates nothing."""

    def __init__(self) -> None:
        self.uniforms = torch.empty(0, dtype=torch.float64)
        self.gaps = torch.empty(0, dtype=torch.int64)

    def take(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        if count > SCRATCH_DRAWS:
            return torch.empty(count, dtype=torch.float64), torch.empty(count, dtype=torch.int64)
        if count > len(self.uniforms):
            size = min(max(count, 2 * len(self.uniforms)), SCRATCH_DRAWS)
            self.uniforms = torch.empty(size, dtype=torch.float64)
            self.gaps = torch.empty(size, dtype=torch.int64)
        return self.uniforms[:count], self.gaps[:count]


_SCRATCH = _Scratch()


def _chunk_size(numel: int, rate: float) -> int:
    """Draws that reach past ``numel`` with overwhelming probability (6 sd above the mean)."""
    expected = numel * rate
    return min(int(expected + 6.0 * math.sqrt(expected * (1.0 - rate))) + 64, CHUNK_DRAWS)


def _positions_from_uniforms(
    uniforms: torch.Tensor, gaps: torch.Tensor, scale: float, clip: float, start: int
) -> None:
    """``gaps`` = ``start`` + running sums of ``trunc(min(log(W) * scale, clip))``, in place
    (``uniforms`` is overwritten): what the compiled kernel computes, as tensor operations."""
    uniforms.log_().mul_(scale)
    if clip != math.inf:
        uniforms.clamp_(max=clip)
    gaps.copy_(uniforms)
    gaps[0] += start
    gaps.cumsum_(0)


def iter_positions(
    numel: int, rate: float, generator: torch.Generator | None = None
) -> Iterator[np.ndarray]:
    """Sorted flat positions (int64 numpy arrays, in increasing chunks) where an i.i.d.
    Bernoulli(``rate``) mask of ``numel`` elements is 1, drawn from ``generator`` (torch's
    default CPU generator if None). Chunks keep the transient memory small on big tensors.

    The last chunk is a view of a per-thread scratch buffer: use it before the next call.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got rate={rate!r}")
    if rate == 0.0 or numel == 0:
        return
    scale = 1.0 / math.log1p(-rate)
    clip = float(numel + 1) if rate < _CLIP_BELOW_RATE else math.inf
    count = _chunk_size(numel, rate)
    uniforms, gaps = _SCRATCH.take(count)
    positions = gaps.numpy()
    native = _native.available()
    last = -1
    while last < numel - 1:
        if native:
            last = torch.ops.regstudy.geometric_positions(
                generator, gaps, TINY, 1.0 - rate, scale, clip, last
            )
        else:
            uniforms.uniform_(TINY, 1.0 - rate, generator=generator)
            _positions_from_uniforms(uniforms, gaps, scale, clip, last)
            last = int(positions[-1])
        if last >= numel:
            yield positions[: np.searchsorted(positions, numel)]
        else:
            yield positions.copy()


def bernoulli_positions(
    numel: int,
    rate: float,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """All the positions of :func:`iter_positions` in one int64 tensor on ``device``.

    On an accelerator a dense ``torch.rand < rate`` is cheap and is used instead (its
    ``nonzero`` synchronises with the host: for tests and benchmarks, never in a training step).
    """
    device = torch.device(device)
    if device.type != "cpu":
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), got rate={rate!r}")
        mask = torch.rand(numel, device=device, generator=generator) < rate
        return mask.nonzero().view(-1)
    chunks = list(iter_positions(numel, rate, generator))
    if not chunks:
        return torch.empty(0, dtype=torch.int64)
    return torch.from_numpy(np.concatenate(chunks))
