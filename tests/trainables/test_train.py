"""The pure training loop: metrics, divergence, and resume == straight run."""

import copy
import math
import os
import pickle

import numpy as np
import pytest
import torch

from trainables.config import TrainConfig
from trainables.optim import make_optimizer, make_scheduler, multistep_factor
from trainables.regularizers import GradientDropout, GradientNoise, LearningRateDropout
from trainables.train import Plugs, build_trial, fit, load_snapshot, train_step

FAST = {"dataset": "digits", "model": "pgrid_cnn", "batch_size": 64, "lr": 0.05, "num_threads": 1}
EPOCH_KEYS = {
    "train_loss",
    "train_error",
    "val_loss",
    "val_error",
    "test_loss",
    "test_error",
    "epoch_time",
    "samples_per_s",
    "lr",
    "epoch",
    "best_val_error",
    "best_epoch",
    "test_error_at_best",
}


def run(config: TrainConfig, resume=None):
    return list(fit(config, resume=resume))


def snapshot_after_first_epoch(config: TrainConfig) -> dict:
    """What a checkpoint written after epoch 1 holds (a copy: snapshots reference live state)."""
    epochs = fit(config)
    snapshot = copy.deepcopy(next(epochs).snapshot())
    epochs.close()
    return snapshot


def test_each_epoch_reports_train_val_and_test_metrics():
    reports = run(TrainConfig(**FAST, epochs=2))
    assert [r.epoch for r in reports] == [1, 2]
    for report in reports:
        assert set(report.metrics) >= EPOCH_KEYS
        assert 0 <= report.metrics["val_error"] <= 1
    assert reports[-1].metrics["train_loss"] < reports[0].metrics["train_loss"]


def test_same_config_same_metrics():
    config = TrainConfig(**FAST, epochs=1, activation="drop_activation", da_p=0.9, lrd_p=0.5)
    first, second = run(config), run(config)
    for key in ("train_loss", "val_error", "test_loss"):
        assert first[-1].metrics[key] == second[-1].metrics[key]


@pytest.mark.parametrize(
    "methods",
    [
        {"activation": "drop_activation", "da_p": 0.8},
        {"norm": "vcl", "vcl_n": 2, "vcl_gamma": 0.01},
        {"optimizer": "adam", "lr": 1e-3, "lrd_p": 0.5, "grad_noise_eta": 0.1},
        {"label_noise": 0.05, "grad_dropout_p": 0.7},
    ],
)
def test_resumed_run_ends_with_the_same_metrics_as_a_straight_run(methods):
    config = TrainConfig(**{**FAST, **methods}, epochs=3, schedule="multistep", milestones=(2,))
    straight = run(config)
    snapshot = snapshot_after_first_epoch(config)
    resumed = run(config, resume=snapshot)
    assert [r.epoch for r in resumed] == [2, 3]
    assert resumed[-1].metrics.keys() == straight[-1].metrics.keys()
    assert ("vcl_penalty" in straight[-1].metrics) == (config.norm == "vcl")
    for key in ("train_loss", "val_loss", "test_loss", "lr", "vcl_penalty"):
        if key in straight[-1].metrics:
            assert resumed[-1].metrics[key] == straight[-1].metrics[key], key


def test_resume_refuses_a_checkpoint_of_another_config():
    snapshot = snapshot_after_first_epoch(TrainConfig(**FAST, epochs=1))
    with pytest.raises(ValueError, match="different config"):
        run(TrainConfig(**FAST, epochs=1, seed=1), resume=snapshot)


def test_a_checkpoint_from_before_a_new_config_field_still_resumes():
    config = TrainConfig(**FAST, epochs=2)
    snapshot = snapshot_after_first_epoch(config)
    del snapshot["config"]["eval_subset"]
    straight = run(config)[-1].metrics
    resumed = run(config, resume=snapshot)
    assert [r.epoch for r in resumed] == [2]
    assert resumed[-1].metrics["test_error"] == straight["test_error"]
    snapshot["config"]["retired_field"] = 1
    with pytest.raises(ValueError, match="different config"):
        run(config, resume=snapshot)


