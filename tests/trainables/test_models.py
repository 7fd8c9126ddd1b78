"""The model registry: every architecture with every activation and norm, the papers' sizes, errors.

Tests iterate ``list_models()``, so a new architecture is tested by being
registered; ``TINY`` may give it small options to keep this file fast.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import trainables.methods as method_registry
from trainables.methods import Method, list_methods
from trainables.models import build_model, list_models, register_model
from trainables.models._registry import _MODELS, get_model_entry
from trainables.regularizers import (
    DropActivation,
    VarianceConstancy,
    replace_activations,
    vcl_penalty,
)

TINY = {
    "densenet121": {"growth_rate": 2},
    "densenet_bc": {"depth": 40, "growth_rate": 2},
    "fcnet": {"hidden": (16, 16)},
    "mlp": {"width": 16},
    "preresnet": {"depth": 20},
    "regression_mlp": {"hidden": (16, 8, 4)},
    "resnet": {"depth": 20},
    "resnet_imagenet_style": {"width": 4},
    "resnext": {"depth": 11, "cardinality": 2, "base_width": 2, "widen_factor": 1},
    "vgg": {"depth": 11, "width": 4},
    "wide_resnet": {"depth": 10, "widen_factor": 1},
}
FLAT_MODELS = {"fcnet", "mlp", "regression_mlp"}
IMAGE = (3, 8, 8)
BATCH = 4
NUM_CLASSES = 3
NORM_VARIANTS = {
    "bn": [{}],
    "ln": [{}],
    "gn": [{}],
    "none": [{}],
    "vcl": [{"per": "channel"}, {"per": "neuron"}],
}
KNOWN_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.SELU, nn.RReLU, DropActivation)
KNOWN_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, VarianceConstancy)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors run faster on one thread than paying for thread hand-offs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(name: str, **overrides) -> nn.Module:
    options = {"activation": "relu", "norm": "bn", **TINY.get(name, {}), **overrides}
    return build_model(name, NUM_CLASSES, IMAGE, **options)


def combinations() -> list:
    params = []
    for name in list_models():
        entry = get_model_entry(name)
        for activation, norm in itertools.product(
            entry.accepted_activations(), entry.accepted_norms()
        ):
            for norm_options in NORM_VARIANTS.get(norm, [{}]):
                label = "-".join([name, activation, norm, *map(str, norm_options.values())])
                params.append(pytest.param(name, activation, norm, norm_options, id=label))
    return params


@pytest.mark.parametrize(("name", "activation", "norm", "norm_options"), combinations())
def test_forward_backward_reaches_every_parameter(name, activation, norm, norm_options):
    torch.manual_seed(0)
    model = tiny(name, activation=activation, norm=norm, norm_options=norm_options)
    out = model(torch.randn(BATCH, *IMAGE))
    assert out.shape == (BATCH, NUM_CLASSES)
    assert torch.isfinite(out).all()
    (out.square().mean() + vcl_penalty(model)).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


# Parameter counts as the papers print them (millions, CIFAR-10 heads).
PAPER_SIZES = [
    ("resnet", {"depth": 56}, 0.85),  # He et al. 2016, Table 6
    ("resnet", {"depth": 110}, 1.7),  # He et al. 2016, Table 6
    ("resnet", {"depth": 164}, 1.7),  # He et al. 2016b, Table 1
    ("preresnet", {"depth": 164}, 1.7),  # He et al. 2016b, Table 2
    ("wide_resnet", {"depth": 28, "widen_factor": 10}, 36.5),  # Zagoruyko & Komodakis, Table 5
    ("densenet_bc", {"depth": 100, "growth_rate": 12}, 0.8),  # Huang et al., Table 2
    ("densenet_bc", {"depth": 190, "growth_rate": 40}, 25.6),  # Huang et al., Table 2
    ("resnext", {"cardinality": 8, "base_width": 64}, 34.4),  # Xie et al., Table 7
    ("resnet_imagenet_style", {"depth": 18}, 11.2),  # kuangliu/pytorch-cifar ResNet18
    ("resnet_imagenet_style", {"depth": 34}, 21.3),  # kuangliu/pytorch-cifar ResNet34
]


@pytest.mark.parametrize(
    ("name", "options", "millions"), PAPER_SIZES, ids=[f"{n}-{m}M" for n, _, m in PAPER_SIZES]
)
def test_parameter_count_rounds_to_the_papers_figure(name, options, millions):
    model = build_model(name, 10, (3, 32, 32), **options)
    count = sum(p.numel() for p in model.parameters())
    decimals = len(str(millions).partition(".")[2])
    assert round(count / 1e6, decimals) == millions


def activation_stage(name: str, stage_names: list[str]) -> int | None:
    for index, prefix in enumerate(stage_names):
        if name == prefix or name.startswith(prefix + "."):
            return index
    return None


@pytest.mark.parametrize("name", list_models())
def test_stage_names_are_successive_submodules_holding_activations(name):
    model = tiny(name)
    stages = model.stage_names
    assert stages and all(isinstance(model.get_submodule(s), nn.Module) for s in stages)
    order = []
    for module_name, module in model.named_modules():
        if isinstance(module, nn.ReLU):
            module.register_forward_hook(
                lambda *_, n=module_name: order.append(activation_stage(n, stages))
            )
    model(torch.randn(BATCH, *IMAGE))
    visited = [s for s in order if s is not None]
    assert visited == sorted(visited)
    assert set(visited) == set(range(len(stages)))


@pytest.mark.parametrize("name", list_models())
def test_last_two_stages_rule_replaces_exactly_their_activations(name):
    model = tiny(name)
    relus = {n for n, m in model.named_modules() if isinstance(m, nn.ReLU)}
    last_two = {n for n in relus if activation_stage(n, model.stage_names[-2:]) is not None}
    replaced = replace_activations(
        model, lambda: DropActivation(p=0.95), include=model.stage_names[-2:]
    )
    assert replaced == len(last_two) > 0
    assert {n for n, m in model.named_modules() if isinstance(m, nn.ReLU)} == relus - last_two
    assert model(torch.randn(BATCH, *IMAGE)).shape == (BATCH, NUM_CLASSES)


class Probe(nn.Identity):
    """A stand-in activation that counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x


