"""LRD Figure 4: Adam and Adam+LRD from many starting points on the paper's 2-D function.

f(x, y) = (1.5 - x² + xy)² + (2.25 - x² + xy²)² + (2.625 - x² + xy³)² on
x in [-4, 0], y in [-2, 3]; the paper says Adam stays trapped near its start
while Adam+LRD escapes towards the optimum it gives as (-0.74, 1.40). We find
the minimum on the domain numerically, start both optimizers from the same
grid of points, and compare them start by start (McNemar).

All starting points are optimized at once as one (N, 2) parameter: Adam and
LRD act element by element, so this is N independent runs in one tensor.
"""

from __future__ import annotations

import time
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from scipy import optimize

from analysis.render import Report, mean_std
from analysis.reports._common import intro
from analysis.verdicts import Draft, count, decide
from study.script_runs import ScriptRuns, latest_finished
from trainables.regularizers import LearningRateDropout

DOMAIN = ((-4.0, 0.0), (-2.0, 3.0))
PAPER_OPTIMUM = (-0.74, 1.40)


def f(x, y):
    return (
        (1.5 - x**2 + x * y) ** 2 + (2.25 - x**2 + x * y**2) ** 2 + (2.625 - x**2 + x * y**3) ** 2
    )


def domain_minimum() -> tuple[np.ndarray, float]:
    """The minimum of f on the domain: the best point of a fine grid, polished by L-BFGS-B."""
    xs = np.linspace(*DOMAIN[0], 801)
    ys = np.linspace(*DOMAIN[1], 1001)
    grid_x, grid_y = np.meshgrid(xs, ys)
    values = f(grid_x, grid_y)
    i = np.unravel_index(np.argmin(values), values.shape)
    result = optimize.minimize(
        lambda p: f(p[0], p[1]), [grid_x[i], grid_y[i]], method="L-BFGS-B", bounds=DOMAIN
    )
    return result.x, float(result.fun)


def starting_points(per_axis: int) -> torch.Tensor:
    margin = 0.05
    xs = torch.linspace(DOMAIN[0][0] + margin, DOMAIN[0][1] - margin, per_axis)
    ys = torch.linspace(DOMAIN[1][0] + margin, DOMAIN[1][1] - margin, per_axis)
    return torch.cartesian_prod(xs, ys).double()


def descend(
    starts: torch.Tensor, lr: float, steps: int, lrd_p: float, seed: int, record_every: int
) -> tuple[np.ndarray, np.ndarray]:
    """Final points and recorded paths (steps/record_every, N, 2) of Adam(+LRD) from ``starts``."""
    torch.manual_seed(seed)
    points = torch.nn.Parameter(starts.clone())
    optimizer: torch.optim.Optimizer = torch.optim.Adam([points], lr=lr)
    if lrd_p < 1:
        optimizer = LearningRateDropout(optimizer, p=lrd_p)
    path = [points.detach().clone()]
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        f(points[:, 0], points[:, 1]).sum().backward()
        optimizer.step()
        if step % record_every == 0:
            path.append(points.detach().clone())
    return points.detach().numpy(), torch.stack(path).numpy()


def run(
    scale: str, options: dict[str, Any], tracking_uri: str, experiment: str, parent_run_id: str
):
    """Adam once (it is deterministic: seeds would be copies), Adam+LRD once per seed."""
    runs = ScriptRuns(tracking_uri, experiment, parent_run_id)
    best, best_value = domain_minimum()
    starts = starting_points(options["grid_per_axis"])
    arms = [(1.0, 0)] + [(options["lrd_p"], seed) for seed in range(options["seeds"])]
    for lrd_p, seed in arms:
        config = {
            "optimizer": "adam",
            "lrd_p": lrd_p,
            "lr": options["lr"],
            "steps": options["steps"],
            "starts": len(starts),
            "radius": options["radius"],
            "seed": seed,
        }
        if runs.done(config):
            continue
        start = time.perf_counter()
        final, path = descend(
            starts, options["lr"], options["steps"], lrd_p, seed, options["record_every"]
        )
        seconds = time.perf_counter() - start
        reached = np.linalg.norm(final - best, axis=1) < options["radius"]
        runs.log(
            config,
            {
                "fraction_reached": float(reached.mean()),
                "mean_final_f": float(np.mean(f(final[:, 0], final[:, 1]))),
                "domain_min_f": best_value,
            },
            artifacts={
                "outcome": {
                    "starts": starts.numpy().tolist(),
                    "final": final.tolist(),
                    "reached": reached.tolist(),
                    "paths": path[:, :: options["path_stride"]].tolist(),
                    "paths_reached": reached[:: options["path_stride"]].tolist(),
                    "minimum": best.tolist(),
                }
            },
            seconds=seconds,
        )


def per_start(adam: np.ndarray, lrd: np.ndarray) -> tuple[int, int, np.ndarray]:
    """McNemar's discordant starts: LRD (by the majority of its seeds) reaches the minimum where
    Adam does not (wins), and the reverse (losses); ``lrd`` is (seeds, starts)."""
    share = lrd.mean(axis=0)
    lrd_reaches = share > 0.5
    decided = share != 0.5
    wins = int(np.sum(lrd_reaches & ~adam & decided))
    losses = int(np.sum(~lrd_reaches & adam & decided))
    return wins, losses, share


