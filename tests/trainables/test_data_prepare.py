"""prepare_datasets: offline copies laid out as torchvision reads them, idempotently."""

import logging
import os
import subprocess
import sys

import pytest
from torchvision import datasets

from trainables.data import prepare, prepare_datasets

MNIST_FILES = {name.removesuffix(".gz") for name, _ in datasets.MNIST.resources}


def test_mnist_is_decompressed_into_torchvisions_raw_folder(data_root):
    raw = data_root / "MNIST" / "raw"
    assert {path.name for path in raw.iterdir()} == MNIST_FILES
    assert (raw / "train-images-idx3-ubyte").stat().st_size == 16 + 60000 * 28 * 28
    assert len(datasets.MNIST(str(data_root), train=False)) == 10000


def test_preparing_again_changes_nothing(data_root):
    raw = data_root / "MNIST" / "raw"
    before = {path.name: path.stat().st_mtime_ns for path in raw.iterdir()}
    assert prepare_datasets(["mnist"], root=data_root) == [raw]
    assert {path.name: path.stat().st_mtime_ns for path in raw.iterdir()} == before


def test_datasets_read_from_packages_need_no_provisioning(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="trainables.data.prepare"):
        assert prepare_datasets(["digits", "uci:letter", "mnist1d"], root=tmp_path) == []
    assert caplog.text.count("needs no provisioning") == 3
    assert list(tmp_path.iterdir()) == []


def test_a_missing_offline_source_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare, "FASHION_MNIST_DIR", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        prepare_datasets(["fashion_mnist"], root=tmp_path)


def test_a_dataset_without_offline_copy_needs_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="study data prepare cifar10 --download"):
        prepare_datasets(["cifar10"], root=tmp_path)


def test_an_unknown_name_fails_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'mnsit'"):
        prepare_datasets(["mnist", "mnsit"], root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_decompressed_file_is_made_again(tmp_path):
    raw = prepare_datasets(["mnist"], root=tmp_path)[0]
    (raw / "t10k-labels-idx1-ubyte").unlink()
    assert prepare_datasets(["mnist"], root=tmp_path) == [raw]
    assert {path.name for path in raw.iterdir()} == MNIST_FILES


def test_a_sweep_driver_plans_and_provisions_without_torchvision(data_root):
    """Loading the main job's spec and checking its (provisioned) data imports neither
    torchvision nor dynamo: seconds of every sweep's start, in a process that never trains."""
    code = (
        "import sys\n"
        "from study.cli import build_parser, load_sweep_spec\n"
        "from study.runner import provision_data\n"
        "spec = load_sweep_spec(build_parser().parse_args(['sweep']))\n"
        "provision_data(spec)\n"
        "print(sorted({'torchvision', 'torch._dynamo'} & set(sys.modules)))\n"
    )
    env = {**os.environ, "REGSTUDY_DATA_DIR": str(data_root)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