def _no_functional_activation(*args, **kwargs):
    raise AssertionError("a model called a functional activation")


@pytest.mark.parametrize("name", list_models())
def test_every_activation_is_a_distinct_module_from_the_factory(name, monkeypatch):
    list_methods()  # the registry is loaded before one record is added for this test
    monkeypatch.setitem(
        method_registry._METHODS, "probe", Method("probe", "activation", "a probe", module=Probe)
    )
    relu_count = sum(isinstance(m, nn.ReLU) for m in tiny(name).modules())
    model = tiny(name, activation="probe")
    probes = [m for m in model.modules() if isinstance(m, Probe)]
    assert not any(isinstance(m, KNOWN_ACTIVATIONS) for m in model.modules())
    for module, attribute in [
        (torch, "relu"),
        (torch, "relu_"),
        (torch.Tensor, "relu"),
        (F, "relu"),
        (F, "elu"),
        (F, "selu"),
        (F, "leaky_relu"),
        (F, "rrelu"),
        (F, "gelu"),
    ]:
        monkeypatch.setattr(module, attribute, _no_functional_activation)
    model(torch.randn(BATCH, *IMAGE))
    assert len(probes) == relu_count
    assert all(p.calls == 1 for p in probes)


@pytest.mark.parametrize("name", list_models())
def test_every_norm_is_a_distinct_module_from_the_factory(name, monkeypatch):
    list_methods()
    probe = Method("probe", "norm", "a probe", module=lambda num_features, dims: Probe())
    monkeypatch.setitem(method_registry._METHODS, "probe", probe)
    batchnorm_count = sum(
        isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in tiny(name).modules()
    )
    model = tiny(name, norm="probe")
    probes = [m for m in model.modules() if isinstance(m, Probe)]
    assert not any(isinstance(m, KNOWN_NORMS) for m in model.modules())
    model(torch.randn(BATCH, *IMAGE))
    assert len(probes) == batchnorm_count
    assert all(p.calls == 1 for p in probes)


def test_drop_activation_replaces_relu_one_for_one():
    relus = sum(isinstance(m, nn.ReLU) for m in tiny("resnet").modules())
    model = tiny("resnet", activation="drop_activation", activation_options={"p": 0.9})
    drops = [m for m in model.modules() if isinstance(m, DropActivation)]
    assert len(drops) == relus and all(m.p == 0.9 for m in drops)


def test_options_reach_activation_norm_and_architecture_each_their_own():
    model = build_model(
        "mlp",
        2,
        (10,),
        activation="leaky_relu",
        norm="vcl",
        activation_options={"slope": 0.2},
        norm_options={"n": 3},
        depth=8,
        dropout=0.5,
    )
    assert [m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)] == [0.2] * 8
    assert [m.n for m in model.modules() if isinstance(m, VarianceConstancy)] == [3] * 8
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.5]


