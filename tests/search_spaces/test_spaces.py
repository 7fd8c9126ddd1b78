"""Each registered space explores what its paper varies, and only legal values."""

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from search_spaces import check_space, get_space, list_spaces
from trainables.config import TrainConfig

BASE = {"dataset": "digits", "model": "pgrid_cnn", "batch_size": 64}


def test_registry_lists_every_space_and_rejects_unknown_names():
    assert {"drop_activation", "drop_activation_grid", "vcl", "vcl_grid", "lrd", "lrd_grid"} <= set(
        list_spaces()
    )
    assert {"joint", "joint_grid", "none"} <= set(list_spaces())
    with pytest.raises(ValueError, match="drop_activation_grid"):
        get_space("dropout")


@pytest.mark.parametrize("name", ["drop_activation", "vcl", "lrd", "joint"])
def test_optuna_spaces_are_define_by_run_functions(name):
    space = get_space(name)
    assert space.kind == "optuna" and space.distributions()


def test_drop_activation_spaces_match_the_paper():
    assert get_space("drop_activation").distributions() == {"da_p": FloatDistribution(0.6, 1.0)}
    grid = get_space("drop_activation_grid")
    assert list(grid.grid["da_p"]) == [0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0]
    assert all(p["activation"] == "drop_activation" for p in grid.grid_points())


def test_vcl_spaces_match_the_paper():
    dists = get_space("vcl").distributions()
    assert dists["vcl_gamma"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert dists["vcl_n"] == CategoricalDistribution((2, 3, 5, 7, 9))
    grid = get_space("vcl_grid")
    assert [p["vcl_n"] for p in grid.grid_points()] == [2, 3, 5, 7, 9]
    assert {p["vcl_gamma"] for p in grid.grid_points()} == {0.01}


def test_lrd_spaces_match_the_paper():
    dists = get_space("lrd").distributions()
    assert dists["lrd_p"] == FloatDistribution(0.1, 1.0)
    assert dists["optimizer"] == CategoricalDistribution(
        ("sgd", "rmsprop", "adam", "amsgrad", "radam")
    )
    assert list(get_space("lrd_grid").grid["lrd_p"]) == [0.1, 0.3, 0.5, 0.7, 0.9, 1.0]


def test_joint_space_reaches_every_methods_knobs():
    assert {"da_p", "vcl_gamma", "vcl_n", "lrd_p"} <= set(get_space("joint").distributions())
    assert len(get_space("joint_grid").grid_points()) == 8


def test_a_define_by_run_space_returns_the_constants_that_switch_its_method_on():
    trial = optuna.create_study().ask()
    assert get_space("vcl").define(trial) == {"norm": "vcl"}
    assert set(trial.params) == {"vcl_gamma", "vcl_n"}


@pytest.mark.parametrize("name", list_spaces())
def test_every_point_at_the_bounds_of_every_space_is_a_legal_trial(name):
    check_space(get_space(name), BASE)
    for point in get_space(name).extreme_points():
        TrainConfig.from_dict({**BASE, **{k: v for k, v in point.items() if "/" not in k}})


def test_a_space_that_reaches_illegal_values_is_caught_before_running():
    with pytest.raises(ValueError, match=r"'vcl'.*vcl_n=9"):
        check_space(get_space("vcl"), {**BASE, "batch_size": 16})
