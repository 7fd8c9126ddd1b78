"""The torchvision loading path: real offline MNIST / Fashion-MNIST, and small files written
in CIFAR's, SVHN's, EMNIST's and Tiny ImageNet's own on-disk formats.

torchvision checks the MD5 of every CIFAR batch and SVHN .mat file each time the dataset is
constructed, not only after a download, against the checksums in the class attributes
``train_list`` / ``test_list`` / ``meta`` / ``split_list``. A file we write cannot match the
real checksums, so these tests set those attributes to our files' MD5s (monkeypatch): the rest
of torchvision's reading code runs as it is. Unpatched, our files are refused — tested too.
"""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat
from torchvision import datasets
from torchvision.datasets.utils import calculate_md5

from tests.dataset_files import write_idx
from trainables.data import LazySplit, TorchLoader, load_dataset, make_loader
from trainables.data.sources import FASHION_MNIST_DIR


def test_mnist_from_the_offline_files_has_the_official_sizes_and_statistics(data_root):
    splits = load_dataset("mnist", root=data_root, val_fraction=0)
    assert (len(splits.train), len(splits.test)) == (60000, 10000)
    assert splits.train.inputs.shape[1:] == (1, 28, 28) and splits.train.inputs.dtype == torch.uint8
    assert torch.bincount(splits.train.targets).tolist()[1] == 6742
    torch.testing.assert_close(splits.mean, torch.tensor([0.1307]), atol=1e-4, rtol=0)
    torch.testing.assert_close(splits.std, torch.tensor([0.3081]), atol=1e-4, rtol=0)


@pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(),
    reason=f"{FASHION_MNIST_DIR} absent (apt-get install dataset-fashion-mnist)",
)
def test_fashion_mnist_from_debians_files_has_6000_images_per_class(data_root):
    splits = load_dataset("fashion_mnist", root=data_root, val_fraction=0)
    assert (len(splits.train), len(splits.test)) == (60000, 10000)
    assert torch.bincount(splits.train.targets).tolist() == [6000] * 10


def test_mnist_as_rgb32_feeds_a_cifar_shaped_loader(data_root):
    splits = load_dataset("mnist", root=data_root, to_rgb32=True)
    x, y = next(iter(make_loader(splits, batch_size=64, augment=("standard", "cutout"))))
    assert x.shape == (64, 3, 32, 32) and y.shape == (64,)


def pattern(n: int, channels: int = 3, size: int = 32) -> np.ndarray:
    """uint8 (N,C,H,W) images whose every pixel encodes its own index."""
    i, c, h, w = np.meshgrid(*(np.arange(k) for k in (n, channels, size, size)), indexing="ij")
    return ((i * 7 + c * 50 + h * 3 + w) % 256).astype(np.uint8)


def write_cifar(root, cls, n_train_per_batch: int = 4, n_test: int = 6):
    """Batches in cifar-*-python pickle format, and the MD5 table torchvision checks them with."""
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    label_key = "labels" if cls is datasets.CIFAR10 else "fine_labels"
    rows = {name: n_train_per_batch for name, _ in cls.train_list} | {
        name: n_test for name, _ in cls.test_list
    }
    images = pattern(sum(rows.values()))
    start, written = 0, {}
    for name, n in rows.items():
        batch = {"data": images[start : start + n].reshape(n, -1), label_key: list(range(n))}
        (folder / name).write_bytes(pickle.dumps(batch))
        written[name], start = images[start : start + n], start + n
    meta = {cls.meta["key"]: [f"class{k}" for k in range(10)]}
    (folder / cls.meta["filename"]).write_bytes(pickle.dumps(meta))
    checksums = {
        "train_list": [[name, calculate_md5(folder / name)] for name, _ in cls.train_list],
        "test_list": [[name, calculate_md5(folder / name)] for name, _ in cls.test_list],
        "meta": cls.meta | {"md5": calculate_md5(folder / cls.meta["filename"])},
    }
    return written, checksums


@pytest.mark.parametrize(
    ("name", "cls"), [("cifar10", datasets.CIFAR10), ("cifar100", datasets.CIFAR100)]
)
def test_cifar_batches_load_through_torchvision_in_channel_first_order(
    tmp_path, monkeypatch, name, cls
):
    written, checksums = write_cifar(tmp_path, cls)
    for attribute, value in checksums.items():
        monkeypatch.setattr(cls, attribute, value)
    splits = load_dataset(name, root=tmp_path, val_fraction=0)
    train_images = np.concatenate([written[n] for n, _ in cls.train_list])
    assert torch.equal(splits.train.inputs, torch.from_numpy(train_images))
    assert torch.equal(
        splits.test.inputs, torch.from_numpy(written["test_batch" if name == "cifar10" else "test"])
    )
    assert splits.in_shape == (3, 32, 32)


