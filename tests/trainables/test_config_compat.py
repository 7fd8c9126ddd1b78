"""Configs written before a change still read as the training they meant.

A checkpoint holds every TrainConfig field of the code that wrote it, and resumes only under a
config of equal ``identity()``; a recorded Ray trial config is read again by ``from_dict``.
"""

import pytest

from trainables.config import TrainConfig

# TrainConfig(dataset="mnist", model="fcnet", norm="none", batch_size=128, weight_decay=0.0,
# schedule="constant", val_fraction=0.0, optimizer="adam", lrd_p=0.5, epochs=100).to_dict(), as
# the code before ``clip_per_layer`` wrote it: an lrd_table1 paper mnist trial's checkpoint.
LRD_TABLE1_MNIST_BEFORE = {
    "dataset": "mnist", "data_dir": None, "val_fraction": 0.0, "split_seed": 0,
    "train_subset": None, "eval_subset": None, "augment": (), "augment_options": {},
    "data_options": {}, "to_rgb32": False, "model": "fcnet", "arch": {}, "activation": "relu",
    "da_p": 0.95, "leaky_slope": 0.2, "norm": "none", "vcl_n": 2, "vcl_per": "channel",
    "vcl_gamma": 0.01, "vcl_clip": 1.0, "optimizer": "adam", "lr": None, "momentum": 0.9,
    "nesterov": False, "weight_decay": 0.0, "schedule": "constant", "milestones": (),
    "lr_gamma": 0.1, "epochs": 100, "batch_size": 128, "eval_batch_size": 1024, "eval_every": 1,
    "lrd_p": 0.5, "grad_dropout_p": 1.0, "grad_noise_eta": 0.0, "grad_noise_gamma": 0.55,
    "label_noise": 0.0, "seed": 0, "device": "auto", "num_threads": None,
}  # fmt: skip
# Its identity() (lr resolved from the paper's rate for Adam): the core keys and the knobs of
# the methods that act, here LRD's alone (the knobs of dropout on G, noisy gradient and noisy
# labels, all off, are no part of it since the method records).
LRD_TABLE1_MNIST_IDENTITY = {
    "activation": "relu", "arch": {}, "augment": (), "augment_options": {}, "batch_size": 128,
    "data_options": {}, "dataset": "mnist", "epochs": 100, "eval_batch_size": 1024,
    "eval_every": 1, "eval_subset": None, "lr": 0.001, "lrd_p": 0.5, "model": "fcnet",
    "norm": "none", "optimizer": "adam", "schedule": "constant", "seed": 0, "split_seed": 0,
    "to_rgb32": False, "train_subset": None, "val_fraction": 0.0, "weight_decay": 0.0,
}  # fmt: skip
TODAY = {
    "dataset": "mnist", "model": "fcnet", "norm": "none", "batch_size": 128,
    "weight_decay": 0.0, "schedule": "constant", "val_fraction": 0.0, "lrd_p": 0.5, "epochs": 100,
}  # fmt: skip


@pytest.mark.parametrize("lrd_p", [1.0, 0.5])
@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "adam", "amsgrad", "radam"])
def test_an_lrd_table1_mnist_checkpoint_still_resumes(optimizer, lrd_p):
    old = TrainConfig.from_dict({**LRD_TABLE1_MNIST_BEFORE, "optimizer": optimizer, "lrd_p": lrd_p})
    today = TrainConfig(**{**TODAY, "lrd_p": lrd_p}, optimizer=optimizer)
    assert old.identity() == today.identity()
    assert ("lrd_p" in today.identity()) == (lrd_p < 1)


def test_the_identity_of_an_lrd_table1_mnist_trial_is_what_it_was():
    assert TrainConfig(**TODAY, optimizer="adam").identity() == LRD_TABLE1_MNIST_IDENTITY


def test_a_checkpoint_with_every_field_of_today_and_the_retired_ones_builds():
    every = {**TrainConfig().to_dict(), "vcl_clip": 1.0}
    assert TrainConfig.from_dict(every) == TrainConfig()


@pytest.mark.parametrize(
    ("old", "clip"),
    [
        ({"norm": "vcl", "vcl_clip": 1.0}, 1.0),
        ({"norm": "vcl", "vcl_clip": 0.5}, 0.5),
        ({"norm": "vcl", "vcl_clip": None}, None),
        ({"norm": "bn", "vcl_clip": 1.0}, None),
        ({"vcl_clip": 1.0}, None),  # the default norm, bn: it did nothing there
    ],
)
def test_the_retired_vcl_clip_means_what_it_did(old, clip):
    assert TrainConfig.from_dict(old).clip_per_layer == clip


def test_an_old_vcl_config_keeps_its_identity():
    before = {**LRD_TABLE1_MNIST_BEFORE, "norm": "vcl", "vcl_per": "channel", "vcl_clip": 1.0}
    today = TrainConfig(**{**TODAY, "norm": "vcl"}, optimizer="adam", vcl_per="channel")
    assert TrainConfig.from_dict(before).identity() != today.identity()
    assert TrainConfig.from_dict(before).identity() == today.replace(clip_per_layer=1.0).identity()


def test_clip_per_layer_is_a_knob_of_any_arm_shown_only_when_set():
    assert TrainConfig().clip_per_layer is None
    assert "clip_per_layer" not in TrainConfig().active_knobs()
    assert TrainConfig(norm="bn", clip_per_layer=1.0).active_knobs()["clip_per_layer"] == 1.0
    assert TrainConfig(norm="vcl", clip_per_layer=1.0).identity()["clip_per_layer"] == 1.0
    with pytest.raises(ValueError, match=r"^clip_per_layer=0 is not allowed: must be a number > 0"):
        TrainConfig(clip_per_layer=0)


def test_vcl_is_per_neuron_by_default_as_in_the_reference_code():
    assert TrainConfig().vcl_per == "neuron"
    assert TrainConfig(norm="vcl").norm_options() == {"n": 2, "per": "neuron"}


def test_retired_fields_are_not_keys():
    assert "vcl_clip" not in TrainConfig().to_dict()
    with pytest.raises(ValueError, match="unknown config keys"):
        TrainConfig(vcl_clip=1.0)
