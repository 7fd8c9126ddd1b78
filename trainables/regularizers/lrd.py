"""Learning Rate Dropout (Lin et al.; papers.md, LRD Algorithm 1) and dropout on the gradient.

LRD lets the wrapped optimizer take its step as usual, so momentum and
adaptive moments accumulate the full gradient, then keeps each parameter
element's move with probability p and undoes it otherwise:

    W_t = W_{t-1} + D_t ∘ (W_base - W_{t-1}),   D_t ~ Bernoulli(p) per element   (Alg. 1, l. 9–12)

Kept elements take exactly the base optimizer's value and dropped ones keep
exactly their previous value (``torch.lerp`` with a 0/1 weight returns its
end points exactly for finite values), so ``p = 1`` is the base optimizer
bit for bit (and skips the mask altogether).
Only the outgoing step is masked, never the optimizer's state. Anything the
base step does to a weight (coupled or decoupled weight decay included) moves
with the mask. The cost is one copy of the parameters during the step.

The masked update is :func:`keep_updates_`, plain tensor code that ``torch.compile`` traces
whole (``fullgraph=True``), its masks then drawn from the device's default generator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.optim import Optimizer

from trainables.methods import Grid, Interval, Knob, Method

from ._wrapper import OptimizerWrapper, check_keep_probability


def bernoulli_mask(like: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """A 0/1 mask shaped and typed like ``like``, each element 1 with probability ``p``.

    Returned in ``like``'s dtype: on CPU, float arithmetic with it is several
    times faster than a bool ``where``. On CPU the bits come from numpy's SFC64
    (seeded by one draw of ``generator``, so the stream stays checkpointable):
    an element is kept when a uniform 32-bit word is below ``round(p * 2**32)``,
    a keep probability exact to 2**-33, finer than ``torch.rand`` (2**-24) and
    about five times cheaper here, where drawing the mask is most of LRD's cost. Elsewhere,
    and under ``torch.compile`` on any device (dynamo traces no numpy and no ``Generator``:
    there the default generator of the device draws), ``torch.rand < p``, exact to 2**-24.
    """
    if torch.compiler.is_compiling():
        return (torch.rand(like.shape, device=like.device) < p).to(like.dtype)
    if like.device.type != "cpu":
        return torch.rand(like.shape, device=like.device, generator=generator).lt_(p).to(like.dtype)
    seed = int(torch.randint(0, 2**63 - 1, (), generator=generator))
    words = np.random.Generator(np.random.SFC64(seed)).bit_generator.random_raw(
        (like.numel() + 1) // 2
    )
    keep = words.view(np.uint32)[: like.numel()] < np.uint32(min(round(p * 2**32), 2**32 - 1))
    return (
        torch.from_numpy(keep.astype(_NUMPY_DTYPES.get(like.dtype, np.float32)))
        .view(like.shape)
        .to(like.dtype)
    )


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16}


@torch.no_grad()
def keep_updates_(
    params: list[Tensor],
    previous: list[Tensor],
    p: float,
    generators: list[torch.Generator] | None = None,
) -> None:
    """``W_t = W_{t-1} + D ∘ (W_base - W_{t-1})`` in place (Alg. 1, l. 9–12): each element of
    each parameter keeps its base update with probability ``p``, else returns to ``previous``.

    Plain tensor code: under ``torch.compile`` it traces whole (``fullgraph=True``), with the
    masks drawn from each device's default generator (``generators`` must then be None). The
    base optimizer's own step cannot be one graph: torch's optimizers insert graph breaks
    around their step to switch grad mode.
    """
    for i, (param, before) in enumerate(zip(params, previous)):
        keep = bernoulli_mask(param, p, None if generators is None else generators[i])
        torch.lerp(before, param, keep, out=param)


class LearningRateDropout(OptimizerWrapper):
    """Wrap ``optimizer`` so each parameter element's update is kept with probability ``p``."""

    def __init__(
        self,
        optimizer: Optimizer,
        p: float = 0.5,
        generator: torch.Generator | None = None,
    ) -> None:
        self.p = check_keep_probability(p, "LearningRateDropout")
        super().__init__(optimizer, generator)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        if self.p == 1.0:
            return self.optimizer.step(closure)
        params = list(self.trainable_params())
        previous = [p.detach().clone() for p in params]
        loss = self.optimizer.step(closure)
        generators = None
        if not torch.compiler.is_compiling():
            generators = [self.generators.for_device(p.device) for p in params]
        keep_updates_(params, previous, self.p, generators)
        return loss

    def extra_repr(self) -> str:
        return f"p={self.p}"


class GradientDropout(OptimizerWrapper):
    """Dropout on the gradient G ("DG" in the LRD paper): mask each gradient element, then step.

    Unlike LRD, the mask reaches the optimizer's state: momentum and moments see
    the masked gradient.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        p: float = 0.5,
        generator: torch.Generator | None = None,
    ) -> None:
        self.p = check_keep_probability(p, "GradientDropout")
        super().__init__(optimizer, generator)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        loss = self._closure_loss(closure)
        if self.p < 1.0:
            for param in self.trainable_params():
                if param.grad is not None:
                    gen = None
                    if not torch.compiler.is_compiling():
                        gen = self.generators.for_device(param.device)
                    param.grad.mul_(bernoulli_mask(param.grad, self.p, gen))
        self.optimizer.step()
        return loss

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _suggest(trial) -> dict:
    trial.suggest_float("lrd_p", 0.1, 1.0)
    trial.suggest_categorical("optimizer", ("sgd", "rmsprop", "adam", "amsgrad", "radam"))
    return {}


RECORD = Method(
    name="lrd",
    slot="additive",
    summary="Learning Rate Dropout (Lin et al.): each element's update kept with probability p",
    knobs=(
        Knob(
            "lrd_p",
            1.0,
            Interval(0, 1, closed="right"),
            argument="p",
            help="keep probability of each parameter's update; 1 = off",
        ),
    ),
    active=lambda k: k["lrd_p"] < 1,
    wrap=LearningRateDropout,
    order=30,
    space=_suggest,
    space_description="p ~ U[0.1, 1.0] and the optimizer among SGDM, RMSprop, Adam, AMSGrad, RAdam",
    grids={
        "lrd_grid": Grid(
            "Table 2: p in {0.1, 0.3, 0.5, 0.7, 0.9, 1.0}",
            {"lrd_p": (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)},
        )
    },
    paper="Lin et al., Learning Rate Dropout",
)
GRADIENT_DROPOUT = Method(
    name="grad_dropout",
    slot="additive",
    summary="dropout on the gradient G (LRD section 4.6, 'DG'): each gradient element kept with p",
    knobs=(
        Knob(
            "grad_dropout_p",
            1.0,
            Interval(0, 1, closed="right"),
            argument="p",
            help="keep probability of each gradient element; 1 = off",
        ),
    ),
    active=lambda k: k["grad_dropout_p"] < 1,
    wrap=GradientDropout,
    order=20,
)
