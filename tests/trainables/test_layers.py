"""The activation and normalization factories every model is built from."""

import pytest
import torch
from torch import nn

from trainables.layers import activation_factory, list_activations, list_norms, norm_factory
from trainables.regularizers import DropActivation, VarianceConstancy


def test_every_registered_activation_builds_fresh_modules():
    for name in list_activations():
        factory = activation_factory(name)
        assert factory() is not factory()


def test_activation_options_reach_the_module():
    assert activation_factory("leaky_relu", slope=0.2)().negative_slope == 0.2
    assert activation_factory("drop_activation", p=0.9)().p == 0.9
    rrelu = activation_factory("rrelu")()
    assert (rrelu.lower, rrelu.upper) == (1 / 8, 1 / 3)
    assert isinstance(activation_factory("drop_activation")(), DropActivation)


def test_bad_activation_name_or_option_lists_the_allowed():
    with pytest.raises(ValueError, match="relu"):
        activation_factory("swish")
    with pytest.raises(ValueError, match="slope"):
        activation_factory("leaky_relu", p=0.5)
    with pytest.raises(ValueError, match="p="):
        activation_factory("drop_activation", p=1.5)


@pytest.mark.parametrize("name", ["bn", "ln", "gn", "none", "vcl"])
@pytest.mark.parametrize("dims", [1, 2])
def test_every_norm_builds_for_maps_and_features(name, dims):
    layer = norm_factory(name).make(16, dims)
    x = torch.randn(8, 16, 4, 4) if dims == 2 else torch.randn(8, 16)
    assert layer(x).shape == x.shape


def test_vcl_norm_takes_its_options_and_needs_a_conv_bias():
    factory = norm_factory("vcl", n=3, per="neuron")
    layer = factory.make(4)
    assert isinstance(layer, VarianceConstancy) and layer.n == 3 and layer.per == "neuron"
    assert factory.conv_bias and not norm_factory("bn").conv_bias


def test_bad_norm_name_or_option_lists_the_allowed():
    with pytest.raises(ValueError, match="bn"):
        norm_factory("batchnorm")
    with pytest.raises(ValueError, match="groups"):
        norm_factory("bn", groups=4)
    with pytest.raises(ValueError, match="n="):
        norm_factory("vcl", n=1)
    with pytest.raises(ValueError, match="dims"):
        norm_factory("bn").make(4, 3)
    assert isinstance(norm_factory("none").make(3), nn.Identity)
    assert sorted(list_norms()) == ["bn", "gn", "ln", "none", "vcl"]
