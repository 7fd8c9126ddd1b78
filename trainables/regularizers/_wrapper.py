"""Base for optimizers that wrap another (timm's Lookahead pattern).

The wrapper shares the base optimizer's ``param_groups``, ``state`` and
``defaults``, so LR schedulers, gradient scalers and checkpoints see a single
optimizer. Its own random state lives in :class:`DeviceGenerators`, saved in
``state_dict`` beside the base's, so a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer


def check_keep_probability(p: float, owner: str) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p <= 1.0:
        raise ValueError(f"{owner} p must be a number in (0, 1], got p={p!r}")
    return float(p)


class DeviceGenerators:
    """One ``torch.Generator`` per device, derived from one seed; its state is checkpointable."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self._given = generator
        self._seed = int(torch.randint(0, 2**62, ())) if generator is None else None
        self._by_device: dict[str, torch.Generator] = {}

    def for_device(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._by_device:
            if self._given is not None:
                if self._given.device.type != device.type:
                    raise ValueError(
                        f"generator is on {self._given.device} but parameters are on {device}"
                    )
                self._by_device[key] = self._given
            else:
                gen = torch.Generator(device=device)
                gen.manual_seed(self._seed + len(self._by_device))
                self._by_device[key] = gen
        return self._by_device[key]

    def state_dict(self) -> dict[str, Any]:
        return {
            "seed": self._seed,
            "states": {key: gen.get_state() for key, gen in self._by_device.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._seed = state["seed"]
        for key, gen_state in state["states"].items():
            self.for_device(torch.device(key)).set_state(gen_state)


class OptimizerWrapper(Optimizer):
    """An optimizer that delegates to ``optimizer`` and adds behaviour around its step."""

    def __init__(self, optimizer: Optimizer, generator: torch.Generator | None = None) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.defaults = optimizer.defaults
        self.param_groups = optimizer.param_groups
        self.state = optimizer.state
        self.generators = DeviceGenerators(generator)

    def trainable_params(self) -> Iterator[Tensor]:
        for group in self.param_groups:
            for p in group["params"]:
                if p.requires_grad:
                    yield p

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.optimizer.add_param_group(param_group)

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        del state

    def state_dict(self) -> dict[str, Any]:
        return {
            "base": self.optimizer.state_dict(),
            "wrapper": type(self).__name__,
            "generators": self.generators.state_dict(),
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("wrapper") != type(self).__name__:
            raise ValueError(
                f"state_dict was saved by {state_dict.get('wrapper', 'a plain optimizer')!s}, "
                f"not {type(self).__name__}"
            )
        self.optimizer.load_state_dict(state_dict["base"])
        self.param_groups = self.optimizer.param_groups
        self.state = self.optimizer.state
        self.generators.load_state_dict(state_dict["generators"])
        self.load_extra_state(state_dict["extra"])

    def _closure_loss(self, closure: Callable[[], float] | None) -> Any:
        if closure is None:
            return None
        with torch.enable_grad():
            return closure()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()}, optimizer={self.optimizer!r})"

    def extra_repr(self) -> str:
        return ""
