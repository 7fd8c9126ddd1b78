"""A method from outside regstudy, in one file: gradient clipping by the global norm.

Pascanu, Mikolov & Bengio (ICML 2013), "On the difficulty of training recurrent neural
networks", Algorithm 1: g <- dL/dθ over all parameters; if ||g|| > threshold then
g <- (threshold / ||g||) g. PyTorch's ``clip_grad_norm_`` does exactly this (with 1e-6 added to
the norm), so the method is its record. The test beside this file installs it as a
distribution with a ``regstudy.methods`` entry point and sweeps its threshold.
"""

from __future__ import annotations

import torch
from torch import nn

from trainables.methods import Grid, Interval, Knob, Method, Nullable


def clip_global_norm(model: nn.Module, max_norm: float) -> torch.Tensor:
    """Algorithm 1 on every gradient of ``model`` at once; returns the norm before clipping."""
    return torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)


RECORD = Method(
    name="global_clip",
    slot="additive",
    summary="gradient clipping by the global L2 norm (Pascanu et al. 2013, Algorithm 1)",
    knobs=(
        Knob(
            "global_clip",
            None,
            Nullable(Interval(0, None, closed="neither")),
            argument="max_norm",
            help="the threshold on the norm of all gradients together; null = off",
        ),
    ),
    active=lambda knobs: knobs["global_clip"] is not None,
    gradients=clip_global_norm,
    grids={"global_clip_grid": Grid("thresholds 0.5, 1, 5", {"global_clip": (0.5, 1.0, 5.0)})},
    paper="Pascanu, Mikolov & Bengio, ICML 2013",
)
