"""The Tune adapter's config split: a spec's variant on top of the trial config."""

import copy

from trainables.config import TrainConfig
from trainables.tune import apply_variant, split_config

RESNET34 = {"dataset": "digits", "model": "resnet_imagenet_style", "arch": {"depth": 34}}


def test_a_variant_adds_arch_options_to_the_parts_architecture():
    """lrd_table3's SD arm: dropout on the part's ResNet-34, not a ResNet-18 with dropout."""
    config, settings = split_config(
        {**RESNET34, "checkpoint_every": 5, "variant": {"name": "SD", "arch": {"dropout": 0.1}}}
    )
    assert config.arch == {"depth": 34, "dropout": 0.1}
    assert settings == {"checkpoint_every": 5, "variant": {"name": "SD", "arch": {"dropout": 0.1}}}


def test_the_variants_keys_win_and_other_fields_are_replaced_whole():
    values = {
        **RESNET34,
        "augment": ["standard", "cutout"],
        "augment_options": {"cutout_size": 16, "standard_padding": 4},
        "data_options": {"test_fraction": 0.2},
        "lr": 0.1,
    }
    variant = {
        "name": "v",
        "arch": {"depth": 18},
        "augment": ["standard"],
        "augment_options": {"cutout_size": 8},
        "data_options": {"split_seed": 1},
        "lr": 0.01,
    }
    before = copy.deepcopy((values, variant))
    merged = apply_variant(values, variant)
    assert merged["arch"] == {"depth": 18}
    assert merged["augment"] == ["standard"]
    assert merged["augment_options"] == {"cutout_size": 8, "standard_padding": 4}
    assert merged["data_options"] == {"test_fraction": 0.2, "split_seed": 1}
    assert merged["lr"] == 0.01 and "name" not in merged
    assert (values, variant) == before  # neither input is changed


def test_a_variant_naming_another_model_replaces_the_arch_whole():
    merged = apply_variant(RESNET34, {"model": "wide_resnet", "arch": {"widen_factor": 2}})
    assert merged["arch"] == {"widen_factor": 2}
    same_model = apply_variant(RESNET34, {"model": RESNET34["model"], "arch": {"dropout": 0.1}})
    assert same_model["arch"] == {"depth": 34, "dropout": 0.1}


def test_a_variant_adds_a_mapping_the_base_lacks():
    merged = apply_variant({"dataset": "digits"}, {"arch": {"init": "he"}})
    assert merged["arch"] == {"init": "he"}


def test_without_a_variant_the_config_is_the_trial_config():
    config, settings = split_config({"dataset": "digits", "lr": 0.05, "search": {"use_vcl": True}})
    assert config == TrainConfig(dataset="digits", lr=0.05)
    assert settings == {"search": {"use_vcl": True}}


def test_a_recorded_trial_config_with_the_retired_vcl_clip_trains_as_it_did():
    """Ray keeps each trial's config: an old VCL arm clipped, an old bn arm did not."""
    recorded = {"dataset": "digits", "vcl_clip": 1.0}
    vcl, _ = split_config({**recorded, "variant": {"name": "vcl", "norm": "vcl"}})
    bn, _ = split_config({**recorded, "variant": {"name": "bn", "norm": "bn"}})
    assert vcl.clip_per_layer == 1.0 and bn.clip_per_layer is None
