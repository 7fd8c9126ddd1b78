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
from collections.abc import Iterator

import numpy as np
import torch

CHUNK_DRAWS = 1 << 22


def _geometric_chunks(numel: int, rate: float, seed: int) -> Iterator[torch.Tensor]:
    rng = np.random.Generator(np.random.SFC64(seed))
    inv_log_keep = 1.0 / math.log1p(-rate)
    expected = numel * rate
    chunk = min(int(expected + 6.0 * math.sqrt(expected * (1.0 - rate))) + 64, CHUNK_DRAWS)
    last = -1
    while last < numel - 1:
        gaps = torch.from_numpy(rng.random(chunk)).neg_().log1p_().mul_(inv_log_keep)
        positions = gaps.to(torch.int64).add_(1).cumsum_(0).add_(last)
        last = int(positions[-1])
        if last >= numel:
            positions = positions[: int(torch.searchsorted(positions, numel))]
        if len(positions):
            yield positions


def iter_bernoulli_positions(
    numel: int,
    rate: float,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
    """Sorted flat positions (int64, in increasing chunks) where an i.i.d. Bernoulli(``rate``)
    mask of ``numel`` elements is 1. Chunks keep the transient memory small on big tensors."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got rate={rate!r}")
    if rate == 0.0 or numel == 0:
        return
    if device.type == "cpu":
        seed = int(torch.randint(0, 2**63 - 1, (), generator=generator))
        yield from _geometric_chunks(numel, rate, seed)
        return
    mask = torch.rand(numel, device=device, generator=generator) < rate
    yield mask.nonzero().view(-1)


def bernoulli_positions(
    numel: int,
    rate: float,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """All of :func:`iter_bernoulli_positions` in one tensor."""
    chunks = list(iter_bernoulli_positions(numel, rate, device, generator))
    return torch.cat(chunks) if chunks else torch.empty(0, dtype=torch.int64, device=device)
