"""replace_activations on our own modules and on torchvision models."""

import pytest
import torchvision
from torch import nn

from trainables.regularizers import DropActivation, replace_activations


def test_replaces_every_relu_of_a_torchvision_resnet18():
    model = torchvision.models.resnet18(num_classes=10)
    relus = sum(isinstance(m, nn.ReLU) for m in model.modules())
    assert replace_activations(model, lambda: DropActivation(0.9)) == relus
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert sum(isinstance(m, DropActivation) for m in model.modules()) == relus


def test_include_limits_the_swap_to_the_last_two_stages():
    model = torchvision.models.resnet18(num_classes=10)
    replaced = replace_activations(model, DropActivation, include=("layer3", "layer4"))
    assert replaced == 4
    for name, module in model.named_modules():
        if isinstance(module, DropActivation):
            assert name.startswith(("layer3.", "layer4."))
    assert isinstance(model.relu, nn.ReLU)


def test_prefix_matches_whole_name_components():
    model = nn.Sequential()
    model.add_module("layer1", nn.Sequential(nn.ReLU()))
    model.add_module("layer10", nn.Sequential(nn.ReLU()))
    assert replace_activations(model, DropActivation, include="layer1") == 1
    assert isinstance(model.layer10[0], nn.ReLU)


def test_other_activation_classes_can_be_targeted():
    model = nn.Sequential(nn.Linear(2, 2), nn.ELU(), nn.ReLU())
    assert replace_activations(model, nn.SELU, target=nn.ELU) == 1
    assert isinstance(model[1], nn.SELU) and isinstance(model[2], nn.ReLU)


def test_replacing_nothing_is_an_error():
    with pytest.raises(ValueError, match="no ReLU"):
        replace_activations(nn.Sequential(nn.Linear(2, 2)), DropActivation)
    with pytest.raises(ValueError, match="layer9"):
        replace_activations(torchvision.models.resnet18(), DropActivation, include=["layer9"])
