"""Samples/s of the two loader paths, alone and feeding the p-grid net, on CIFAR-shaped data.

    python -m benchmarks.loader [--data-dir DIR] [--device cuda] [--batches 30] [--threads 1]

Uses CIFAR-10 from the data dir when it is there, else 50,000 random uint8 images (said in
the output). DeviceLoader keeps the split on the device; TorchLoader goes through a torch
DataLoader over the same tensors (per-sample indexing and collation, as for file-backed data).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from trainables.data import DatasetSplits, DeviceLoader, Split, TorchLoader, load_dataset

AUGMENTS = {
    "none": "none",
    "standard": "standard",
    "standard+cutout": ("standard", "cutout"),
    "standard+autoaugment+cutout": ("standard", "autoaugment", "cutout"),
}


def cifar_or_synthetic(data_dir: str | None) -> tuple[DatasetSplits | Split, str]:
    try:
        splits = load_dataset("cifar10", root=data_dir, val_fraction=0)
        return splits, "CIFAR-10 train split"
    except FileNotFoundError:
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (50000, 3, 32, 32), dtype=torch.uint8, generator=generator)
        labels = torch.randint(0, 10, (50000,), generator=generator)
        return Split(images, labels), "synthetic uint8 data (no CIFAR-10 on disk)"


def sgd_step(device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], None]:
    from trainables.models import build_model

    model = build_model("pgrid_cnn", 10, (3, 32, 32)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    return step


def samples_per_second(loader, batches: int, consume, device: torch.device) -> float:
    """Throughput over ``batches`` batches after two warm-up batches."""
    loader.set_epoch(0)
    iterator = iter(loader)
    for _ in range(2):
        consume(*next(iterator))
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        x, y = next(iterator)
        consume(x, y)
        seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--workers", type=int, default=0, help="TorchLoader worker processes")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--augment", nargs="*", default=list(AUGMENTS), choices=list(AUGMENTS))
    parser.add_argument("--no-model", action="store_true", help="time the loaders alone only")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data, source = cifar_or_synthetic(args.data_dir)
    split = data.train if isinstance(data, DatasetSplits) else data
    mean, std = (
        (data.mean, data.std) if isinstance(data, DatasetSplits) else ([0.5] * 3, [0.25] * 3)
    )
    print(
        f"{source}; device {device}, {torch.get_num_threads()} CPU threads, batch {args.batch_size}"
    )
    print(f"{'loader':12s} {'augment':28s} {'loader only':>12s} {'+ SGD step':>12s}  (samples/s)")
    step = None if args.no_model else sgd_step(device)
    for label, augment in ((k, AUGMENTS[k]) for k in args.augment):
        for cls, extra in ((DeviceLoader, {}), (TorchLoader, {"num_workers": args.workers})):
            loader = cls(split, args.batch_size, True, augment, device, 0, True, mean, std, **extra)
            alone = samples_per_second(loader, args.batches, lambda x, y: None, device)
            trained = (
                float("nan") if step is None
                else samples_per_second(loader, args.batches, step, device)
            )  # fmt: skip
            print(f"{cls.__name__:12s} {label:28s} {alone:12.0f} {trained:12.0f}")


if __name__ == "__main__":
    main()