def test_a_checkpoint_resumes_when_only_an_inactive_knob_or_the_placement_changed():
    config = TrainConfig(**FAST, epochs=2)
    snapshot = snapshot_after_first_epoch(config)
    snapshot["config"].update(vcl_per="neuron", da_p=0.5, data_dir="/elsewhere", num_threads=3)
    resumed = run(config, resume=snapshot)
    assert [r.epoch for r in resumed] == [2]
    snapshot["config"]["lr"] = 0.123
    with pytest.raises(ValueError, match="different config"):
        run(config, resume=snapshot)


def test_divergence_stops_the_trial_with_its_reason():
    reports = run(TrainConfig(**{**FAST, "lr": 1e12}, epochs=3, weight_decay=0.0))
    assert len(reports) == 1
    assert "loss became" in reports[0].failure
    assert not math.isfinite(reports[0].metrics["train_loss"])


def test_batch_statistics_train_on_full_batches_only():
    odd = {**FAST, "model": "mlp", "norm": "bn", "train_subset": 129}
    (report,) = run(TrainConfig(**odd, epochs=1))
    assert report.failure is None and math.isfinite(report.metrics["train_loss"])
    with pytest.raises(ValueError, match="batch_size=256 exceeds the 129 training samples"):
        run(TrainConfig(**{**odd, "batch_size": 256}, epochs=1))


def test_subsets_shrink_train_and_evaluation_splits_by_seed():
    from trainables.train import build_trial

    full = build_trial(TrainConfig(**FAST)).data
    small = build_trial(TrainConfig(**FAST, train_subset=200, eval_subset=50)).data
    assert (len(small.train), len(small.val), len(small.test)) == (200, 50, 50)
    again = build_trial(TrainConfig(**FAST, train_subset=200, eval_subset=50)).data
    assert torch.equal(small.test.inputs, again.test.inputs)
    whole = build_trial(TrainConfig(**FAST, eval_subset=10**6)).data
    assert (len(whole.val), len(whole.test)) == (len(full.val), len(full.test))
    with pytest.raises(ValueError, match="train_subset=100000 exceeds"):
        build_trial(TrainConfig(**FAST, train_subset=100_000))


def test_a_penalty_is_reported_only_by_the_method_that_adds_it():
    plain = run(TrainConfig(**FAST, epochs=1))[0].metrics
    vcl = run(TrainConfig(**FAST, epochs=1, norm="vcl"))[0].metrics
    assert "vcl_penalty" not in plain and vcl["vcl_penalty"] > 0.0


def test_the_step_adds_each_active_penalty_times_its_weight():
    trial = build_trial(TrainConfig(**FAST, norm="vcl", vcl_gamma=0.5))
    ((name, weight, _),) = trial.plugs.penalties
    assert (name, weight) == ("vcl", 0.5)
    assert build_trial(TrainConfig(**FAST)).plugs == Plugs()


def layer_grad_norms(model: torch.nn.Module) -> list[float]:
    """The L2 norm of each layer's gradient (a layer: a module owning parameters directly)."""
    norms = []
    for module in model.modules():
        grads = [p.grad for p in module.parameters(recurse=False) if p.grad is not None]
        if grads:
            norms.append(torch.cat([g.flatten() for g in grads]).norm().item())
    return norms


@pytest.mark.parametrize("norm", ["bn", "none", "vcl"])
def test_clip_per_layer_clips_every_layer_of_any_arm_and_only_when_set(norm):
    def step_norms(clip):
        trial = build_trial(TrainConfig(**FAST, norm=norm, clip_per_layer=clip))
        x, y = trial.data.train.inputs[:64].float(), trial.data.train.targets[:64]
        train_step(trial.model, x, y, trial.optimizer, trial.data.task, trial.plugs)
        return layer_grad_norms(trial.model)

    limit = 1e-3
    assert max(step_norms(None)) > 10 * limit  # off by default, VCL included
    assert max(step_norms(limit)) <= limit * (1 + 1e-4)


