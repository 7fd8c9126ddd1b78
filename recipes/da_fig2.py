"""Drop-Activation Figure 2: fitting x·sin x and a piecewise-constant function from 20 noisy points.

An FC net with hidden widths 1000-800-200, ReLU vs Drop-Activation, trained
full-batch on the 20 points; test error is the MSE against the noiseless
function on a dense grid. The paper shows one fit per function; we train
several seeds, each with its own draw of the 20 noisy points and its own initialisation,
compare the test errors seed by seed, and plot the fits.
Training details the paper does not give (optimizer, steps, p) are the
recipe's options and are printed in the report.
"""

from __future__ import annotations

import time
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from analysis.render import Report, mean_std
from analysis.reports._common import intro
from analysis.verdicts import Draft, decide, directional
from study.script_runs import ScriptRuns, latest_finished
from trainables.config import TrainConfig
from trainables.data import make_loader
from trainables.train import build_trial, evaluate, train_epoch

FUNCTIONS = {"xsinx": "x·sin x", "piecewise": "piecewise constant"}
ACTIVATIONS = {"relu": "ReLU", "drop_activation": "Drop-Activation"}


def trial_config(function: str, activation: str, seed: int, options: dict[str, Any]) -> TrainConfig:
    return TrainConfig(
        dataset=f"regression:{function}",
        model="regression_mlp",
        norm="none",
        activation=activation,
        da_p=options["p"],
        optimizer="adam",
        lr=options["lr"],
        weight_decay=0.0,
        schedule="constant",
        epochs=options["steps"],
        batch_size=20,
        val_fraction=0.0,
        seed=seed,
        data_options={"data_seed": seed},
        num_threads=1,
    )


def fit_and_predict(config: TrainConfig) -> dict[str, Any]:
    """Full-batch training for ``config.epochs`` steps; the fit on the test grid and its errors."""
    trial = build_trial(config)
    device, seed = trial.device, config.seed
    train = make_loader(trial.data, "train", config.batch_size, device=device, seed=seed)
    for epoch in range(config.epochs):
        train.set_epoch(epoch)
        train_epoch(trial, train)
    test = make_loader(trial.data, "test", 1000, device=trial.device, shuffle=False)
    train_eval = make_loader(trial.data, "train", 20, device=trial.device, shuffle=False)
    trial.model.eval()
    with torch.no_grad():
        predictions = torch.cat([trial.model(x) for x, _ in test]).view(-1)
    return {
        "test_mse": evaluate(trial.model, test, "regression")[1],
        "train_mse": evaluate(trial.model, train_eval, "regression")[1],
        "fit": {
            "x": trial.data.test.inputs.view(-1).tolist(),
            "truth": trial.data.test.targets.view(-1).tolist(),
            "prediction": predictions.tolist(),
            "train_x": trial.data.train.inputs.view(-1).tolist(),
            "train_y": trial.data.train.targets.view(-1).tolist(),
        },
    }


def run(
    scale: str, options: dict[str, Any], tracking_uri: str, experiment: str, parent_run_id: str
) -> None:
    runs = ScriptRuns(tracking_uri, experiment, parent_run_id)
    for function in FUNCTIONS:
        for activation in ACTIVATIONS:
            for seed in range(options["seeds"]):
                config = trial_config(function, activation, seed, options)
                logged = config.active_knobs()
                if runs.done(logged):
                    continue
                start = time.perf_counter()
                outcome = fit_and_predict(config)
                runs.log(
                    logged,
                    {"test_error": outcome["test_mse"], "train_error": outcome["train_mse"]},
                    artifacts={"fit": outcome["fit"]},
                    seconds=time.perf_counter() - start,
                )


def build_report(
    meta: dict[str, Any], options: dict[str, Any], runs: pd.DataFrame, history
) -> Report:
    finished = latest_finished(runs, ["param.dataset", "param.activation", "seed"])
    finished["function"] = finished["param.dataset"].str.removeprefix("regression:")
    report = Report(
        meta["recipe"],
        meta["scale"],
        meta["title"],
        intro(
            meta,
            runs,
            "Each seed draws its own 20 noisy points (and initialisation). Training (not given "
            "by the paper): Adam, full batch of the 20 points, "
            + ", ".join(
                f"{k}={known.iloc[0]}"
                for k in ("lr", "epochs", "da_p")
                if f"param.{k}" in finished and len(known := finished[f"param.{k}"].dropna())
            )
            + ".",
            history,
        ),
    )
    records, drafts = [], []
    for function, name in FUNCTIONS.items():
        part = finished[finished["function"] == function]
        values = {
            activation: dict(zip(rows["seed"].astype(int), rows["metric.test_error"].astype(float)))
            for activation, rows in part.groupby("param.activation")
        }
        for activation, label in ACTIVATIONS.items():
            seeds = list(values.get(activation, {}).values())
            arr = np.array(seeds) if seeds else np.array([np.nan])
            std = float(arr.std(ddof=1)) if len(seeds) > 1 else float("nan")
            records.append(
                {
                    "function": name,
                    "activation": label,
                    "test MSE": mean_std(float(arr.mean()), std, len(seeds), 3),
                    "seeds": len(seeds),
                }
            )
        if "relu" in values and "drop_activation" in values:
            evidence = directional(
                values["drop_activation"], values["relu"], -1, labels=("DA", "ReLU")
            )
            drafts.append(
                Draft(
                    f"Drop-Activation fits {name} with lower test error than ReLU",
                    "Figure 2: the DA fit is smoother and closer to the truth away from the data",
                    f"Δ test MSE (DA − ReLU) {evidence.estimate:+.3f} over {evidence.n} seeds",
                    evidence,
                )
            )
    report.claims = decide(drafts, meta["recipe"], meta["scale"])
    report.add_table("test_error", pd.DataFrame(records), "Test MSE against the noiseless function")
    fits = {
        (row["function"], row["param.activation"]): history.artifact(row["run_id"], "fit")
        for _, row in finished[finished["seed"] == 0].iterrows()
    }
    if fits:
        report.add_figure("fits", _fits_figure(fits), "The fits (seed 0)")
    return report


def _fits_figure(fits):
    fig, axes = plt.subplots(1, len(FUNCTIONS), figsize=(11, 4))
    for ax, (function, name) in zip(np.atleast_1d(axes), FUNCTIONS.items()):
        shown = False
        for activation, label in ACTIVATIONS.items():
            fit = fits.get((function, activation))
            if fit is None:
                continue
            if not shown:
                ax.plot(fit["x"], fit["truth"], color="tab:blue", lw=2, label="ground truth")
                ax.plot(fit["train_x"], fit["train_y"], "k*", label="training data")
                shown = True
            color = "tab:orange" if activation == "relu" else "tab:green"
            ax.plot(fit["x"], fit["prediction"], color=color, label=label)
        ax.set_title(name)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return fig


def plan(scale: str, options: dict[str, Any]) -> list[dict[str, Any]]:
    """Every training ``run`` would do, for ``study reproduce da_fig2 --plan``: one full-batch
    step per epoch, ``steps`` epochs."""
    return [
        {
            "part": function,
            "arm": activation,
            "seed": seed,
            "config": trial_config(function, activation, seed, options).replace(
                eval_every=options["steps"]
            ),
            "steps_per_epoch": 1,
        }
        for function in FUNCTIONS
        for activation in ACTIVATIONS
        for seed in range(options["seeds"])
    ]
