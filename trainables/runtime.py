"""How a training step runs on its device, apart from what it computes: the config's runtime keys.

- ``precision``: ``fp32``; ``bf16``, the forward and the losses under ``torch.autocast`` in
  bfloat16 (parameters, gradients and optimizer state stay float32; no scaler is needed, as
  bfloat16 has float32's exponent range); ``fp16``, autocast in float16 with a
  ``torch.amp.GradScaler`` that scales the loss, unscales the gradients before any gradient
  transform (per-layer clipping) and skips a step whose gradients overflowed.
- ``compile``: the differentiable part of the step (:func:`forward_and_loss`: model, task
  loss, penalties, their weighted total) goes through ``torch.compile``, so AOTAutograd
  compiles its backward too. Every regularizer traces without a graph break (Drop-Activation
  switches to its dense in-graph mask, VCL to its plain-autograd loss); DropConnect's
  per-example masks stay opaque and break the graph around its layers. The optimizer step
  (LRD and the other wrappers) runs eagerly.
- ``channels_last``: 4-D parameters and input batches in NHWC memory, the layout cuDNN's and
  oneDNN's fastest convolutions want; the regularizers keep the layout (Drop-Activation's CPU
  path walks the memory in storage order, which leaves its i.i.d. mask i.i.d.).

No runtime option adds a host-device synchronisation inside a step, with one exception kept
by torch itself: fp16's ``GradScaler.step`` reads whether the gradients overflowed (one
``.item()`` per step) unless the optimizer is a fused one; bf16 needs no scaler at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
Penalties = Sequence[tuple[str, float, Callable[[nn.Module], Tensor]]]


def autocast(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device_type``, or nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def forward_and_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    penalties: Penalties,
    device_type: str,
    dtype: torch.dtype | None,
) -> tuple[Tensor, Tensor, dict[str, Tensor], Tensor]:
    """The differentiable part of a step: (weighted total, task loss, each penalty, outputs).

    Under autocast when ``dtype`` is set; the task loss and the penalties come out in float32
    (autocast runs the losses in float32; VCL takes its statistics in float32).
    """
    with autocast(device_type, dtype):
        outputs = model(x)
        loss = loss_fn(outputs, y)
        values = {name: penalty(model) for name, _, penalty in penalties}
    total = loss
    for name, weight, _ in penalties:
        total = total + weight * values[name]
    return total, loss, values, outputs


@dataclass(frozen=True)
class StepRuntime:
    """How one trial's steps run: autocast dtype, fp16's scaler, memory format, compiled or not.

    ``forward_loss`` is :func:`forward_and_loss`, or its ``torch.compile``'d form.
    """

    device_type: str = "cpu"
    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    channels_last: bool = False
    forward_loss: Callable[..., tuple[Tensor, Tensor, dict[str, Tensor], Tensor]] = forward_and_loss

    @classmethod
    def of(cls, config: Any, device: torch.device) -> StepRuntime:
        """The runtime ``config`` asks for on ``device``.

        With ``compile`` the process's compile caches are reset first: a reused Ray worker
        trains many trials one after another, and guards that differ per trial (a model
        object, a retain probability) would otherwise pile up against dynamo's recompile
        limit, past which it silently runs eagerly.
        """
        forward = forward_and_loss
        if config.compile:
            torch._dynamo.reset()
            forward = torch.compile(forward_and_loss)
        return cls(
            device_type=device.type,
            dtype=AUTOCAST_DTYPES[config.precision],
            scaler=torch.amp.GradScaler(device.type) if config.precision == "fp16" else None,
            channels_last=config.channels_last,
            forward_loss=forward,
        )

    def prepare(self, model: nn.Module) -> nn.Module:
        """``model`` in this runtime's memory format (a no-op unless ``channels_last``)."""
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def batch(self, x: Tensor) -> Tensor:
        """An input batch in this runtime's memory format (4-D inputs only)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device_type, self.dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"scaler": self.scaler.state_dict()} if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


EAGER_FP32 = StepRuntime()
"""The default: float32, eager, default memory format, on the CPU (the device type only picks
the autocast backend, which float32 does not use)."""
