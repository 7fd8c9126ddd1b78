"""Optimizers and LR schedules of the papers' setups, and the update-side regularizers around them.

``make_optimizer`` builds the base optimizer from a registry (torch's defaults
for everything but the learning rate and weight decay, as the LRD paper tunes
only the initial learning rate; ``momentum``/``nesterov`` are SGD's), then lets
the active method records wrap it: noisy gradient and dropout on G act on the
gradient before the step, LRD on the step itself, so LRD is the outermost
wrapper (LRD+NG in LRD Table 3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler

from .config import TrainConfig

Params = Iterable[nn.Parameter]

_BASE: dict[str, Callable[[Params, TrainConfig], Optimizer]] = {
    "sgd": lambda ps, c: torch.optim.SGD(
        ps,
        lr=c.learning_rate,
        momentum=c.momentum,
        nesterov=c.nesterov,
        weight_decay=c.weight_decay,
    ),
    "rmsprop": lambda ps, c: torch.optim.RMSprop(
        ps, lr=c.learning_rate, weight_decay=c.weight_decay
    ),
    "adam": lambda ps, c: torch.optim.Adam(ps, lr=c.learning_rate, weight_decay=c.weight_decay),
    "amsgrad": lambda ps, c: torch.optim.Adam(
        ps, lr=c.learning_rate, weight_decay=c.weight_decay, amsgrad=True
    ),
    "radam": lambda ps, c: torch.optim.RAdam(ps, lr=c.learning_rate, weight_decay=c.weight_decay),
    "adamw": lambda ps, c: torch.optim.AdamW(ps, lr=c.learning_rate, weight_decay=c.weight_decay),
}


def make_optimizer(config: TrainConfig, params: Params) -> Optimizer:
    """The configured base optimizer, wrapped by every active method that wraps one, innermost
    first by the record's ``order`` (noisy gradient, dropout on G, then LRD outermost)."""
    optimizer = _BASE[config.optimizer](params, config)
    wrappers = sorted((m for m in config.active_methods() if m.wrap), key=lambda m: m.order)
    for method in wrappers:
        optimizer = method.wrap(optimizer, **method.arguments(config))
    return optimizer


def multistep_factor(config: TrainConfig, epoch: int) -> float:
    """LR multiplier after ``epoch`` epochs: the product of the gammas of the milestones passed.

    ``lr_gamma`` is one factor for every milestone, or one per milestone (the VCL
    schedule 0.05 -> 0.02 at 180, then /10 every 100, is gammas (0.4, 0.1, 0.1)).
    """
    gammas = config.lr_gamma
    if not isinstance(gammas, tuple):
        gammas = (gammas,) * len(config.milestones)
    factor = 1.0
    for milestone, gamma in zip(config.milestones, gammas):
        if epoch >= milestone:
            factor *= gamma
    return factor


_SCHEDULES: dict[str, Callable[[Optimizer, TrainConfig], LRScheduler]] = {
    "constant": lambda opt, c: LambdaLR(opt, lambda epoch: 1.0),
    "multistep": lambda opt, c: LambdaLR(opt, partial(multistep_factor, c)),
    "cosine": lambda opt, c: CosineAnnealingLR(opt, T_max=c.epochs),
}


def make_scheduler(config: TrainConfig, optimizer: Optimizer) -> LRScheduler:
    """An epoch-wise schedule: stepped once after every epoch."""
    return _SCHEDULES[config.schedule](optimizer, config)
