"""``study reproduce --plan`` and ``--list``: trials enumerated as the runner runs them, costs
computed (parameters, FLOPs, measured steps), nothing started, nothing logged."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
import ray
import torch
from ray.tune.search.variant_generator import generate_variants
from torch.utils.flop_counter import FlopCounterMode

from search_spaces import get_space
from study import plan as planner
from study.cli import main
from study.recipes import OUT_OF_SCOPE_FILE, list_recipes, load_recipe, recipes_dir
from study.runner import _expected_trials, _param_space
from study.trials import count_trainings, grid_trial_configs, plan_trials
from trainables.config import TrainConfig
from trainables.data import load_dataset
from trainables.data.registry import dataset_info
from trainables.data.sets.torchvision_sets import svhn_info
from trainables.models import build_model

REQUIRED = {"part", "arm", "seed", "params", "epochs", "steps_per_epoch", "flops_per_step",
            "seconds_per_step", "device_kind", "estimated_hours"}  # fmt: skip
FCNET_MNIST = 784 * 1000 + 1000 + 1000 * 1000 + 1000 + 1000 * 10 + 10
WRN_28_10_CIFAR10 = 36_479_194  # Zagoruyko & Komodakis' WRN-28-10, the commonly quoted count

TINY = """
title: a tiny sweep recipe
paper: none
artifact: test
defaults:
  space: none
  metric: test_error
  grid: {activation: [relu, drop_activation]}
  variants: {bn: {norm: bn}, none: {norm: none}}
  train: {dataset: digits, model: fcnet, arch: {hidden: [16]}, batch_size: 64, val_fraction: 0.0,
          eval_subset: 100}
scales:
  quick:
    parts:
      cpu: {budget: {epochs: 2, repeats: 2, max_concurrent: 2}}
  paper:
    machine: a GPU box
    parts:
      cpu: {budget: {epochs: 3, repeats: 3, max_concurrent: 2}}
      gpu: {extends: cpu, resources: {cpus_per_trial: 2, gpus_per_trial: 0.5}}
"""
OPTUNA = """
title: an Optuna recipe
paper: none
artifact: test
defaults:
  space: lrd
  metric: test_error
  train: {dataset: digits, model: fcnet, arch: {hidden: [16]}, norm: none, batch_size: 64,
          val_fraction: 0.0}
scales:
  quick: {parts: {search: {budget: {epochs: 1, num_samples: 3, repeats: 2}}}}
  paper: {parts: {search: {budget: {epochs: 1, num_samples: 4, repeats: 1}}}}
"""
SCRIPT = """
title: a script recipe
paper: none
artifact: test
script: {module}
scales:
  quick: {{options: {{seeds: 2}}}}
  paper: {{options: {{seeds: 3}}}}
"""
HOOK = """
from trainables.config import TrainConfig


def plan(scale, options):
    rows = [{"part": "fit", "arm": "relu", "seed": seed,
             "config": TrainConfig(dataset="regression:xsinx", model="regression_mlp",
                                   norm="none", batch_size=20, epochs=7, val_fraction=0.0,
                                   seed=seed, num_threads=1)}
            for seed in range(options["seeds"])]
    return rows + [{"part": "toy", "arm": "adam", "seed": 0, "estimated_hours": 0.5}]
"""


@pytest.fixture
def recipes(tmp_path, monkeypatch):
    """A recipes folder of small recipes (and the real out-of-scope list), the cwd elsewhere."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "tiny.yaml").write_text(TINY)
    (folder / "optuna_search.yaml").write_text(OPTUNA)
    (folder / "hooked.py").write_text(HOOK)
    (folder / "hooked.yaml").write_text(SCRIPT.format(module="hooked.py"))
    (folder / "silent.py").write_text("def run(**_):\n    pass\n")
    (folder / "silent.yaml").write_text(SCRIPT.format(module="silent.py"))
    shutil.copy(recipes_dir() / OUT_OF_SCOPE_FILE, folder / OUT_OF_SCOPE_FILE)
    monkeypatch.setenv("REGSTUDY_RECIPES", str(folder))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return folder


