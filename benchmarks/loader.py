"""Samples/s of the two loader paths, alone and feeding the p-grid net, on CIFAR-shaped data.

    python -m benchmarks.loader [--data-dir DIR] [--device cuda] [--batches 30] [--threads 1]
                                [--out FILE.md]

Uses CIFAR-10 from the data dir when it is there, else 50,000 random uint8 images (said in
the output). DeviceLoader keeps the split on the device; TorchLoader goes through a torch
DataLoader over the same tensors (per-sample indexing and collation, as for file-backed data).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch import nn

from trainables.data import DatasetSplits, DeviceLoader, Split, TorchLoader, load_dataset

from ._device import refuse_missing_cuda
from ._output import emit
from ._timing import interleaved

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


def batch_timer(loader, consume) -> Callable[[], None]:
    """One call: the next batch of ``loader`` (a new epoch when one ends), fed to ``consume``."""
    state = {"epoch": 0, "iterator": None}

    def next_batch():
        try:
            return next(state["iterator"])
        except (StopIteration, TypeError):
            loader.set_epoch(state["epoch"])
            state["epoch"] += 1
            state["iterator"] = iter(loader)
            return next(state["iterator"])

    def run() -> None:
        consume(*next_batch())

    return run


def loader_rows(split, mean, std, args, device: torch.device) -> list[tuple[str, str, float]]:
    """Per augmentation, DeviceLoader and TorchLoader batches interleaved round by round (as
    the regularizer benchmark interleaves steps): samples/s of each and their ratio."""
    step = None if args.no_model else sgd_step(device)
    consumers = {"loader only": lambda x, y: None}
    if step is not None:
        consumers["+ SGD step"] = step
    rows = []
    for label, augment in ((k, AUGMENTS[k]) for k in args.augment):
        for what, consume in consumers.items():
            steps = {
                cls.__name__: batch_timer(
                    cls(split, args.batch_size, True, augment, device, 0, True, mean, std, **extra),
                    consume,
                )
                for cls, extra in ((DeviceLoader, {}), (TorchLoader, {"num_workers": args.workers}))
            }
            timings = interleaved(steps, args.batches, device=device)
            rate = {name: args.batch_size / t.median_s for name, t in timings.items()}
            setup = f"{label}, {what}"
            rows.append(("DeviceLoader samples/s", setup, rate["DeviceLoader"]))
            rows.append(("TorchLoader samples/s", setup, rate["TorchLoader"]))
            rows.append(
                (
                    "DeviceLoader / TorchLoader throughput",
                    setup,
                    rate["DeviceLoader"] / rate["TorchLoader"],
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda")
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--batches", type=int, default=30, help="interleaved rounds (one batch each)"
    )
    parser.add_argument("--workers", type=int, default=0, help="TorchLoader worker processes")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--augment", nargs="*", default=list(AUGMENTS), choices=list(AUGMENTS))
    parser.add_argument("--no-model", action="store_true", help="time the loaders alone only")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    refuse_missing_cuda(parser, args.device)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    data, source = cifar_or_synthetic(args.data_dir)
    split = data.train if isinstance(data, DatasetSplits) else data
    mean, std = (
        (data.mean, data.std) if isinstance(data, DatasetSplits) else ([0.5] * 3, [0.25] * 3)
    )
    lines = [
        f"{source}; device {device}, {torch.get_num_threads()} CPU threads, batch "
        f"{args.batch_size}; {args.batches} rounds, the two loaders interleaved, median batch "
        "time (wall clock).",
        "",
        "| what | setup | measured |",
        "|---|---|---|",
    ]
    for what, setup, value in loader_rows(split, mean, std, args, device):
        lines.append(f"| {what} | {setup} | {value:.{3 if 'throughput' in what else 0}f} |")
    table = "\n".join(lines)
    emit(table, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
