"""Decoded copies: what torchvision read, kept as tensors, read back only while its files stand."""

import logging
import os
import subprocess
import sys
from functools import partial

import pytest
import torch

from tests.dataset_files import N_TEST, N_TRAIN, write_mnist
from trainables.data import LazySplit, SourceData, Split, load_dataset
from trainables.data.decoded import DECODED_DIR_VARIABLE, decoded_dir, read_through
from trainables.data.sets import torchvision_sets


def copies(root) -> list:
    folder = decoded_dir(root)
    return sorted(folder.glob("*.pt")) if folder.is_dir() else []


@pytest.fixture
def torchvision_reads(monkeypatch):
    """How many times torchvision itself was asked for a split."""
    calls = []
    original = torchvision_sets.read_split

    def counted(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(torchvision_sets, "read_split", counted)
    return calls


def assert_same(a, b) -> None:
    for left, right in ((a.train, b.train), (a.test, b.test)):
        assert torch.equal(left.inputs, right.inputs) and torch.equal(left.targets, right.targets)
    assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
    assert a.num_classes == b.num_classes


def test_a_second_read_is_the_copy_and_equals_what_torchvision_read(tmp_path, torchvision_reads):
    write_mnist(tmp_path)
    first = load_dataset("mnist", root=tmp_path, val_fraction=0)
    assert len(torchvision_reads) == 2 and len(copies(tmp_path)) == 1
    second = load_dataset("mnist", root=tmp_path, val_fraction=0)
    assert len(torchvision_reads) == 2
    assert_same(first, second)
    assert second.train.inputs.shape == (N_TRAIN, 1, 28, 28)


def test_a_fresh_process_reads_the_copy_without_importing_torchvision(tmp_path):
    """The point of the copy: ``import torchvision`` (and with it dynamo) is ~1.3 s a process."""
    write_mnist(tmp_path)
    code = (
        "import sys\n"
        "from trainables.data import load_dataset\n"
        f"data = load_dataset('mnist', root={str(tmp_path)!r}, val_fraction=0)\n"
        "print(len(data.train), sorted({'torchvision', 'torch._dynamo'} & set(sys.modules)))\n"
    )
    outputs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append(done.stdout.strip())
    assert outputs == [f"{N_TRAIN} ['torch._dynamo', 'torchvision']", f"{N_TRAIN} []"]


def test_an_edited_source_file_is_read_afresh_and_its_old_copy_removed(tmp_path, torchvision_reads):
    write_mnist(tmp_path)
    load_dataset("mnist", root=tmp_path, val_fraction=0)
    write_mnist(tmp_path, labels_offset=3)
    for path in (tmp_path / "MNIST" / "raw").iterdir():  # a new mtime even on a coarse clock
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    again = load_dataset("mnist", root=tmp_path, val_fraction=0)
    assert len(torchvision_reads) == 4
    assert again.test.targets.tolist() == [(k + 3) % 10 for k in range(N_TEST)]
    assert len(copies(tmp_path)) == 1


def test_a_torn_copy_is_read_again_and_replaced(tmp_path, torchvision_reads, caplog):
    write_mnist(tmp_path)
    first = load_dataset("mnist", root=tmp_path, val_fraction=0)
    [copy] = copies(tmp_path)
    copy.write_bytes(copy.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="trainables.data.decoded"):
        again = load_dataset("mnist", root=tmp_path, val_fraction=0)
    assert "unreadable" in caplog.text and len(torchvision_reads) == 4
    assert_same(first, again)
    assert_same(first, load_dataset("mnist", root=tmp_path, val_fraction=0))
    assert len(torchvision_reads) == 4  # the rewritten copy serves the third read


def test_a_copy_folder_that_cannot_be_written_costs_only_speed(
    tmp_path, monkeypatch, torchvision_reads, caplog
):
    write_mnist(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(DECODED_DIR_VARIABLE, str(blocker / "copies"))
    with caplog.at_level(logging.INFO, logger="trainables.data.decoded"):
        for _ in range(2):
            assert len(load_dataset("mnist", root=tmp_path, val_fraction=0).test) == N_TEST
    assert len(torchvision_reads) == 4 and "no decoded copy of mnist kept" in caplog.text


def test_the_copy_folder_can_be_moved_off_a_read_only_data_root(tmp_path, monkeypatch):
    write_mnist(tmp_path / "data")
    monkeypatch.setenv(DECODED_DIR_VARIABLE, str(tmp_path / "copies"))
    load_dataset("mnist", root=tmp_path / "data", val_fraction=0)
    assert not (tmp_path / "data" / ".regstudy-decoded").exists()
    assert len(list((tmp_path / "copies").glob("mnist-*.pt"))) == 1


def small_source(value: int) -> SourceData:
    images = torch.full((3, 1, 2, 2), value, dtype=torch.uint8)
    return SourceData(Split(images, torch.arange(3)), Split(images, torch.arange(3)), 3)


def test_reader_settings_keep_separate_copies(tmp_path):
    source = tmp_path / "file"
    source.write_text("x")
    for value in (1, 2):
        build = partial(small_source, value)
        read_through("set", tmp_path, lambda: [source], {"v": value}, build)
    assert len(copies(tmp_path)) == 2
    for value in (1, 2):
        back = read_through("set", tmp_path, lambda: [source], {"v": value}, lambda: 1 / 0)
        assert int(back.train.inputs[0, 0, 0, 0]) == value


def test_splits_read_from_files_on_demand_are_not_copied(tmp_path):
    source = tmp_path / "file"
    source.write_text("x")
    lazy = LazySplit(dataset=[], targets=torch.zeros(0, dtype=torch.int64), sample_shape=(1, 2, 2))
    data = SourceData(lazy, lazy, 2)
    assert read_through("set", tmp_path, lambda: [source], {}, lambda: data) is data
    assert copies(tmp_path) == []


def test_without_its_files_a_set_is_left_to_its_reader_to_refuse(tmp_path):
    with pytest.raises(FileNotFoundError, match="mnist"):
        load_dataset("mnist", root=tmp_path)
    assert copies(tmp_path) == []


def test_a_source_file_that_vanishes_while_listed_is_left_to_the_reader(tmp_path):
    gone = tmp_path / "gone"
    built = read_through("set", tmp_path, lambda: [gone], {}, partial(small_source, 7))
    assert int(built.test.inputs[0, 0, 0, 0]) == 7


def test_a_set_is_keyed_by_its_own_files_only(tmp_path):
    """SVHN lives in the data root itself: other sets' files there must not key its copy."""
    for name in ("train_32x32.mat", "extra_32x32.mat", "test_32x32.mat", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    write_mnist(tmp_path)
    decoded_dir(tmp_path).mkdir()
    (decoded_dir(tmp_path) / "mnist-a-b.pt").write_bytes(b"x")
    svhn = torchvision_sets.source_files(torchvision_sets._SVHN, tmp_path)
    assert [p.name for p in svhn] == ["extra_32x32.mat", "test_32x32.mat", "train_32x32.mat"]
    mnist = torchvision_sets.source_files(torchvision_sets.TORCHVISION_SETS["mnist"], tmp_path)
    assert {p.parent.name for p in mnist} == {"raw"} and len(mnist) == 4