class TestOptimizers:
    def params(self):
        return [torch.nn.Parameter(torch.zeros(3))]

    @pytest.mark.parametrize("name", ["sgd", "rmsprop", "adam", "amsgrad", "radam", "adamw"])
    def test_every_optimizer_builds_with_its_paper_learning_rate(self, name):
        optimizer = make_optimizer(TrainConfig(optimizer=name), self.params())
        expected = {"sgd": 0.1, "rmsprop": 1e-3, "adam": 1e-3, "amsgrad": 1e-3, "radam": 0.03}
        assert optimizer.param_groups[0]["lr"] == expected.get(name, 1e-3)
        assert optimizer.param_groups[0].get("amsgrad", False) == (name == "amsgrad")

    def test_wrappers_stack_with_lrd_outermost(self):
        config = TrainConfig(lrd_p=0.5, grad_dropout_p=0.9, grad_noise_eta=0.1)
        optimizer = make_optimizer(config, self.params())
        assert isinstance(optimizer, LearningRateDropout)
        assert isinstance(optimizer.optimizer, GradientDropout)
        assert isinstance(optimizer.optimizer.optimizer, GradientNoise)

    def test_multistep_with_one_gamma_per_milestone(self):
        config = TrainConfig(milestones=(180, 280, 380), lr_gamma=(0.4, 0.1, 0.1), epochs=500)
        factors = [multistep_factor(config, e) for e in (0, 179, 180, 280, 380)]
        assert factors == pytest.approx([1, 1, 0.4, 0.04, 0.004])

    def test_cosine_schedule_reaches_zero_at_the_last_epoch(self):
        config = TrainConfig(schedule="cosine", epochs=4, lr=1.0)
        optimizer = make_optimizer(config, self.params())
        scheduler = make_scheduler(config, optimizer)
        for _ in range(4):
            optimizer.step()
            scheduler.step()
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"model": "resnet9000"}, "model"),
        ({"dataset": "imagenet22k"}, "dataset"),
        ({"activation": "swish"}, "activation"),
        ({"norm": "batchnorm"}, "norm"),
        ({"da_p": 0.0}, "da_p"),
        ({"da_p": 1.2}, "da_p"),
        ({"lrd_p": 0.0}, "lrd_p"),
        ({"vcl_n": 1}, "vcl_n"),
        ({"vcl_n": 40, "batch_size": 64}, "vcl_n"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"schedule": "exp"}, "schedule"),
        ({"milestones": (150, 100)}, "milestones"),
        ({"lr_gamma": (0.1,), "milestones": (1, 2)}, "lr_gamma"),
        ({"label_noise": 1.0}, "label_noise"),
        ({"epochs": 0}, "epochs"),
        ({"augment": ("mixup",)}, "augment"),
        ({"lr": -1.0}, "lr"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_config_names_the_field_and_the_allowed(values, field):
    with pytest.raises(ValueError, match=rf"^{field}=.* is not allowed: "):
        TrainConfig(**values)


def test_unknown_keys_are_rejected_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown config keys \\['learning_rate'\\]"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_active_knobs_drop_the_knobs_of_methods_that_are_off():
    knobs = TrainConfig(activation="relu", norm="bn").active_knobs()
    assert "da_p" not in knobs and "vcl_n" not in knobs and knobs["lr"] == 0.1
    assert "da_p" in TrainConfig(activation="drop_activation").active_knobs()


class RunsCode:
    """A pickle that would run a command when loaded."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_snapshot_holds_only_tensors_and_plain_data(tmp_path):
    config = TrainConfig(**{**FAST, "lr": 1e-3}, epochs=2, lrd_p=0.5, optimizer="adam")
    torch.save(snapshot_after_first_epoch(config), tmp_path / "trial.pt")
    loaded = torch.load(tmp_path / "trial.pt", weights_only=True)  # no allowlist needed
    assert [r.epoch for r in run(config, resume=loaded)] == [2]


def test_a_snapshot_written_before_with_numpy_state_still_resumes_exactly(tmp_path):
    config = TrainConfig(**FAST, epochs=2)
    snapshot = snapshot_after_first_epoch(config)
    state = snapshot["rng"]["numpy"]
    keys = state["keys"].numpy().astype(np.uint32)
    snapshot["rng"]["numpy"] = (state["kind"], keys, state["position"], state["has_gauss"],
                                state["cached_gaussian"])  # fmt: skip
    torch.save(snapshot, tmp_path / "old.pt")
    resumed = run(config, resume=load_snapshot(tmp_path / "old.pt"))
    assert resumed[-1].metrics["test_loss"] == run(config)[-1].metrics["test_loss"]


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    torch.save({"config": {}, "payload": RunsCode()}, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError):
        load_snapshot(tmp_path / "evil.pt")
