"""Image augmentations applied to whole batches on the training device, from one seeded generator.

Each op draws its randomness per image from the ``generator`` it is handed, so the same
generator state gives the same batch. Ops marked ``on_normalized`` run after normalisation:
Cutout fills its hole with 0, the dataset mean, as in the Cutout paper's code.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor

from .autoaugment import autoaugment_cifar10


def _uniform_ints(high: int, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.randint(0, high, (n,), generator=generator, device=device)


def random_crop(x: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Each image cropped back to its size at a random offset of the zero-padded image."""
    if padding < 0:
        raise ValueError(f"crop padding must be ≥ 0, got {padding}")
    b, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = _uniform_ints(2 * padding + 1, b, generator, x.device)
    dx = _uniform_ints(2 * padding + 1, b, generator, x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    rows_kept = padded.gather(2, rows.expand(b, c, h, w + 2 * padding))
    return rows_kept.gather(3, cols.expand(b, c, h, w))


def horizontal_flip(x: Tensor, generator: torch.Generator) -> Tensor:
    """Each image mirrored left-right with probability 1/2."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def standard(x: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """The standard CIFAR augmentation: pad-4 random crop, then random horizontal flip."""
    return horizontal_flip(random_crop(x, generator, padding), generator)


def cutout(x: Tensor, generator: torch.Generator, size: int = 16) -> Tensor:
    """One size×size hole per image, centred anywhere in it and clipped at the border, set to 0.

    The Cutout paper uses 16 for CIFAR-10 and 8 for CIFAR-100.
    """
    if size < 1:
        raise ValueError(f"cutout size must be ≥ 1, got {size}")
    b, _, h, w = x.shape
    cy = _uniform_ints(h, b, generator, x.device)[:, None]
    cx = _uniform_ints(w, b, generator, x.device)[:, None]
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    in_rows = (rows >= cy - size // 2) & (rows < cy + size // 2)
    in_cols = (cols >= cx - size // 2) & (cols < cx + size // 2)
    hole = in_rows[:, :, None] & in_cols[:, None, :]
    return x.masked_fill(hole[:, None], 0)


def _identity(x: Tensor, generator: torch.Generator) -> Tensor:
    return x


@dataclass(frozen=True)
class AugmentOp:
    fn: Callable[..., Tensor]
    on_normalized: bool = False

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(inspect.signature(self.fn).parameters)[2:]


AUGMENTATIONS: dict[str, AugmentOp] = {
    "none": AugmentOp(_identity),
    "standard": AugmentOp(standard),
    "crop": AugmentOp(random_crop),
    "flip": AugmentOp(horizontal_flip),
    "cutout": AugmentOp(cutout, on_normalized=True),
    "autoaugment": AugmentOp(autoaugment_cifar10),
}


def list_augmentations() -> list[str]:
    return sorted(AUGMENTATIONS)


class Augment:
    """A composed augmentation, e.g. ``Augment(("standard", "cutout"), cutout_size=8)``.

    Options are ``<op>_<option>``. Ops on raw pixels run first, in the order given, then the
    loader normalises, then the ``on_normalized`` ops run.
    """

    def __init__(self, names: str | Sequence[str] = "none", **options: float) -> None:
        self.names = (names,) if isinstance(names, str) else tuple(names)
        unknown = [n for n in self.names if n not in AUGMENTATIONS]
        if unknown:
            raise ValueError(
                f"unknown augmentation {unknown[0]!r}; choose from {list_augmentations()}"
            )
        accepted = {f"{n}_{o}" for n in self.names for o in AUGMENTATIONS[n].options}
        if set(options) - accepted:
            raise ValueError(
                f"augmentation {self.names} takes options {sorted(accepted) or 'none'}, "
                f"got {sorted(set(options) - accepted)}"
            )
        self.options = dict(options)
        self._raw: list[Callable[..., Tensor]] = []
        self._normalized: list[Callable[..., Tensor]] = []
        for name in self.names:
            op = AUGMENTATIONS[name]
            kwargs = {o: options[f"{name}_{o}"] for o in op.options if f"{name}_{o}" in options}
            (self._normalized if op.on_normalized else self._raw).append(partial(op.fn, **kwargs))

    @property
    def is_identity(self) -> bool:
        return all(name == "none" for name in self.names)

    def raw(self, x: Tensor, generator: torch.Generator) -> Tensor:
        for op in self._raw:
            x = op(x, generator)
        return x

    def normalized(self, x: Tensor, generator: torch.Generator) -> Tensor:
        for op in self._normalized:
            x = op(x, generator)
        return x

    def __repr__(self) -> str:
        options = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"Augment({self.names!r}{options})"


def as_augment(augment: str | Sequence[str] | Augment | None) -> Augment:
    if isinstance(augment, Augment):
        return augment
    return Augment("none" if augment is None else augment)