def test_cifar_files_with_other_checksums_are_refused_with_the_command(tmp_path):
    write_cifar(tmp_path, datasets.CIFAR10)
    with pytest.raises(FileNotFoundError, match="corrupted") as error:
        load_dataset("cifar10", root=tmp_path)
    assert f"study data prepare cifar10 --download --data-dir {tmp_path}" in str(error.value)


def test_svhn_trains_on_train_plus_extra_with_label_10_as_digit_0(tmp_path, monkeypatch):
    sizes = {"train": 5, "extra": 3, "test": 4}
    split_list = {}
    for split, n in sizes.items():
        url, filename, _ = datasets.SVHN.split_list[split]
        x = pattern(n).transpose(2, 3, 1, 0)  # SVHN's .mat stores (H, W, C, N)
        savemat(tmp_path / filename, {"X": x, "y": np.full((n, 1), 10)})
        split_list[split] = [url, filename, calculate_md5(tmp_path / filename)]
    monkeypatch.setattr(datasets.SVHN, "split_list", split_list)
    splits = load_dataset("svhn", root=tmp_path, val_fraction=0)
    assert (len(splits.train), len(splits.test)) == (8, 4)
    assert splits.train.targets.tolist() == [0] * 8
    assert torch.equal(splits.test.inputs, torch.from_numpy(pattern(4)))
    assert len(load_dataset("svhn", root=tmp_path, val_fraction=0, extra=False).train) == 5


def test_emnist_images_are_transposed_upright(tmp_path):
    raw = tmp_path / "EMNIST" / "raw"
    raw.mkdir(parents=True)
    stored = pattern(6, channels=1, size=28)[:, 0]
    for part in ("train", "test"):
        write_idx(raw / f"emnist-balanced-{part}-images-idx3-ubyte", stored)
        write_idx(raw / f"emnist-balanced-{part}-labels-idx1-ubyte", np.arange(6))
    splits = load_dataset("emnist_balanced", root=tmp_path, val_fraction=0)
    assert splits.num_classes == 47
    assert torch.equal(splits.test.inputs[:, 0], torch.from_numpy(stored).transpose(1, 2))


def write_png(value: int, path, grey: bool = False) -> None:
    """A flat 64×64 image; some Tiny ImageNet files are greyscale, so we write some too."""
    shape = (64, 64) if grey else (64, 64, 3)
    Image.fromarray(np.full(shape, value, dtype=np.uint8)).save(path)


def write_tiny_imagenet(root, classes=("n01", "n02"), per_class: int = 3):
    base = root / "tiny-imagenet-200"
    for k, wnid in enumerate(classes):
        folder = base / "train" / wnid / "images"
        folder.mkdir(parents=True)
        (base / "train" / wnid / f"{wnid}_boxes.txt").write_text("")
        for j in range(per_class):
            write_png(10 * k + j, folder / f"{wnid}_{j}.png", grey=j == 0)
    (base / "val" / "images").mkdir(parents=True)
    annotations = []
    for k, wnid in enumerate(reversed(classes)):
        write_png(200 + k, base / "val" / "images" / f"val_{k}.png")
        annotations.append(f"val_{k}.png\t{wnid}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(annotations) + "\n")


def test_tiny_imagenet_is_read_from_files_through_a_torch_dataloader(tmp_path):
    write_tiny_imagenet(tmp_path)
    splits = load_dataset("tiny_imagenet", root=tmp_path, val_fraction=0)
    assert isinstance(splits.train, LazySplit) and splits.in_shape == (3, 64, 64)
    assert (len(splits.train), len(splits.test), splits.num_classes) == (6, 2, 2)
    assert splits.test.targets.tolist() == [1, 0]  # val_0 is n02, val_1 is n01
    loader = make_loader(splits, "train", batch_size=4, augment="standard")
    assert isinstance(loader, TorchLoader)
    loader.set_epoch(0)
    assert [tuple(x.shape) for x, _ in loader] == [(4, 3, 64, 64), (2, 3, 64, 64)]


def test_tiny_imagenet_validation_split_comes_from_train_files(tmp_path):
    write_tiny_imagenet(tmp_path, per_class=5)
    splits = load_dataset("tiny_imagenet", root=tmp_path, val_fraction=0.2, seed=1)
    assert (len(splits.train), len(splits.val)) == (8, 2)
    for x, y in splits.val.dataset:
        assert x.shape == (3, 64, 64) and int(x[0, 0, 0]) // 10 == y
