"""Every architecture at the papers' sizes on CIFAR-shaped input: forward, backward, shape."""

import pytest
import torch

from trainables.models import build_model, list_models
from trainables.regularizers import vcl_penalty

pytestmark = pytest.mark.slow

FLAT_MODELS = {"fcnet", "mlp", "regression_mlp"}
PAPER_VARIANTS = [
    ("resnet", {"depth": 164}),
    ("preresnet", {"depth": 110}),
    ("wide_resnet", {"depth": 16, "widen_factor": 8}),
    ("densenet_bc", {"depth": 190, "growth_rate": 40}),
    ("resnext", {"cardinality": 16}),
    ("resnet_imagenet_style", {"depth": 34, "dropout": 0.1}),
    ("resnet_imagenet_style", {"depth": 50}),
]


def forward_backward(name: str, in_shape: tuple[int, ...], batch: int = 2, **options) -> None:
    torch.manual_seed(0)
    model = build_model(name, 10, in_shape, **options)
    out = model(torch.randn(batch, *in_shape))
    assert out.shape == (batch, 10)
    (out.square().mean() + vcl_penalty(model)).backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_default_size_trains_a_step_on_cifar_shaped_input(name):
    forward_backward(name, (1, 28, 28) if name in FLAT_MODELS else (3, 32, 32))


@pytest.mark.parametrize(("name", "options"), PAPER_VARIANTS, ids=[n for n, _ in PAPER_VARIANTS])
def test_paper_variant_trains_a_step(name, options):
    forward_backward(name, (3, 32, 32), **options)


@pytest.mark.parametrize("norm", ["none", "bn", "ln", "gn", "vcl"])
@pytest.mark.parametrize(
    ("activation", "options"), [("relu", {}), ("leaky_relu", {"slope": 0.2}), ("elu", {})]
)
def test_vcl_paper_grid_on_the_elu_network(activation, options, norm):
    forward_backward(
        "elu_cnn",
        (3, 32, 32),
        batch=4,
        activation=activation,
        norm=norm,
        activation_options=options,
    )


def test_emnist_sized_input_reaches_the_head_of_every_conv_net():
    for name in sorted(set(list_models()) - FLAT_MODELS):
        model = build_model(name, 47, (1, 28, 28)).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 1, 28, 28)).shape == (1, 47)