def build_report(
    meta: dict[str, Any], options: dict[str, Any], runs: pd.DataFrame, history
) -> Report:
    best, best_value = domain_minimum()
    report = Report(
        meta["recipe"],
        meta["scale"],
        meta["title"],
        intro(
            meta,
            runs,
            f"The minimum of f on the domain, found numerically, is at ({best[0]:.3f}, "
            f"{best[1]:.3f}) with f = {best_value:.4f}; the paper marks (-0.74, 1.40), where "
            f"f = {f(*PAPER_OPTIMUM):.4f}. A start reaches it when the final point lies within "
            "the recorded radius. Adam is deterministic, so it runs once; Adam+LRD runs once per "
            "seed, and a start counts as reached by LRD when most of its seeds reach it. The "
            "unit of the test is the start, never a seed of a deterministic arm.",
            history,
        ),
    )
    finished = latest_finished(runs, ["param.lrd_p", "seed"])
    outcomes = {
        (float(row["param.lrd_p"]), int(row["seed"])): history.artifact(row["run_id"], "outcome")
        for _, row in finished.iterrows()
    }
    adam = next((np.array(o["reached"]) for (p, _), o in outcomes.items() if p == 1.0), None)
    lrd = [np.array(o["reached"]) for (p, _), o in sorted(outcomes.items()) if p < 1]
    records = []
    if adam is not None:
        records.append(
            {"optimizer": "Adam", "runs": 1, "starts reached (%)": f"{100 * adam.mean():.1f}"}
        )
    if lrd:
        shares = [100 * r.mean() for r in lrd]
        records.append(
            {
                "optimizer": f"Adam + LRD (p={min(p for p, _ in outcomes):g})",
                "runs": len(lrd),
                "starts reached (%)": mean_std(
                    float(np.mean(shares)),
                    float(np.std(shares, ddof=1)) if len(lrd) > 1 else float("nan"),
                    len(lrd),
                    1,
                ),
            }
        )
    report.add_table("reached", pd.DataFrame(records), "Starts that reach the global minimum")
    drafts = []
    if adam is not None and lrd:
        wins, losses, share = per_start(adam, np.stack(lrd))
        drafts.append(
            Draft(
                "Adam+LRD reaches the global minimum from starts where Adam stays trapped",
                "Figure 4: Adam trapped near its start, Adam+LRD escapes to the optimum",
                f"of {len(adam)} starts: LRD (majority of {len(lrd)} seeds) reaches it where Adam "
                f"does not from {wins}, the reverse from {losses}",
                count(wins, losses, "starts"),
            )
        )
        report.add_table(
            "starts",
            pd.DataFrame(
                {
                    "Adam reaches": ["yes", "yes", "no", "no"],
                    "LRD reaches (majority)": ["yes", "no", "yes", "no"],
                    "starts": [
                        int(np.sum(adam & (share > 0.5))),
                        int(np.sum(adam & (share < 0.5))),
                        int(np.sum(~adam & (share > 0.5))),
                        int(np.sum(~adam & (share < 0.5))),
                    ],
                }
            ),
            "Starts by outcome (McNemar's table)",
            "Starts where exactly half of LRD's seeds reach the minimum are left out.",
        )
    report.claims = decide(drafts, meta["recipe"], meta["scale"])
    if outcomes:
        report.add_figure("paths", _paths_figure(outcomes, best), "Descent paths (green: reached)")
    return report


def _paths_figure(outcomes, best):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    xs = np.linspace(*DOMAIN[0], 200)
    ys = np.linspace(*DOMAIN[1], 200)
    grid_x, grid_y = np.meshgrid(xs, ys)
    levels = np.logspace(-2, 4, 25)
    for ax, lrd in zip(axes, (False, True)):
        ax.contour(grid_x, grid_y, f(grid_x, grid_y), levels=levels, cmap="Greys", linewidths=0.5)
        key = next((k for k in sorted(outcomes) if (k[0] < 1) == lrd), None)
        if key is None:
            continue
        outcome = outcomes[key]
        paths = np.array(outcome["paths"])
        for i, ok in enumerate(outcome["paths_reached"]):
            ax.plot(
                paths[:, i, 0],
                paths[:, i, 1],
                color="tab:green" if ok else "tab:red",
                lw=0.7,
                alpha=0.6,
            )
        ax.plot(*best, "k*", markersize=14)
        ax.plot(*PAPER_OPTIMUM, "b+", markersize=12)
        share = 100 * np.mean(outcome["reached"])
        ax.set_title(f"{'Adam + LRD' if lrd else 'Adam'} (seed {key[1]}): {share:.0f}% reached")
        ax.set_xlim(*DOMAIN[0])
        ax.set_ylim(*DOMAIN[1])
        ax.set_xlabel("x")
    axes[0].set_ylabel("y")
    return fig


def plan(scale: str, options: dict[str, Any]) -> list[dict[str, Any]]:
    """The descents ``run`` would do, for ``--plan``: all starts move at once as one (N, 2)
    tensor, about 0.2 ms a step on a CPU core."""
    hours = options["steps"] * 2e-4 / 3600
    return [{"part": "toy", "arm": "Adam", "seed": 0, "estimated_hours": hours}] + [
        {"part": "toy", "arm": "Adam+LRD", "seed": s, "estimated_hours": hours}
        for s in range(options["seeds"])
    ]
