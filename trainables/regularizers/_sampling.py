"""Sparse Bernoulli sampling: the positions where an i.i.d. Bernoulli(rate) mask is 1.

Drop-Activation needs a Bernoulli(1 - p) mask over every activation element,
and with p near 1 almost all of it is 0. On the CPU one random number per
element is the whole cost of the layer, so we draw only the ones: the gaps
between consecutive ones of an i.i.d. Bernoulli(rate) sequence are i.i.d.
Geometric(rate) on {1, 2, ...}, and the positions are their running sums. This
is exact in distribution, not an approximation: each gap is drawn by inversion,
``G = floor(log(V) / log(1 - rate)) + 1`` with ``V = 1 - U`` uniform on (0, 1]
at 2**-53 resolution (numpy's SFC64 generator), so the gap law is exact up to
float64 rounding, and the draws continue until they pass the end of the
tensor, so no position is cut short.

The numpy generator is seeded from one draw of a torch generator, which keeps
the stream under ``torch.manual_seed`` and inside a torch ``Generator``'s
checkpointable state. On accelerators a dense ``torch.rand`` is cheap, so
there the mask is drawn densely.
"""

from __future__ import annotations

import math

import numpy as np
import torch

_INT32_LIMIT = 2**31 - 1


def _index_dtype(numel: int) -> torch.dtype:
    return torch.int32 if numel <= _INT32_LIMIT else torch.int64


def _geometric_positions(numel: int, rate: float, seed: int) -> np.ndarray:
    rng = np.random.Generator(np.random.SFC64(seed))
    inv_log_keep = 1.0 / math.log1p(-rate)
    expected = numel * rate
    chunk = int(expected + 6.0 * math.sqrt(expected * (1.0 - rate))) + 64
    pieces = []
    last = -1
    while last < numel - 1:
        u = rng.random(chunk)
        np.negative(u, out=u)
        np.log1p(u, out=u)
        u *= inv_log_keep
        positions = u.astype(np.int64)
        positions += 1
        np.cumsum(positions, out=positions)
        positions += last
        pieces.append(positions)
        last = int(positions[-1])
    positions = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
    return positions[: np.searchsorted(positions, numel)]


def bernoulli_positions(
    numel: int,
    rate: float,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sorted flat positions where an i.i.d. Bernoulli(``rate``) mask of ``numel`` elements is 1."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got rate={rate!r}")
    dtype = _index_dtype(numel)
    if rate == 0.0 or numel == 0:
        return torch.empty(0, dtype=dtype, device=device)
    if device.type == "cpu":
        seed = int(torch.randint(0, 2**63 - 1, (), generator=generator))
        positions = _geometric_positions(numel, rate, seed)
        return torch.from_numpy(positions).to(dtype)
    mask = torch.rand(numel, device=device, generator=generator) < rate
    return mask.nonzero().view(-1).to(dtype)
