"""``study confirm NAME``: more seeds for the best configs of a finished search, until the
verdict rules decide their order (the two-phase protocol: search with few seeds, then confirm
the top with many).

Each round is a sweep of its own whose ``points`` are the chosen configs, whole, and whose seeds
follow those each already has. It is stored inside the search's Ray experiment
(``ray_results/NAME/confirm-R``), and its MLflow run (kind ``confirm``) sits under the search's
sweep run in the same experiment, so its trial runs count as the sweep's own in ``study best``
and :func:`analysis.query.trial_runs`. A round resumes like any sweep: run the same command
again after a crash or a kill and it continues where it stopped, neither rerunning nor
relogging a finished epoch.
"""

from __future__ import annotations

import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.tracking import MlflowClient
from ray.tune import ExperimentAnalysis

from analysis.aggregate import config_columns, summarize
from analysis.query import trial_runs
from analysis.ranking import Ranking, rank
from analysis.schema import TAG

from . import tracking
from .runner import read_record, resume, sweep, sweep_status
from .spec import Spec, SpecError
from .storage import exists
from .trials import SEED

ROUND = "confirm-{}"
CONFIRM_TAG = f"{TAG}.confirm"


@dataclass(frozen=True)
class Plan:
    """What ``study confirm`` was asked: the top ``top`` configs to ``seeds`` seeds each, then
    (``until_decided``) more until their order is decided or each has ``max_seeds``."""

    top: int
    seeds: int
    until_decided: bool = False
    max_seeds: int | None = None
    margin: float | None = None

    def check(self) -> None:
        if self.top < 2:
            raise SpecError(f"--top {self.top}: an order needs at least 2 configs")
        if self.seeds < 1:
            raise SpecError(f"--seeds {self.seeds}: must be at least 1")
        if self.max_seeds is not None and not self.until_decided:
            raise SpecError("--max-seeds needs --until-decided")
        if self.until_decided and (self.max_seeds is None or self.max_seeds < self.seeds):
            raise SpecError(f"--until-decided needs --max-seeds M with M >= --seeds {self.seeds}")
        if self.margin is not None and not self.margin > 0:
            raise SpecError(f"--margin {self.margin}: must be > 0")

    def next_target(self, target: int) -> int:
        """Seeds per config for the next round: half again as many, at most ``max_seeds``."""
        return min(self.max_seeds or target, target + max(1, target // 2))


@dataclass(frozen=True)
class Candidate:
    """One of the top configs: its id, how it is shown, and its whole trial config."""

    config_id: str
    label: str
    point: dict[str, Any]


@dataclass(frozen=True)
class Confirmed:
    """What a confirm ended with: the ranking, the candidates and the rounds it ran."""

    name: str
    metric: str
    ranking: Ranking
    candidates: dict[str, Candidate]
    searched: int
    rounds: int
    table: pd.DataFrame


def _say(message: str) -> None:
    print(f"[confirm] {message}", file=sys.stderr, flush=True)


def confirm(
    name: str, plan: Plan, storage_path: str = "ray_results", verbose: int = 0
) -> Confirmed:
    """Run ``plan`` on sweep ``name``: the rounds a killed confirm left unfinished first, then
    new rounds until the plan is met; returns the ranking it ended with."""
    plan.check()
    record = read_record(name, storage_path)
    spec = Spec.model_validate(record["spec"])
    if tracking.is_confirm_round(spec):
        raise SpecError(f"{name!r} is a confirm round; confirm the sweep it belongs to")
    sweep_run_id = record["sweep_run_id"]
    client = tracking.open_client(spec.tracking_uri)
    status = client.get_run(sweep_run_id).info.status
    if status != tracking.FINISHED:
        raise SpecError(
            f"sweep {name} is {status}, not finished: `study resume {name}` finishes it first"
        )
    candidates, searched = _top(spec, sweep_run_id, plan.top)
    again = f"`study confirm {name} {_flags(plan)}`"
    with tracking.driver(f"confirm {name}", again):
        rounds = _finish_rounds(spec, verbose)
        target, focus, before = plan.seeds, set(candidates), None
        while True:
            tried, values = _seeds(spec, sweep_run_id, candidates)
            if tried == before:  # a round ran, yet MLflow shows no new seed: never loop on it
                raise LookupError(
                    f"confirm {name}: the last round's runs are not in MLflow's experiment "
                    f"{spec.experiment_name}; `study sync` it, then run this again"
                )
            ranking = rank(values, spec.mode == "min", plan.margin)
            short = [c for c in candidates if c in focus and tried[c] < target]
            if short:
                rounds += _run_rounds(spec, sweep_run_id, candidates, short, tried, target, verbose)
                before = tried
                continue
            if not plan.until_decided or ranking.decided or target >= (plan.max_seeds or 0):
                break
            target, focus, before = plan.next_target(target), ranking.undecided(), None
            _say(f"order undecided: {len(focus)} configs go to {target} seeds")
    table = _table(ranking, candidates)
    _log(client, sweep_run_id, ranking, table)
    return Confirmed(name, spec.metric, ranking, candidates, searched, rounds, table)


def _flags(plan: Plan) -> str:
    flags = f"--top {plan.top} --seeds {plan.seeds}"
    if plan.until_decided:
        flags += f" --until-decided --max-seeds {plan.max_seeds}"
    if plan.margin is not None:
        flags += f" --margin {plan.margin:g}"
    return flags


def _top(spec: Spec, sweep_run_id: str, top: int) -> tuple[dict[str, Candidate], int]:
    """The ``top`` best configs of the search itself (its confirm rounds aside, so the choice
    stays the same however many rounds ran), each with a whole trial config from Ray's state."""
    runs = trial_runs(spec.tracking_uri or "", spec.experiment_name, sweep_run_id, confirmed=False)
    frame = runs.to_pandas()
    ranked = summarize(frame, spec.metric, spec.mode) if not frame.empty else pd.DataFrame()
    finished = ranked[ranked["n"] > 0] if not ranked.empty else ranked
    if len(finished) < 2:
        raise SpecError(
            f"sweep {spec.name}: {len(finished)} configs finished a seed; an order needs 2"
        )
    configs = {t.trial_id: dict(t.config) for t in ExperimentAnalysis(spec.experiment_dir).trials}
    knobs = [c.removeprefix("param.") for c in config_columns(frame)]
    chosen: dict[str, Candidate] = {}
    for _, row in finished.head(top).iterrows():
        trial_ids = frame.loc[frame["config_id"] == row["config_id"], "trial_id"]
        whole = next((configs[t] for t in trial_ids if t in configs), None)
        if whole is None:
            raise SpecError(
                f"sweep {spec.name}: Ray's results under {spec.experiment_dir} hold no trial of "
                f"config {row['config_id']}; they are needed to run it again"
            )
        label = " ".join(f"{k}={row[k]}" for k in knobs if k in row) or row["config_id"]
        point = {"name": label, **{k: v for k, v in whole.items() if k != SEED}}
        chosen[row["config_id"]] = Candidate(row["config_id"], label, point)
    return chosen, len(finished)


def _seeds(
    spec: Spec, sweep_run_id: str, candidates: dict[str, Candidate]
) -> tuple[dict[str, int], dict[str, dict[int, float]]]:
    """Per candidate: the seeds tried (one past the highest seed with a run), and the metric of
    each seed that finished."""
    runs = trial_runs(spec.tracking_uri or "", spec.experiment_name, sweep_run_id).to_pandas()
    column = f"metric.{spec.metric}"
    tried, values = {}, {}
    for config_id in candidates:
        mine = runs[runs["config_id"] == config_id]
        seeds = [int(s) for s in mine["seed"].dropna()]
        tried[config_id] = max(seeds, default=-1) + 1
        done = mine[(mine["status"] == "FINISHED") & mine[column].notna()]
        values[config_id] = {
            int(s): float(v) for s, v in zip(done["seed"], done[column]) if math.isfinite(v)
        }
    return tried, values


def _rounds(spec: Spec) -> list[str]:
    """The confirm rounds stored under the sweep, in order."""
    found, r = [], 1
    while exists(_round_stub(spec, r)):
        found.append(ROUND.format(r))
        r += 1
    return found


def _round_stub(spec: Spec, r: int) -> Spec:
    return spec.model_copy(update={"name": ROUND.format(r), "storage_path": spec.experiment_dir})


def _finish_rounds(spec: Spec, verbose: int) -> int:
    """Resume every round a killed confirm left unfinished; how many rounds exist."""
    rounds = _rounds(spec)
    for name in rounds:
        try:
            recorded = Spec.model_validate(read_record(name, spec.experiment_dir)["spec"])
        except SpecError:  # killed before the round's record was written: it starts again
            continue
        if sweep_status(recorded) == "unfinished":
            _say(f"{name} was interrupted: resuming it")
            resume(name, spec.experiment_dir, verbose=verbose)
    return len(rounds)


def _run_rounds(
    spec: Spec,
    sweep_run_id: str,
    candidates: dict[str, Candidate],
    short: list[str],
    tried: dict[str, int],
    target: int,
    verbose: int,
) -> int:
    """One round per group of configs that have the same seeds, each to ``target`` seeds."""
    groups: dict[int, list[str]] = {}
    for config_id in short:
        groups.setdefault(tried[config_id], []).append(config_id)
    for first, members in sorted(groups.items()):
        r = _next_round(spec)
        chosen = [candidates[c] for c in members]
        round_spec = _round_spec(spec, sweep_run_id, r, chosen, first, target - first)
        _say(
            f"{ROUND.format(r)}: {len(members)} configs, seeds {first}..{target - 1} "
            f"({len(members) * (target - first)} trainings)"
        )
        sweep(round_spec, overwrite=True, verbose=verbose, parent_run_id=sweep_run_id)
    return len(groups)


def _next_round(spec: Spec) -> int:
    """The first round number with no record (a round killed before its record starts over)."""
    r = 1
    while True:
        try:
            read_record(ROUND.format(r), spec.experiment_dir)
        except SpecError:
            return r
        r += 1


def _round_spec(
    spec: Spec, sweep_run_id: str, r: int, members: list[Candidate], first_seed: int, seeds: int
) -> Spec:
    """A round: the members whole as ``points``, ``seeds`` seeds from ``first_seed``, every
    epoch run (no early stopping: a confirm compares finished trainings)."""
    values = spec.model_dump(mode="json")
    values.update(
        name=ROUND.format(r),
        experiment=spec.experiment_name,
        storage_path=spec.experiment_dir,
        space="none",
        grid={},
        variants={},
        points=[c.point for c in members],
        scheduler={"kind": "fifo"},
        tags={**spec.tags, "confirms": sweep_run_id},
    )
    values["budget"] = {
        **values["budget"],
        "first_seed": first_seed,
        "repeats": seeds,
        "num_samples": 1,
    }
    return Spec.model_validate(values)


def _table(ranking: Ranking, candidates: dict[str, Candidate]) -> pd.DataFrame:
    rows = []
    for i, (config_id, place) in enumerate(zip(ranking.order, ranking.ranks)):
        pair = ranking.pairs[i] if i < len(ranking.pairs) else None
        rows.append(
            {
                "rank": place,
                "config": candidates[config_id].label,
                "mean": ranking.means[config_id],
                "seeds": ranking.seeds[config_id],
                "vs next": pair.relation if pair else "",
                "why": pair.says() if pair else "",
                "config_id": config_id,
            }
        )
    return pd.DataFrame(rows)


def _log(client: MlflowClient, sweep_run_id: str, ranking: Ranking, table: pd.DataFrame) -> None:
    """The ranking on the search's sweep run: ``confirm/ranking.csv`` and a one-line tag."""
    verdict = "decided" if ranking.decided else f"undecided ({len(ranking.undecided())} configs)"
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ranking.csv"
        table.to_csv(path, index=False)
        client.log_artifact(sweep_run_id, str(path), "confirm")
    best = table.iloc[0]["config"]
    client.set_tag(sweep_run_id, CONFIRM_TAG, f"{verdict}; first: {best}")


def render(confirmed: Confirmed) -> str:
    """The ranking as the command prints it."""
    ranking, table = confirmed.ranking, confirmed.table
    state = "decided" if ranking.decided else "NOT decided"
    low, high = min(ranking.seeds.values()), max(ranking.seeds.values())
    seeds = f"{low}" if low == high else f"{low} to {high}"
    head = (
        f"confirm {confirmed.name}: top {len(ranking.order)} of {confirmed.searched} configs, "
        f"{seeds} finished seeds each; order {state}"
    )
    shown = table.assign(**{confirmed.metric: [f"{m:.4f}" for m in table["mean"]]})[
        ["rank", "config", confirmed.metric, "seeds", "vs next"]
    ]
    lines = [head, shown.to_string(index=False), ""]
    for _, row in table.iterrows():
        if row["why"]:
            lines.append(f"  {row['config']} vs next: {row['why']}")
    return "\n".join(lines)
