"""The benchmarks' own arithmetic: how gaps, CPU seconds and ratios are derived from what the
probes record. The benchmarks' numbers are only as good as these."""

from __future__ import annotations

import argparse
import math

import pytest
import torch

from benchmarks import dataset_read, loader, make_run, packing, regularizers, sweep
from benchmarks._timing import Timing, interleaved
from tests.dataset_files import N_TRAIN, write_mnist
from trainables.data import Split
from trainables.data.decoded import decoded_dir


def _call(pid: int, trial: str, start: float, end: float, cpu: float) -> dict:
    return {"pid": pid, "trial": trial, "start": start, "end": end, "cpu": cpu}


def test_gaps_split_between_trials_and_between_epochs_per_worker():
    calls = [
        _call(1, "a", 0.0, 1.0, 1.0),
        _call(1, "a", 1.25, 2.0, 2.0),  # epoch gap 0.25
        _call(1, "b", 2.5, 3.0, 3.0),  # trial gap 0.5
        _call(2, "c", 0.0, 4.0, 4.0),  # another worker: no gap with worker 1
        _call(2, "d", 4.125, 5.0, 5.0),  # trial gap 0.125
    ]
    between, within = sweep._gaps(list(reversed(calls)))
    assert sorted(between) == [0.125, 0.5]
    assert within == [0.25]


def test_workers_cpu_is_each_process_clock_at_its_last_record():
    calls = [_call(1, "a", 0, 1, 3.0), _call(1, "b", 1, 2, 7.5), _call(2, "c", 0, 1, 2.0)]
    assert sweep._workers_cpu(calls) == pytest.approx(9.5)


def test_sweep_render_marks_goals_met_and_missed():
    rows = [("a", "s", 0.9, ("≥", 0.85)), ("b", "s", 12.0, ("≤", 10.0)), ("c", "s", 1.0, None)]
    table = sweep.render(rows, "header", 1, quick=True)
    assert "| a | s | 0.900 | ≥ 0.85 met |" in table
    assert "| b | s | 12.000 | ≤ 10 missed |" in table
    assert "| c | s | 1.000 |  |" in table


def test_a_ratio_pairs_each_round_with_the_baseline_s_same_round():
    """A slow spell that hits both variants of a round cancels out of the paired ratio; the
    ratio of the two medians would mix rounds (here 2.0 against the true 1.1)."""
    base = Timing("base", wall_s=(1.0, 1.0, 1.0, 10.0, 10.0))
    slower = Timing("slower", wall_s=(1.1, 1.1, 11.0, 11.0, 11.0))
    assert slower.ratio_to(base) == pytest.approx(1.1)
    low, high = slower.ratio_interval(base)
    assert low <= 1.1 <= high
    two = Timing("two", wall_s=(1.0, 1.0))
    assert all(math.isnan(end) for end in two.ratio_interval(two)), "no interval from 2 rounds"


def test_interleaved_keeps_every_round_and_the_table_shows_the_interval():
    calls = {"a": lambda: sum(range(2000)), "b": lambda: sum(range(4000))}
    timings = interleaved(calls, rounds=5, warmup=0)
    assert len(timings["a"].wall_s) == len(timings["a"].cpu_s) == 5
    row = regularizers.ratio_row("b / a", "s", timings["b"], timings["a"], "wall", 9.0)
    assert row.interval[0] <= row.value <= row.interval[1]
    table = regularizers.render([row, ("plain", "s", 2.0, None, None)], torch.device("cpu"), "cpu")
    assert f"| {row.value:.3f} [{row.interval[0]:.3f}, {row.interval[1]:.3f}] |" in table
    assert "| plain | s | 2.000 |  |  |" in table
    assert "≤ 9 met" in table


def test_import_cost_lists_what_a_worker_adds_to_the_trainer_in_order():
    cost = sweep.import_cost()
    assert list(cost) == ["ray", "pandas", "ray.train", "ray.tune.trainable.function_trainable"]
    assert cost["ray"] > 5 and cost["pandas"] > 5, "each of these is tens of MiB"


