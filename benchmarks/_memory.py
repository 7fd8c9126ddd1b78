"""Peak tensor memory of a piece of code, counted exactly on any device.

CPU PyTorch keeps no allocator statistics and process RSS is too noisy to
compare variants a few percent apart, so this counts storages instead: a
``TorchDispatchMode`` sees every tensor an op creates (forward, backward and
optimizer alike), records its storage's size once, and a finalizer on each
tensor notices when the last tensor viewing a storage dies. The live total
is exact for tensors created inside the block; memory allocated outside
torch (e.g. numpy scratch buffers) is not counted.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class _StorageCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._views: dict[int, int] = {}
        self._sizes: dict[int, int] = {}

    def _release(self, key: int) -> None:
        self._views[key] -= 1
        if self._views[key] == 0:
            self.live -= self._sizes.pop(key)
            del self._views[key]

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key == 0:
            return
        if key not in self._views:
            self._views[key] = 0
            self._sizes[key] = storage.nbytes()
            self.live += storage.nbytes()
            self.peak = max(self.peak, self.live)
        self._views[key] += 1
        weakref.finalize(tensor, self._release, key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for item in tree_flatten(out)[0]:
            if isinstance(item, torch.Tensor) and not item.is_meta:
                self._track(item)
        return out


def peak_tensor_bytes(fn: Callable[[], object]) -> int:
    """The largest number of bytes held at once by tensors ``fn`` creates while it runs."""
    with _StorageCounter() as counter:
        fn()
    return counter.peak
