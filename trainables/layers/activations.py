"""The activations every model can use, as method records, and the one factory models call.

A model asks ``activation_factory(name, **options)`` once and calls the result for each
activation it places (timm's ``get_act_layer`` habit), so every activation is a module that
``replace_activations`` can find, and swapping one is a single argument. Each activation is a
:class:`~trainables.methods.Method` record of slot ``activation``; Drop-Activation's record
lives beside its code (trainables/regularizers/drop_activation.py).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from trainables.methods import Interval, Knob, Method, get_method, list_methods

ActivationFactory = Callable[[], nn.Module]

RELU = Method("relu", "activation", "ReLU, the baseline of every table", module=nn.ReLU)


def _leaky_relu(slope: float = 0.01) -> nn.Module:
    return nn.LeakyReLU(negative_slope=slope)


LEAKY_RELU = Method(
    "leaky_relu",
    "activation",
    "leaky ReLU (VCL Table 2: slope 0.2)",
    knobs=(Knob("leaky_slope", 0.2, Interval(0, 1, closed="left"), argument="slope"),),
    module=_leaky_relu,
)
ELU = Method("elu", "activation", "ELU (Clevert et al.; VCL Table 2)", module=nn.ELU)
SELU = Method("selu", "activation", "SELU (Klambauer et al.; VCL Table 4)", module=nn.SELU)


class RReLU(nn.RReLU):
    """``nn.RReLU`` that also runs on float16 CPU tensors (torch has no CPU half kernel for it):
    there it computes in float32 and returns float16, as under ``precision: fp16`` on a CPU."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.float16 and x.device.type == "cpu":
            return super().forward(x.float()).to(x.dtype)
        return super().forward(x)


RRELU = Method(
    "rrelu",
    "activation",
    "randomized leaky ReLU, slope ~ U[1/8, 1/3] in training (Drop-Activation's baseline)",
    module=partial(RReLU, lower=1 / 8, upper=1 / 3),
)


def list_activations() -> list[str]:
    return list_methods("activation")


def activation_factory(name: str, **options: float) -> ActivationFactory:
    """A zero-argument callable that builds a fresh ``name`` activation module each call;
    ``options`` are the module's own arguments (``p=0.95`` for Drop-Activation), checked by
    building one module here."""
    if name not in list_activations():
        raise ValueError(f"unknown activation {name!r}; choose one of {list_activations()}")
    record = get_method(name)
    accepted = {k.argument for k in record.knobs}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(
            f"activation {name!r} takes {sorted(accepted) or 'no options'}, got {unknown}"
        )
    factory = partial(record.module, **options)
    factory()
    return factory