def test_gn_groups_reach_every_group_norm():
    model = tiny("resnet", norm="gn", norm_options={"groups": 4})
    assert {m.num_groups for m in model.modules() if isinstance(m, nn.GroupNorm)} == {4}


def test_vcl_per_neuron_is_materialized_and_the_model_left_in_train_mode():
    model = tiny("pgrid_cnn", norm="vcl", norm_options={"per": "neuron"})
    assert model.training
    betas = [m.raw_beta.shape for m in model.modules() if isinstance(m, VarianceConstancy)]
    assert betas == [(32, 8, 8), (64, 4, 4), (128, 2, 2)]
    torch.optim.SGD(model.parameters(), lr=0.1)


@pytest.mark.parametrize(("in_shape", "flat"), [((1, 8, 8), 128), ((3, 32, 32), 128 * 16)])
def test_pgrid_cnn_flattens_what_its_input_size_leaves(in_shape, flat):
    model = build_model("pgrid_cnn", 10, in_shape)
    assert model.hidden[1].in_features == flat
    assert model(torch.randn(2, *in_shape)).shape == (2, 10)


def test_elu_cnn_has_the_papers_eleven_layers_and_reaches_1x1_at_32x32():
    model = build_model("elu_cnn", 100, (3, 32, 32), norm="none", activation="elu")
    convs = [
        (m.out_channels, m.kernel_size[0]) for m in model.modules() if isinstance(m, nn.Conv2d)
    ]
    assert convs == [
        (192, 5), (192, 1), (240, 3), (240, 1), (260, 2), (260, 1),
        (280, 2), (280, 1), (300, 2), (300, 1), (100, 1),
    ]  # fmt: skip
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.1, 0.2, 0.3, 0.4, 0.5]
    sizes = []
    model.classifier.register_forward_pre_hook(lambda _, args: sizes.append(args[0].shape[-2:]))
    model.eval()(torch.randn(1, 3, 32, 32))
    assert sizes == [(1, 1)]


@pytest.mark.parametrize(
    ("activation", "dropout_type"), [("relu", nn.Dropout), ("selu", nn.AlphaDropout)]
)
@pytest.mark.parametrize(("dropout_layers", "count"), [("last", 1), ("all", 4)])
def test_mlp_dropout_placement_and_alpha_dropout_for_selu(
    activation, dropout_type, dropout_layers, count
):
    model = build_model(
        "mlp", 2, (10,), activation, "none", dropout=0.05, dropout_layers=dropout_layers
    )
    dropouts = [m for m in model.modules() if isinstance(m, (nn.Dropout, nn.AlphaDropout))]
    assert len(dropouts) == count and all(type(m) is dropout_type for m in dropouts)
    assert isinstance(model.layers[-1][-1], dropout_type)


def test_flat_models_take_feature_vectors():
    for name in sorted(FLAT_MODELS):
        model = build_model(name, 1, (5,), **TINY.get(name, {}))
        assert model(torch.randn(BATCH, 5)).shape == (BATCH, 1)


def test_resnet_shortcut_a_is_parameter_free():
    count = {s: sum(p.numel() for p in tiny("resnet", shortcut=s).parameters()) for s in "AB"}
    assert count["B"] - count["A"] == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64


BAD_OPTIONS = [
    ("resnet", {"depth": 50}, r"resnet depth must be one of \[20, 32, 44, 56, 110, 1202\]"),
    ("resnet", {"shortcut": "C"}, r"resnet shortcut must be one of \['A', 'B'\]"),
    ("preresnet", {"depth": 50}, r"preresnet depth must be one of"),
    ("wide_resnet", {"depth": 27}, r"wide_resnet depth must be 6n\+4"),
    ("wide_resnet", {"dropout": 1.0}, r"wide_resnet dropout must be a number in \[0, 1\)"),
    ("densenet_bc", {"depth": 99}, r"densenet_bc depth must be 6n\+4"),
    ("vgg", {"depth": 12}, r"vgg depth must be one of \[11, 13, 16, 19\]"),
    ("resnext", {"depth": 30}, r"resnext depth must be 9n\+2"),
    ("resnext", {"cardinality": 0}, r"resnext cardinality must be a positive int"),
    ("resnet_imagenet_style", {"depth": 20}, r"depth must be one of \[18, 34, 50, 101, 152\]"),
    ("elu_cnn", {"dropout": (0.1,)}, r"elu_cnn dropout must be 6 rates"),
    ("mlp", {"dropout_layers": "first"}, r"mlp dropout_layers must be one of \['last', 'all'\]"),
    ("fcnet", {"hidden": ()}, r"fcnet hidden must be a non-empty sequence"),
    ("resnet", {"widen_factor": 2}, r"unknown option\(s\) \['widen_factor'\] for model 'resnet'"),
    ("resnet", {"slope": 0.2}, r"unknown option\(s\) \['slope'\].*activation_options"),
    ("resnet", {"activation_options": {"slope": 0.2}}, r"activation 'relu' takes no options"),
    ("resnet", {"norm_options": {"per": "neuron"}}, r"norm 'bn' takes no options"),
]