def test_make_run_render_ratios_against_the_base(tmp_path):
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "main_job.yaml").write_text("# old\nname: pgrid-digits\n")
    walls = {"base": [100.0, 120.0], "head": [55.0, 65.0], "head code, base job": [90.0, 110.0]}
    table = make_run.render(walls, "abc123", tmp_path, "1.0")
    assert (
        "| `make run`'s sweep at abc123 | pgrid-digits (range 100–120) | 110.0 | 1.000 |" in table
    )
    assert "| 60.0 | 0.545 |" in table
    assert "| this code on the base job | pgrid-digits (range 90–110) | 100.0 | 0.909 |" in table


def test_loader_rows_interleave_both_loaders_and_give_their_ratio():
    generator = torch.Generator().manual_seed(0)
    split = Split(
        torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=generator),
        torch.randint(0, 10, (64,), generator=generator),
    )
    args = argparse.Namespace(
        no_model=True, augment=["none"], batch_size=16, workers=0, batches=6
    )  # 6 batches over a 4-batch epoch: the timer starts a new epoch by itself
    rows = loader.loader_rows(split, [0.5] * 3, [0.25] * 3, args, torch.device("cpu"))
    values = {what: value for what, _, value in rows}
    assert values["DeviceLoader / TorchLoader throughput"] == pytest.approx(
        values["DeviceLoader samples/s"] / values["TorchLoader samples/s"]
    )
    assert all(value > 0 for value in values.values())


def test_packing_runs_its_processes_together_and_reports_a_rate():
    assert packing.throughput("cpu", 2, 1) > 0


@pytest.mark.slow
def test_the_papers_gpu_rows_run_at_a_tiny_batch_on_the_cpu():
    """The rows only ``--device cuda`` measures (ResNet-164, WRN-28-10, ELU-11, bf16 + compile),
    run end to end here so a borrowed GPU's minutes are not spent finding a bug (~50 s)."""
    rows = regularizers.paper_rows(torch.device("cpu"), rounds=3, batch=2, vcl_batch=4)
    assert [(row.what, row.setup.split(",")[0]) for row in rows] == [
        ("DA step / ReLU step", "ResNet-164"),
        ("DA step / ReLU step", "WRN-28-10"),
        ("VCL step / no-norm step", "ELU-11"),
        ("BN step / no-norm step", "ELU-11"),
        ("bf16+compile step / fp32 eager step", "WRN-28-10"),
    ]
    assert all(math.isfinite(row.value) and row.value > 0 for row in rows)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
@pytest.mark.parametrize("bench", [regularizers, loader, packing], ids=lambda m: m.__name__)
def test_the_gpu_set_refuses_cuda_at_once_where_there_is_none(bench, capsys):
    with pytest.raises(SystemExit) as refused:
        bench.main(["--device", "cuda"])
    assert refused.value.code == 2
    assert "--device cuda: no CUDA device here" in capsys.readouterr().err


def test_dataset_read_pairs_fresh_processes_with_and_without_the_copy(tmp_path):
    write_mnist(tmp_path)
    timings, rss = dataset_read.measure("mnist", tmp_path, rounds=2, checksums={})
    assert [t.samples for t in timings.values()] == [2, 2] and set(rss) == {True, False}
    assert len(list(decoded_dir(tmp_path).glob("mnist-*.pt"))) == 1
    lines = dataset_read.rows("MNIST", "small", timings, rss)
    assert [line.split(" | ")[0] for line in lines] == [
        "| MNIST: read, copy / torchvision, wall",
        "| MNIST: read, copy / torchvision, CPU",
        "| MNIST: RSS the read adds, MiB",
    ]


def test_dataset_read_without_a_copy_goes_through_torchvision(tmp_path):
    write_mnist(tmp_path)
    run = dataset_read.read_once("mnist", tmp_path, copy=False, checksums={})
    assert run["n"] == N_TRAIN - round(0.1 * N_TRAIN)
    assert not decoded_dir(tmp_path).exists()
