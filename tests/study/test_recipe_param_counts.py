"""The arms of every comparison a recipe reports build models of one size, unless it says why not.

An arm is one trial config of a part's sweep other than its seed: a point of the grid (the
space's and the spec's axes) with one variant, composed exactly as a trial composes it
(``trainables.tune.split_config``). One comparison is the arms that share everything but the
report's arm column: ``arm`` for ``comparison`` reports, ``x`` for ``curve`` (so within each of
its ``lines``), ``columns`` for ``norm_grid`` and ``norms`` for ``wins``. A recipe whose arms
legitimately differ (batchnorm's affine parameters, VCL's beta per neuron) declares it in
``param_count_differs``; its arms must then still agree wherever they share the normalization,
the only place such a difference may come from.

Models are built on the ``meta`` device, so paper-scale DenseNet-190 costs no memory; paper
datasets are not on this machine, so their shapes come from the table below.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections import defaultdict
from typing import Any

import pytest
import torch

from search_spaces import get_space
from study.recipes import list_recipes, load_recipe
from study.spec import Spec
from trainables.config import TrainConfig
from trainables.data import load_dataset
from trainables.methods import knobs
from trainables.models import build_model
from trainables.train import build_network
from trainables.tune import split_config

MODEL_KEYS = ("model", "arch", "activation", "norm")

# (in_shape, num_classes) of the datasets that need a download; to_rgb32 pads 1x28x28 to 3x32x32.
PAPER_DATASETS = {
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "svhn": ((3, 32, 32), 10),
    "emnist_balanced": ((1, 28, 28), 47),
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "tiny_imagenet": ((3, 64, 64), 200),
}
ARM_OPTION = {"comparison": "arm", "curve": "x", "norm_grid": "columns", "wins": "norms"}
VARIANT_AXIS = "variant.name"


@functools.cache
def data_shape(dataset: str, to_rgb32: bool, options: str) -> tuple[tuple[int, ...], int]:
    if dataset in PAPER_DATASETS:
        shape, num_classes = PAPER_DATASETS[dataset]
        return ((3, 32, 32) if to_rgb32 else shape), num_classes
    data = load_dataset(dataset, val_fraction=0.0, to_rgb32=to_rgb32, **json.loads(options))
    return tuple(data.in_shape), data.num_classes


_COUNTS: dict[str, int] = {}


def parameter_count(config: TrainConfig) -> int:
    """The parameters of the model ``trainables.train.build_trial`` builds for ``config``
    (built once per distinct model, on the meta device)."""
    options = json.dumps(config.data_options, sort_keys=True)
    in_shape, num_classes = data_shape(config.dataset, config.to_rgb32, options)
    model_keys = {k: v for k, v in config.identity().items() if k in MODEL_KEYS or k in knobs()}
    key = json.dumps([model_keys, in_shape, num_classes], sort_keys=True, default=str)
    if key not in _COUNTS:
        with torch.device("meta"):
            built = build_network(config, num_classes, in_shape)
        _COUNTS[key] = sum(p.numel() for p in built.parameters())
    return _COUNTS[key]


def arms(spec: Spec) -> list[tuple[dict[str, Any], TrainConfig]]:
    """Every trial config of ``spec`` at seed 0, with the axis values that name it."""
    space = get_space(spec.space)
    points = space.grid_points() if space.kind == "grid" else [dict(space.constants)]
    axes = dict(spec.grid)
    variants = [{"name": n, **v} for n, v in spec.variants.items()] or [None]
    found = []
    for point, values, variant in itertools.product(
        points, itertools.product(*axes.values()), variants
    ):
        trial = {**spec.base_config(), **point, **dict(zip(axes, values)), "seed": 0}
        labels = {k: trial[k] for k in (*(space.grid or {}), *axes)}
        if variant is not None:
            trial["variant"] = variant
            labels[VARIANT_AXIS] = variant["name"]
        found.append((labels, split_config(trial)[0]))
    return found


def arm_axis(report: dict[str, Any]) -> str | None:
    option = ARM_OPTION.get(report.get("kind", ""))
    column = report.get(option) if option else None
    return column.removeprefix("param.") if column else None


def key(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, default=str)


def comparisons(spec: Spec, arm: str | None) -> dict[str, dict[str, tuple[str, int]]]:
    """Per comparison (the non-arm axis values): arm value -> (norm, parameter count)."""
    groups: dict[str, dict[str, tuple[str, int]]] = defaultdict(dict)
    for labels, config in arms(spec):
        rest = {k: v for k, v in labels.items() if k != arm}
        value = labels.get(arm)
        name = value if isinstance(value, str) else key(value)
        groups[key(rest)][name] = (config.norm, parameter_count(config))
    return groups


SWEEP_RECIPES = [name for name in list_recipes() if load_recipe(name).script is None]


@pytest.mark.parametrize("name", SWEEP_RECIPES)
def test_the_arms_of_a_comparison_build_models_of_one_size(name):
    recipe = load_recipe(name)
    arm = arm_axis(recipe.report)
    problems = []
    for scale in recipe.scales:
        for part, spec in recipe.specs(scale).items():
            for rest, by_arm in comparisons(spec, arm).items():
                if recipe.param_count_differs:
                    by_norm = defaultdict(set)
                    for norm, size in by_arm.values():
                        by_norm[norm].add(size)
                    unequal = any(len(sizes) > 1 for sizes in by_norm.values())
                else:
                    unequal = len({size for _, size in by_arm.values()}) > 1
                if unequal:
                    sizes = {a: size for a, (_, size) in by_arm.items()}
                    problems.append(f"{scale} {part} {rest}: {sizes}")
    assert not problems, (
        f"recipe {name!r}: the arms (by {arm}) of these comparisons build models of different "
        "sizes; fix the recipe, or declare why in `param_count_differs` (arms of one "
        "normalization must agree even then):\n" + "\n".join(problems)
    )


def test_declared_differences_are_real_and_undeclared_ones_absent():
    """A declaration names a difference that exists; the rest of the recipes have none."""
    for name in SWEEP_RECIPES:
        recipe = load_recipe(name)
        arm = arm_axis(recipe.report)
        differs = any(
            len({size for _, size in by_arm.values()}) > 1
            for scale in recipe.scales
            for spec in recipe.specs(scale).values()
            for by_arm in comparisons(spec, arm).values()
        )
        assert differs == bool(recipe.param_count_differs), name


def test_the_arms_follow_the_sweep_a_trial_runs():
    """lrd_table3's dropout arms keep the part's ResNet-34 (a variant's arch merges into it)."""
    (spec,) = load_recipe("lrd_table3").specs("paper").values()
    configs = {labels[VARIANT_AXIS]: config for labels, config in arms(spec)}
    assert configs["SD"].arch == {"depth": 34, "dropout": 0.1}
    assert configs["none"].arch == {"depth": 34}
    assert parameter_count(configs["SD"]) == parameter_count(configs["none"]) > 21_000_000


def test_meta_counts_equal_real_counts():
    config = TrainConfig(dataset="digits", model="pgrid_cnn", norm="vcl", arch={"init": "he"})
    in_shape, num_classes = data_shape("digits", False, "{}")
    real = build_model(
        "pgrid_cnn", num_classes, in_shape, norm="vcl", norm_options={"per": "neuron"}, init="he"
    )
    assert parameter_count(config) == sum(p.numel() for p in real.parameters())