@pytest.mark.parametrize(("name", "options", "message"), BAD_OPTIONS)
def test_bad_option_names_the_allowed_values(name, options, message):
    with pytest.raises(ValueError, match=message):
        build_model(name, 10, (3, 32, 32), **options)


def test_unknown_model_lists_the_models():
    with pytest.raises(ValueError, match=r"unknown model 'foo'; choose one of \['densenet121'"):
        build_model("foo", 10, (3, 32, 32))


@pytest.mark.parametrize("name", sorted(set(list_models()) - FLAT_MODELS))
def test_conv_nets_refuse_feature_vectors(name):
    with pytest.raises(ValueError, match=rf"{name} is a convolutional network and needs in_shape"):
        build_model(name, 10, (64,))


@pytest.mark.parametrize(
    ("in_shape", "num_classes"), [((3, 32), 10), ((3, 0, 8), 10), ((3, 8, 8), 0), ("abc", 10)]
)
def test_bad_shape_or_class_count(in_shape, num_classes):
    with pytest.raises(ValueError, match=r"in_shape|num_classes"):
        build_model("pgrid_cnn", num_classes, in_shape)


def test_pgrid_cnn_refuses_inputs_smaller_than_8x8():
    with pytest.raises(ValueError, match="at least 8x8"):
        build_model("pgrid_cnn", 10, (3, 4, 4))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"activation": "gelu"}, r"takes activation one of \[.*'relu'.*\], got 'gelu'"),
        ({"norm": "wn"}, r"takes norm one of \[.*'bn'.*\], got 'wn'"),
    ],
)
def test_unknown_activation_or_norm(options, message):
    with pytest.raises(ValueError, match=message):
        build_model("resnet", 10, (3, 32, 32), **options)


@pytest.fixture
def relu_bn_only_model():
    @register_model(activations=("relu",), norms=("bn", "none"))
    def relu_bn_only(num_classes, in_shape, act, norm):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_shape[0], num_classes), act())

    yield "relu_bn_only"
    del _MODELS["relu_bn_only"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"activation": "elu"}, r"takes activation one of \['relu'\], got 'elu'"),
        ({"norm": "vcl"}, r"takes norm one of \['bn', 'none'\], got 'vcl'"),
    ],
)
def test_activation_or_norm_an_architecture_cannot_take(relu_bn_only_model, options, message):
    with pytest.raises(ValueError, match=message):
        build_model(relu_bn_only_model, 2, (4,), **options)


def test_registering_a_name_twice_or_a_wrong_signature_fails():
    def resnet(num_classes, in_shape, act, norm):
        raise NotImplementedError

    with pytest.raises(ValueError, match="already registered"):
        register_model(resnet)

    def wrong(classes, shape):
        raise NotImplementedError

    with pytest.raises(TypeError, match="takes"):
        register_model(wrong)


@pytest.mark.parametrize("name", ["pgrid_cnn", "mlp", "elu_cnn"])
def test_he_init_gives_fan_in_variance(name):
    """He-normal: std = sqrt(2 / fan_in); over a weight of n elements the sample std is within
    a few 1/sqrt(2n) of it (n >= 800 here: 5 * 0.025 = 12.5% bound)."""
    torch.manual_seed(0)
    model = build_model(name, 10, (3, 32, 32), norm="none", init="he")
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and module.weight.numel() >= 800:
            fan_in = module.weight[0].numel()
            assert module.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.125)


def test_unknown_init_lists_the_choices():
    with pytest.raises(ValueError, match="init"):
        build_model("pgrid_cnn", 10, (3, 32, 32), init="xavier")