def test_plan_json_has_one_object_per_trial_in_run_order(recipes, capsys):
    assert main(["reproduce", "tiny", "--scale", "paper", "--plan", "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    trials = plan["trials"]
    assert len(trials) == 2 * 2 * 3 * 2 and all(set(t) >= REQUIRED for t in trials)
    # Ray sorts the axes by name and varies the first fastest: activation, seed, variant
    first = [(t["arm"], t["seed"]) for t in trials[:3]]
    assert first == [("activation=relu bn", 0), ("activation=drop_activation bn", 0),
                     ("activation=relu bn", 1)]  # fmt: skip
    assert {t["arm"] for t in trials} == {
        f"activation={a} {v}" for a in ("relu", "drop_activation") for v in ("bn", "none")
    }
    cpu, gpu = trials[0], trials[-1]
    assert (cpu["part"], cpu["device_kind"], gpu["part"], gpu["device_kind"]) == (
        "cpu", "cpu", "gpu", "gpu")  # fmt: skip
    assert cpu["steps_per_epoch"] == 1437 // 64 and cpu["epochs"] == 3  # bn drops the last batch
    assert gpu["seconds_per_step"] == pytest.approx(
        gpu["flops_per_step"] / (planner.ASSUMED_GPU_FLOPS * 0.5)
    )
    assert all(t["estimated_hours"] > 0 and t["seconds_per_step"] > 0 for t in trials)
    totals = plan["totals"]
    assert totals["trainings"] == 24 and totals["gpu_hours"] > 0 and totals["cpu_hours"] > 0
    assert "ASSUMED_GPU_FLOPS" in plan["assumptions"]["gpu"]
    assert not ray.is_initialized() and not any(Path.cwd().iterdir())  # no Ray, no MLflow store


def test_plan_table_lists_trials_totals_and_assumptions(recipes, capsys):
    assert main(["reproduce", "tiny", "--scale", "paper", "--part", "gpu", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "tiny at paper scale: 12 trainings (meant for: a GPU box)" in out
    assert out.count("activation=drop_activation none") == 3
    assert "GPU-hours" in out and "30 TFLOP/s" in out and "measured on this machine" not in out


@pytest.mark.parametrize(
    ("name", "scale"),
    [("tiny", "quick"), ("tiny", "paper"), ("optuna_search", "quick"), ("lrd_table1", "paper"),
     ("lrd_table1", "quick"), ("da_table1", "paper"), ("da_table4", "paper")],
)  # fmt: skip
def test_trials_are_what_the_runner_runs_in_rays_order(recipes, monkeypatch, name, scale):
    if not (recipes / f"{name}.yaml").exists():
        monkeypatch.setenv("REGSTUDY_RECIPES", str(Path(__file__).parents[2] / "recipes"))
    recipe = load_recipe(name)
    trials = plan_trials(recipe, scale)
    for part, spec in recipe.specs(scale).items():
        space = get_space(spec.space)
        mine = [t for t in trials if t.part == part]
        assert len(mine) == _expected_trials(spec, space)
        if space.kind == "grid":
            rays = [config for _, config in generate_variants(_param_space(spec, space))]
            assert grid_trial_configs(spec, space) == rays == [t.config for t in mine]
        else:
            assert [t.arm for t in mine[:3]] == ["optuna sample 0"] * 2 + ["optuna sample 1"]


def test_parameter_counts_are_the_real_models(recipes):
    costs = planner.CostModel()
    fcnet = TrainConfig(dataset="mnist", model="fcnet", norm="none", val_fraction=0.0)
    wrn = TrainConfig(
        dataset="cifar10", model="wide_resnet", arch={"depth": 28, "widen_factor": 10}
    )
    vcl = TrainConfig(dataset="digits", model="pgrid_cnn", norm="vcl", vcl_n=2, batch_size=64)
    counts = [costs.step(c, 0.5)[1] for c in (fcnet, wrn, vcl)]  # gpus > 0: nothing timed
    assert counts[:2] == [FCNET_MNIST, WRN_28_10_CIFAR10]
    real = build_model("pgrid_cnn", 10, (1, 8, 8), norm="vcl", norm_options=vcl.norm_options())
    assert counts[2] == sum(p.numel() for p in real.parameters())  # built on CPU: VCL reads data


def test_flops_per_step_count_forward_and_backward_matmuls_and_convolutions(monkeypatch):
    config = TrainConfig(dataset="mnist", model="fcnet", norm="none", batch_size=128)
    facts = planner.DataFacts((1, 28, 28), 10, "classification", 60_000, 10_000)
    weights = 784 * 1000 + 1000 * 1000 + 1000 * 10
    # forward and weight gradients for every layer, input gradients for all but the first
    assert planner.count_flops(config, facts) == 2 * 128 * (2 * weights + 1000 * 1000 + 1000 * 10)
    on_meta = planner.count_flops(config, facts)
    real_build = planner.build

    def no_meta(config, facts, device):
        if device == "meta":
            raise NotImplementedError("pretend this model cannot live on meta")
        return real_build(config, facts, device)

    monkeypatch.setattr(planner, "build", no_meta)
    assert planner.count_flops(config, facts) == on_meta  # a tiny CPU batch, scaled linearly
    grouped = torch.nn.Conv2d(64, 64, 3, padding=1, groups=8)
    x = torch.randn(2, 64, 8, 8, requires_grad=True)
    fixed = {torch.ops.aten.convolution_backward: planner.conv_backward_flops}
    with FlopCounterMode(display=False) as forward:
        grouped(x)
    with FlopCounterMode(display=False, custom_mapping=fixed) as step:
        grouped(x).sum().backward()
    assert step.get_total_flops() == 3 * forward.get_total_flops()


def test_data_facts_without_loading_honour_splits_subsets_and_full_batches(data_root):
    mnist = dataset_info("mnist")
    loaded = load_dataset("mnist", root=data_root, val_fraction=0.0)
    assert (mnist.in_shape, mnist.num_classes, mnist.train_size, mnist.test_size) == (
        loaded.in_shape, loaded.num_classes, len(loaded.train), len(loaded.test))  # fmt: skip
    assert svhn_info(extra=False).train_size == 73_257 and dataset_info("svhn").train_size > 6e5
    assert dataset_info("digits").train_size == 1437  # loaded: small and offline
    base = {"dataset": "mnist", "val_fraction": 0.1, "batch_size": 128}
    facts = planner.data_facts(TrainConfig(**base, norm="bn", to_rgb32=True))
    assert (facts.in_shape, facts.train, facts.evaluated) == ((3, 32, 32), 54_000, 16_000)
    for changes, steps in (({"norm": "bn"}, 54_000 // 128), ({"norm": "none"}, 422),
                           ({"norm": "none", "train_subset": 1000}, 8)):  # fmt: skip
        config = TrainConfig(**base, **changes)
        assert planner.steps_per_epoch(config, planner.data_facts(config)) == steps


def test_a_script_recipe_plans_through_its_hook_or_says_it_cannot(recipes, capsys):
    hooked, silent = load_recipe("hooked"), load_recipe("silent")
    assert count_trainings(hooked, "paper") == 4 and count_trainings(silent, "paper") is None
    plan = planner.make_plan(hooked, "quick", {"options.seeds": 3})
    fit = [t for t in plan["trials"] if t["part"] == "fit"]
    assert [t["seed"] for t in fit] == [0, 1, 2] and fit[0]["epochs"] == 7
    assert fit[0]["steps_per_epoch"] == 1 and fit[0]["device_kind"] == "cpu"
    assert plan["trials"][-1]["estimated_hours"] == 0.5 and plan["totals"]["trainings"] == 4
    assert main(["reproduce", "silent", "--plan"]) == 0
    out = capsys.readouterr().out
    assert "cost not estimated: silent.py has no plan(scale, options) hook" in out
    assert "an unknown number of trainings" in out


def test_list_counts_trainings_and_names_what_is_out_of_scope(recipes, capsys):
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    recipe_lines = lines[: lines.index("")]
    assert not any("minutes" in line for line in recipe_lines)
    assert "_out_of_scope" not in list_recipes()
    assert "tiny         —    test       quick 8, paper 24" in lines
    assert "silent       —    test       quick ?, paper ?" in lines
    assert "hooked       —    test       quick 3, paper 4" in lines
    section = lines.index("Out of scope (paper artifacts not reproduced, and why):")
    skipped = " ".join(line.strip() for line in lines[section:])  # reasons wrap
    assert all(s in skipped for s in ("ImageNet", "VOC 2012", "SSD", "Tiny ImageNet"))
    # the Makefile's reproduce-quick reads the names from line 2 to the first blank line
    names = subprocess.run(
        "sed -n '2,/^$/p' | cut -d' ' -f1", input=out, text=True, shell=True,
        capture_output=True, check=True,
    ).stdout.split()  # fmt: skip
    assert names == list_recipes()


def test_recipes_carry_no_typed_estimates(recipes):
    assert load_recipe("tiny").scale("paper").machine == "a GPU box"
    typed = TINY.replace("  quick:\n", "  quick:\n    estimate_minutes: 8\n")
    (recipes / "typed.yaml").write_text(typed)
    with pytest.raises(ValueError, match="estimate_minutes"):
        load_recipe("typed")


def test_wall_clock_runs_trials_in_order_on_the_free_slots():
    assert planner.schedule_hours([1.0, 1.0, 1.0], 2) == 2.0
    assert planner.schedule_hours([3.0, 1.0, 1.0, 1.0], 2) == 3.0
    assert planner.schedule_hours([], 4) == 0.0
    assert math.isclose(planner.schedule_hours([0.5] * 8, 8), 0.5)
