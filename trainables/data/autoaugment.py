"""torchvision's CIFAR-10 AutoAugment policy with per-image randomness, applied to a batch.

torchvision's ``AutoAugment`` draws one sub-policy per call, so a batched call gives every
image the same operations. Here each image draws its own sub-policy, coin flips and signs,
exactly as ``AutoAugment.forward`` does for one image, from the caller's generator; then, for
each of the sub-policy's two steps, the images that drew the same (operation, signed magnitude)
are transformed together by torchvision's own ``_apply_op``. Cost: one host sync to read the
draws and one ``_apply_op`` call per distinct (operation, magnitude) per step, about 20–40
small calls per batch instead of one.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Any

import torch
from torch import Tensor


@lru_cache(maxsize=1)
def _policy() -> Any:
    """torchvision's CIFAR-10 policy, made on first use: importing torchvision costs a process
    seconds, and a sweep's driver imports this module without augmenting anything."""
    from torchvision.transforms import AutoAugment, AutoAugmentPolicy

    return AutoAugment(AutoAugmentPolicy.CIFAR10)


@lru_cache(maxsize=8)
def _magnitudes(height: int, width: int) -> dict[str, tuple[list[float], bool]]:
    space = _policy()._augmentation_space(10, (height, width))
    return {name: (values.tolist(), signed) for name, (values, signed) in space.items()}


def _grouped_draws(
    choice: list[int], coins: list[list[float]], signs: list[list[int]], step: int, space: dict
) -> dict[tuple[str, float], list[int]]:
    """Images grouped by the (operation, signed magnitude) they apply at ``step``."""
    groups: dict[tuple[str, float], list[int]] = defaultdict(list)
    for image, policy_id in enumerate(choice):
        op_name, probability, magnitude_id = _policy().policies[policy_id][step]
        if coins[image][step] <= probability:
            magnitudes, signed = space[op_name]
            magnitude = float(magnitudes[magnitude_id]) if magnitude_id is not None else 0.0
            if signed and signs[image][step] == 0:
                magnitude = -magnitude
            groups[(op_name, magnitude)].append(image)
    return groups


def autoaugment_cifar10(x: Tensor, generator: torch.Generator) -> Tensor:
    """AutoAugment (CIFAR-10 policy) on a uint8 (N,C,H,W) batch, an independent draw per image."""
    from torchvision.transforms.autoaugment import _apply_op

    if x.dtype != torch.uint8:
        raise ValueError(f"autoaugment needs uint8 images, got {x.dtype}")
    n, _, height, width = x.shape
    draw = {"generator": generator, "device": x.device}
    choice = torch.randint(len(_policy().policies), (n,), **draw).tolist()
    coins = torch.rand((n, 2), **draw).tolist()
    signs = torch.randint(2, (n, 2), **draw).tolist()
    space = _magnitudes(height, width)
    out = x.clone()
    for step in range(2):
        for (op_name, magnitude), images in _grouped_draws(
            choice, coins, signs, step, space
        ).items():
            index = torch.tensor(images, device=x.device)
            out[index] = _apply_op(
                out[index], op_name, magnitude, interpolation=_policy().interpolation, fill=None
            )
    return out
