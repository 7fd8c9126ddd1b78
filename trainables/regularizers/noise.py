"""The noise-injection baselines of the LRD paper's Table 3 (section 4.5).

- :class:`GradientNoise`: "noisy gradient" (Neelakantan et al. 2015): before
  each step add ``N(0, sigma_t^2)`` to every gradient element with
  ``sigma_t^2 = eta / (1 + t)^gamma``, eta = 0.1, gamma = 0.55, t = 0, 1, ...
- :func:`disturb_labels`: "noisy label" (DisturbLabel, Xie et al. 2016): each
  training label of a batch is replaced with probability ``rate`` (0.05) by a
  class drawn uniformly from the other classes, afresh every batch.

Under ``torch.compile``, :func:`disturb_labels` traces whole (``fullgraph=True``).
:class:`GradientNoise` draws from the device's default generator there (dynamo traces no
``Generator``), but its base step breaks the graph as every torch optimizer's does, and its
annealed sigma_t is a new constant each step (a recompilation per step): it is for eager use,
which is how the trainer runs optimizer steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from trainables.methods import Interval, Knob, Method

from ._wrapper import OptimizerWrapper


class GradientNoise(OptimizerWrapper):
    """Wrap ``optimizer`` to add annealed Gaussian noise to the gradients before each step."""

    def __init__(
        self,
        optimizer: Optimizer,
        eta: float = 0.1,
        gamma: float = 0.55,
        generator: torch.Generator | None = None,
    ) -> None:
        if not eta >= 0:
            raise ValueError(f"GradientNoise eta must be >= 0, got eta={eta!r}")
        if not gamma >= 0:
            raise ValueError(f"GradientNoise gamma must be >= 0, got gamma={gamma!r}")
        self.eta = float(eta)
        self.gamma = float(gamma)
        self.noise_step = 0
        super().__init__(optimizer, generator)

    def noise_std(self, t: int) -> float:
        return (self.eta / (1.0 + t) ** self.gamma) ** 0.5

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> Any:
        loss = self._closure_loss(closure)
        std = self.noise_std(self.noise_step)
        for param in self.trainable_params():
            if param.grad is not None:
                gen = None
                if not torch.compiler.is_compiling():
                    gen = self.generators.for_device(param.device)
                noise = torch.randn(
                    param.grad.shape, device=param.device, dtype=param.grad.dtype, generator=gen
                )
                param.grad.add_(noise, alpha=std)
        self.noise_step += 1
        self.optimizer.step()
        return loss

    def extra_state(self) -> dict[str, Any]:
        return {"noise_step": self.noise_step}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.noise_step = int(state["noise_step"])

    def extra_repr(self) -> str:
        return f"eta={self.eta}, gamma={self.gamma}"


def disturb_labels(
    targets: Tensor,
    num_classes: int,
    rate: float = 0.05,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Replace each label with probability ``rate`` by a uniformly drawn *other* class."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"noisy-label rate must be in [0, 1], got rate={rate!r}")
    if num_classes < 2:
        raise ValueError(f"noisy labels need num_classes >= 2, got num_classes={num_classes!r}")
    device = targets.device
    flip = torch.rand(targets.shape, device=device, generator=generator) < rate
    offset = torch.randint(1, num_classes, targets.shape, device=device, generator=generator)
    return torch.where(flip, (targets + offset) % num_classes, targets)


GRADIENT_NOISE = Method(
    name="grad_noise",
    slot="additive",
    summary="noisy gradient (Neelakantan et al.): N(0, eta / (1 + t)^gamma) added to gradients",
    knobs=(
        Knob("grad_noise_eta", 0.0, Interval(0, None), argument="eta", help="0 = off"),
        Knob("grad_noise_gamma", 0.55, Interval(0, None), argument="gamma"),
    ),
    active=lambda k: k["grad_noise_eta"] > 0,
    wrap=GradientNoise,
    order=10,
)
LABEL_NOISE = Method(
    name="label_noise",
    slot="additive",
    summary="noisy labels (DisturbLabel, Xie et al.): each label replaced by another with rate",
    knobs=(
        Knob("label_noise", 0.0, Interval(0, 1, closed="left"), argument="rate", help="0 = off"),
    ),
    active=lambda k: k["label_noise"] > 0,
    labels=disturb_labels,
)
