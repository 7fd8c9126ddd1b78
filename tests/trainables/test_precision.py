"""The runtime keys of a trial: precision (fp32, bf16, fp16), compile and channels_last.

Each regularizer and each baseline trains a couple of steps under each precision (64 digits,
batch 32): finite metrics, the autocast dtype where the model computes, and fp16's gradient
scaler in the checkpoint. Runtime keys left at their defaults change nothing that was recorded.
"""

import copy
import math

import pytest
import torch

from trainables.config import TrainConfig
from trainables.runtime import forward_and_loss
from trainables.train import build_trial, fit, train_step

TINY = {
    "dataset": "digits",
    "batch_size": 32,
    "lr": 0.05,
    "num_threads": 1,
    "train_subset": 64,
    "eval_subset": 32,
    "epochs": 1,
}
METHODS = {
    "drop_activation": {"activation": "drop_activation", "da_p": 0.8},
    "vcl": {"norm": "vcl", "vcl_n": 2, "clip_per_layer": 1.0},
    "lrd": {"optimizer": "adam", "lr": 1e-3, "lrd_p": 0.5},
    "rrelu": {"activation": "rrelu"},
    "gradient_and_label_noise": {"grad_noise_eta": 0.1, "label_noise": 0.05},
    "dropout_on_g": {"grad_dropout_p": 0.7},
    "dropconnect": {"model": "fcnet", "norm": "none", "dropconnect_p": 0.5},
}


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_trains_under_each_precision(method, precision):
    config = TrainConfig(**{**TINY, "model": "pgrid_cnn", **METHODS[method]}, precision=precision)
    (report,) = fit(config)
    assert report.failure is None
    for key in ("train_loss", "val_loss", "test_loss"):
        assert math.isfinite(report.metrics[key]), key
    assert (
        "scaler" in report.snapshot() if precision == "fp16" else "scaler" not in report.snapshot()
    )


@pytest.mark.parametrize(
    ("precision", "dtype"),
    [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)],
)
def test_the_model_computes_in_the_autocast_dtype_and_the_loss_in_float32(precision, dtype):
    trial = build_trial(TrainConfig(**TINY, norm="vcl", precision=precision))
    x = torch.randn(8, *trial.data.in_shape)
    y = torch.arange(8) % 10
    runtime = trial.runtime
    total, loss, penalties, outputs = forward_and_loss(
        trial.model,
        x,
        y,
        torch.nn.functional.cross_entropy,
        trial.plugs.penalties,
        "cpu",
        runtime.dtype,
    )
    assert outputs.dtype == dtype
    assert loss.dtype == total.dtype == penalties["vcl"].dtype == torch.float32


def test_fp16_resumes_with_its_scaler_state():
    config = TrainConfig(**{**TINY, "epochs": 2}, activation="drop_activation", precision="fp16")
    straight = list(fit(config))
    epochs = fit(config)
    snapshot = copy.deepcopy(next(epochs).snapshot())
    epochs.close()
    resumed = list(fit(config, resume=snapshot))
    assert resumed[-1].metrics["train_loss"] == straight[-1].metrics["train_loss"]


def test_channels_last_trains_the_same_deterministic_net():
    """ReLU and VCL are deterministic: the same training in NHWC memory reaches the same loss
    to float32 reassociation (rtol 1e-4 after two steps)."""
    losses = []
    for channels_last in (False, True):
        config = TrainConfig(**TINY, norm="vcl", channels_last=channels_last)
        (report,) = fit(config)
        losses.append(report.metrics["train_loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)


def test_channels_last_reaches_the_model_and_the_batches():
    trial = build_trial(TrainConfig(**TINY, activation="drop_activation", channels_last=True))
    conv = next(m for m in trial.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    batch = trial.runtime.batch(torch.randn(4, 1, 8, 8))
    assert batch.is_contiguous(memory_format=torch.channels_last)
    loss, _, _ = train_step(
        trial.model, batch, torch.arange(4), trial.optimizer, "classification", trial.plugs,
        trial.runtime,
    )  # fmt: skip
    assert torch.isfinite(loss)


def test_runtime_keys_at_their_defaults_leave_the_recorded_config_unchanged():
    config = TrainConfig(**TINY)
    assert not {"precision", "compile", "channels_last"} & set(config.active_knobs())
    changed = config.replace(precision="bf16", compile=True, channels_last=True)
    assert {"precision", "compile", "channels_last"} <= set(changed.active_knobs())
    assert changed.identity() == {**config.identity(), "precision": "bf16"}


@pytest.mark.parametrize(
    ("key", "value"), [("precision", "fp8"), ("compile", "yes"), ("channels_last", 1)]
)
def test_bad_runtime_values_are_refused_naming_the_key(key, value):
    with pytest.raises(ValueError, match=key):
        TrainConfig(**{key: value})


def test_compiled_step_trains_drop_activation_vcl_and_lrd_together():
    """A compiled trial (inductor) with Drop-Activation, VCL and LRD at once, in bf16, on a
    small MLP: it compiles, trains, and its metrics are finite."""
    config = TrainConfig(
        **TINY,
        model="fcnet",
        arch={"hidden": (32,)},
        activation="drop_activation",
        norm="vcl",
        lrd_p=0.5,
        precision="bf16",
        compile=True,
    )
    (report,) = fit(config)
    assert report.failure is None and math.isfinite(report.metrics["train_loss"])


@pytest.mark.slow
def test_compiled_conv_step_in_channels_last():
    """The same on the p-grid conv net in channels-last memory (inductor: about 30 s here)."""
    config = TrainConfig(
        **TINY,
        activation="drop_activation",
        norm="vcl",
        lrd_p=0.5,
        precision="bf16",
        compile=True,
        channels_last=True,
    )
    (report,) = fit(config)
    assert report.failure is None and math.isfinite(report.metrics["train_loss"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("method", ["drop_activation", "vcl", "lrd"])
def test_a_cuda_step_never_waits_for_the_host(method, precision):
    """torch's sync debug mode raises on any host-device synchronisation inside the step."""
    config = TrainConfig(
        **{**TINY, "model": "pgrid_cnn", **METHODS[method]}, precision=precision, device="cuda"
    )
    trial = build_trial(config)
    x = torch.randn(32, *trial.data.in_shape, device="cuda")
    y = torch.arange(32, device="cuda") % 10
    args = (trial.model, x, y, trial.optimizer, "classification", trial.plugs, trial.runtime)
    train_step(*args)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        train_step(*args)
    finally:
        torch.cuda.set_sync_debug_mode("default")
