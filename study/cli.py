"""The ``study`` command: sweep, resume, sync, best, server, reproduce, report, summary, data.

Every spec field can be set from the command line: the common ones have
their own flag, and ``--set section.field=value`` reaches any of them (the
value is read as YAML: ``--set train.milestones=[100,150]``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .spec import METRICS, SpecError, parse_yaml

MAIN_JOB = "main_job.yaml"

# flag -> spec path; each becomes --flag on `study sweep`.
SPEC_FLAGS: dict[str, tuple[str, type]] = {
    "name": ("name", str),
    "space": ("space", str),
    "epochs": ("budget.epochs", int),
    "num-samples": ("budget.num_samples", int),
    "repeats": ("budget.repeats", int),
    "max-concurrent": ("budget.max_concurrent", int),
    "cpus-per-trial": ("resources.cpus_per_trial", float),
    "gpus-per-trial": ("resources.gpus_per_trial", float),
    "scheduler": ("scheduler.kind", str),
    "grace-period": ("scheduler.grace_period", int),
    "metric": ("metric", str),
    "mode": ("mode", str),
    "search-seed": ("search_seed", int),
    "tracking-uri": ("tracking_uri", str),
    "storage-path": ("storage_path", str),
    "optuna-storage": ("optuna_storage", str),
    "address": ("address", str),
    "data-dir": ("train.data_dir", str),
    "dataset": ("train.dataset", str),
    "model": ("train.model", str),
}


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other refusal (``--help`` has the
    full usage)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"train.lr=0.1"`` -> ``("train.lr", 0.1)``; the value is YAML (``1e-3`` is a float too)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set {text}: expected FIELD=VALUE, such as --set train.lr=0.1")
    value = parse_yaml(raw, f"--set {text}", column_offset=len(key) + 1)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    return key.strip(), value


def spec_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for flag, (path, _) in SPEC_FLAGS.items():
        value = getattr(args, flag.replace("-", "_"))
        if value is not None:
            overrides[path] = value
    for text in args.set or []:
        key, value = parse_assignment(text)
        overrides[key] = value
    return overrides


def load_sweep_spec(args: argparse.Namespace):
    from .spec import build_spec, load_spec

    overrides = spec_overrides(args)
    if args.spec is None:
        text = resources.files("study").joinpath(MAIN_JOB).read_text()
        return build_spec(yaml.safe_load(text), overrides)
    return load_spec(args.spec, overrides)


def cmd_sweep(args: argparse.Namespace) -> int:
    spec = load_sweep_spec(args)  # first: a bad spec is refused without importing Ray
    if args.dry_run:
        print(spec.to_yaml())
        return 0
    from .cluster import check_local_resources, disconnect, disconnect_in_background, start_early
    from .storage import refuse_name_in_use

    check_local_resources(spec)  # refused before Ray starts: GPUs this machine lacks,
    if not args.overwrite:  # a sweep name in use
        refuse_name_in_use(spec)
    start_early(spec)
    try:
        from .runner import sweep  # seconds of imports, while Ray starts

        verbose = 0 if args.quiet else 1
        outcome = sweep(spec, args.overwrite, verbose, after_fit=disconnect_in_background)
        _print_outcome(outcome)
        if not args.no_best:
            uri, experiment = outcome.tracking_uri, outcome.experiment
            _print_best(uri, experiment, spec.metric, spec.mode, 5, "table", outcome.sweep_run_id)
            _print_curve(outcome, spec.metric, spec.mode)
    finally:
        disconnect()
    return _crashed(outcome)


def _print_curve(outcome, metric: str, mode: str) -> None:
    """A sweep over one numeric knob (the p-grid): its curve in the knob's order, and a PNG."""
    from analysis.aggregate import summarize
    from analysis.query import trial_runs

    from .best import curve_knob, render_curve, save_curve, shared_ranks

    runs = trial_runs(outcome.tracking_uri, outcome.experiment, sweep_run_id=outcome.sweep_run_id)
    frame = summarize(runs, metric, mode)
    knob = curve_knob(frame)
    if knob is None:
        return
    frame.insert(0, "rank", shared_ranks(frame["mean"].tolist()))
    print(f"\n{render_curve(frame, knob, metric)}")
    if "://" not in outcome.experiment_dir:  # beside the sweep's Ray results
        target = Path(outcome.experiment_dir) / "curve.png"
        print(f"  plot: {save_curve(frame, knob, metric, mode, target)}")


def _crashed(outcome) -> int:
    """1, with one line saying how to retry, when trials crashed (their runs are FAILED)."""
    if not outcome.errored:
        return 0
    print(
        f"error: sweep {outcome.name}: {outcome.errored} of {outcome.trials} trials crashed; "
        f"`study resume {outcome.name}` retries them from their last checkpoints",
        file=sys.stderr,
    )
    return 1


def cmd_doctor(args: argparse.Namespace) -> int:
    """Every preflight check of the spec (and each node's, on a cluster), ✓ or ✗ with the fix."""
    spec = load_sweep_spec(args)
    from .doctor import doctor
    from .runner import provision_data

    checks = doctor(spec, provision_data)
    for check in checks:
        print(check.line())
    failed = sum(not c.ok for c in checks)
    print(
        f"{len(checks) - failed} of {len(checks)} checks passed" if failed else "all checks passed"
    )
    return 1 if failed else 0


def cmd_resume(args: argparse.Namespace) -> int:
    from .runner import resume, shutdown

    try:
        outcome = resume(args.name, args.storage_path, verbose=0 if args.quiet else 1)
    finally:
        shutdown()
    _print_outcome(outcome)
    return _crashed(outcome)


def cmd_sync(args: argparse.Namespace) -> int:
    """Write what MLflow missed of a sweep, from Ray's results; one line says what it wrote."""
    from .sync import sync
    from .tracking.store import TRACKING_ERRORS, describe

    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # one line, ours
    try:
        outcome = sync(args.name, args.storage_path)
    except FileNotFoundError:
        raise
    except TRACKING_ERRORS as err:
        then = "" if isinstance(err, OSError) else "; run it again once MLflow answers"
        print(f"error: sync {args.name}: {describe(err)}{then}", file=sys.stderr)
        return 1
    print(outcome.line())
    return 0


def _print_outcome(outcome) -> None:
    print(
        f"\nsweep {outcome.name}: {outcome.trials} trials, {outcome.diverged} diverged, "
        f"{outcome.errored} errored\n"
        f"  MLflow: {outcome.tracking_uri}  experiment {outcome.experiment}  "
        f"parent run {outcome.sweep_run_id}\n"
        f"  Ray results: {outcome.experiment_dir}\n"
        f"  browse: mlflow ui --backend-store-uri {outcome.tracking_uri}   (or `study server`)\n"
    )


def _print_best(
    uri: str, experiment: str, metric: str, mode: str, top: int, fmt: str, sweep: str | None = None
) -> None:
    from .best import best_configs, render

    print(render(best_configs(uri, experiment, metric, mode, sweep).head(top), metric, fmt))


def cmd_best(args: argparse.Namespace) -> int:
    from analysis.query import sweep_runs

    from .spec import resolve_locations

    uri = resolve_locations({"tracking_uri": args.tracking_uri})["tracking_uri"]
    sweep = None
    if not args.all_sweeps:  # a rerun sweep's seeds would otherwise count twice
        sweep = next((r.info.run_id for r in sweep_runs(uri, args.experiment)), None)
    _print_best(uri, args.experiment, args.metric, args.mode, args.top, args.format, sweep)
    return 0


def cmd_importance(args: argparse.Namespace) -> int:
    """Rank a sweep's params (and its seed) by fANOVA and PED-ANOVA; write and log the table."""
    from pathlib import Path

    from .importance import importance, render
    from .spec import optuna_storage_url, resolve_locations

    uri = resolve_locations({"tracking_uri": args.tracking_uri})["tracking_uri"]
    storage = optuna_storage_url(uri, args.optuna_storage)
    out = Path(args.out or f"reports/importance/{args.experiment}")
    print(render(importance(uri, args.experiment, args.metric, args.mode, storage, out)))
    return 0


def cmd_confirm(args: argparse.Namespace) -> int:
    """More seeds for a finished search's best configs until their order is decided."""
    from .confirm import Plan, confirm, render
    from .runner import shutdown

    plan = Plan(args.top, args.seeds, args.until_decided, args.max_seeds, args.margin)
    plan.check()  # before Ray or MLflow are touched
    try:
        confirmed = confirm(args.name, plan, args.storage_path, verbose=0 if args.quiet else 1)
    finally:
        shutdown()
    print(render(confirmed))
    return 0


def cmd_server(args: argparse.Namespace) -> int:
    from .server import serve

    return serve(
        args.backend_store_uri, args.artifacts_destination, args.host, args.port, args.workers
    )


def cmd_reproduce(args: argparse.Namespace) -> int:
    if args.list or not args.recipe:
        from .plan_render import list_lines

        print("\n".join(list_lines()))
        return 0
    overrides: dict[str, Any] = {}
    if args.address:
        overrides["address"] = args.address
    if args.repeats:
        overrides["budget.repeats"] = args.repeats
    if args.tracking_uri:
        overrides["tracking_uri"] = args.tracking_uri
    for text in args.set or []:
        key, value = parse_assignment(text)
        overrides[key] = value
    if args.plan:
        return _print_plan(args.recipe, args.scale, overrides, args.part, args.format)
    from .reproduce import reproduce

    reproduce(
        args.recipe,
        args.scale,
        overrides,
        args.part,
        verbose=0 if args.quiet else 1,
        fresh=args.fresh,
    )
    return 0


def _print_plan(
    name: str, scale: str, overrides: dict[str, Any], parts: list[str] | None, fmt: str
) -> int:
    """``--plan``: every trial the recipe would run and its cost; runs nothing, logs nothing."""
    from .plan import make_plan
    from .plan_render import render_json, render_table
    from .recipes import load_recipe

    plan = make_plan(load_recipe(name), scale, overrides, parts)
    try:
        print(render_json(plan) if fmt == "json" else render_table(plan), flush=True)
    except BrokenPipeError:  # `--plan | head`: the reader took what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _check_scale(recipe: str, scale: str) -> None:
    """An unknown recipe or scale is a spec error (exit 2), found before MLflow is read."""
    from .recipes import load_recipe

    load_recipe(recipe).scale(scale)


def cmd_report(args: argparse.Namespace) -> int:
    _check_scale(args.recipe, args.scale)
    from .reproduce import report

    for path in report(args.recipe, args.scale, args.tracking_uri, args.experiment):
        if path.name == "README.md":
            print(path)
    return 0


def cmd_power(args: argparse.Namespace) -> int:
    from analysis.power import power_table
    from analysis.render import markdown_table

    _check_scale(args.recipe, args.scale)
    from .reproduce import build

    report = build(args.recipe, args.scale, args.tracking_uri, args.experiment)
    print(f"{report.title} ({args.scale} scale): power of each claim's test")
    print(markdown_table(power_table(report.claims)))
    print(
        "MDE: the smallest difference these seeds detect with 80% power (one-sided α = 0.025, "
        "before Holm); seeds for it: paired seeds that detect the paper's own effect."
    )
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from pathlib import Path

    from analysis.summary import write_summary

    from .recipes import list_recipes, load_recipe

    if not Path(args.reports).is_dir():
        raise FileNotFoundError(
            f"--reports {args.reports}: no such folder; `study reproduce` and `study report` "
            "write reports/RECIPE/SCALE there"
        )
    recipes = {name: load_recipe(name) for name in list_recipes()}
    papers = {name: recipe.paper for name, recipe in recipes.items()}
    scales = {name: list(recipe.scales) for name, recipe in recipes.items()}
    print(write_summary(Path(args.reports), papers, scales))
    return 0


def cmd_data_prepare(args: argparse.Namespace) -> int:
    from trainables.data import prepare_datasets

    logging.basicConfig(format="%(message)s")
    logging.getLogger("trainables.data.prepare").setLevel(logging.INFO)
    for path in prepare_datasets(args.names, root=args.data_dir, download=args.download):
        print(path)
    return 0


def _add_spec_arguments(command: argparse.ArgumentParser) -> None:
    """The spec, every spec flag and ``--set``: what ``sweep`` and ``doctor`` both read."""
    command.add_argument("spec", nargs="?", help="YAML spec; default: the embedded main job")
    for flag, (path, kind) in SPEC_FLAGS.items():
        command.add_argument(f"--{flag}", type=kind, help=f"sets {path}")
    command.add_argument("--set", action="append", metavar="FIELD=VALUE", help="any spec field")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="study", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    sweep = commands.add_parser(
        "sweep", help="run a sweep (local Ray, or a cluster with --address)"
    )
    _add_spec_arguments(sweep)
    sweep.add_argument("--overwrite", action="store_true", help="replace a sweep of the same name")
    sweep.add_argument("--dry-run", action="store_true", help="validate and print the spec")
    sweep.add_argument("--quiet", action="store_true", help="no Ray status table")
    sweep.add_argument("--no-best", action="store_true", help="do not print the best configs")
    sweep.set_defaults(run=cmd_sweep)

    doctor = commands.add_parser(
        "doctor", help="check a spec's tracking store, storage, Ray, devices and data"
    )
    _add_spec_arguments(doctor)
    doctor.set_defaults(run=cmd_doctor)

    resume = commands.add_parser("resume", help="finish an interrupted sweep")
    resume.add_argument("name")
    resume.add_argument("--storage-path", default="ray_results")
    resume.add_argument("--quiet", action="store_true")
    resume.set_defaults(run=cmd_resume)

    sync = commands.add_parser(
        "sync", help="write what MLflow missed of a sweep (its store was down), from Ray's results"
    )
    sync.add_argument("name")
    sync.add_argument("--storage-path", default="ray_results")
    sync.set_defaults(run=cmd_sync)

    best = commands.add_parser("best", help="the best configs of a study, from MLflow")
    best.add_argument("--experiment", required=True, help="the study name")
    best.add_argument("--metric", default="val_error")
    best.add_argument("--mode", choices=("min", "max"), default="min")
    best.add_argument("--top", type=int, default=5)
    best.add_argument("--format", choices=("table", "csv", "json"), default="table")
    best.add_argument("--tracking-uri", default=None)
    best.add_argument(
        "--all-sweeps",
        action="store_true",
        help="pool every sweep of the experiment (default: its newest sweep only)",
    )
    best.set_defaults(run=cmd_best)

    confirm = commands.add_parser(
        "confirm",
        help="more seeds for a finished search's best configs, until their order is decided",
    )
    confirm.add_argument("name", help="the finished sweep")
    confirm.add_argument("--top", type=int, default=3, help="how many of its best configs")
    confirm.add_argument("--seeds", type=int, required=True, help="seeds per config (in all)")
    confirm.add_argument(
        "--until-decided",
        action="store_true",
        help="then add seeds (half again each round) until the verdict rules decide the order",
    )
    confirm.add_argument("--max-seeds", type=int, help="with --until-decided: at most this many")
    confirm.add_argument(
        "--margin",
        type=float,
        help="configs this close (TOST) count as tied, so a tie is decided too",
    )
    confirm.add_argument("--storage-path", default="ray_results")
    confirm.add_argument("--quiet", action="store_true")
    confirm.set_defaults(run=cmd_confirm)

    importance = commands.add_parser(
        "importance", help="how much each knob, and the seed, explains a sweep's metric"
    )
    importance.add_argument("experiment", help="the MLflow experiment (its newest sweep)")
    importance.add_argument("--metric", choices=METRICS, default="val_error")
    importance.add_argument("--mode", choices=("min", "max"), default="min")
    importance.add_argument("--tracking-uri", default=None)
    importance.add_argument(
        "--optuna-storage", default=None, help="default: optuna.db beside a SQLite MLflow store"
    )
    importance.add_argument("--out", default=None, help="default: reports/importance/EXPERIMENT")
    importance.set_defaults(run=cmd_importance)

    server = commands.add_parser("server", help="a real `mlflow server` for a team or a cluster")
    server.add_argument(
        "--backend-store-uri",
        default="sqlite:///mlruns.db",
        help="any SQLAlchemy URI; a team's: postgresql://USER@HOST:PORT/DB (regstudy[postgres])",
    )
    server.add_argument(
        "--artifacts-destination", default="mlartifacts", help="a folder, or s3://BUCKET/PREFIX"
    )
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=5000)
    server.add_argument("--workers", type=int, default=None, help="default: MLflow's (4)")
    server.set_defaults(run=cmd_server)

    reproduce = commands.add_parser("reproduce", help="run a paper recipe and render its report")
    reproduce.add_argument("recipe", nargs="?", help="recipe name (see --list)")
    reproduce.add_argument(
        "--list",
        action="store_true",
        help="the recipes, their trainings per scale, what is out of scope",
    )
    reproduce.add_argument(
        "--plan",
        action="store_true",
        help="list every trial it would run and the estimated cost; run nothing",
    )
    reproduce.add_argument(
        "--format", choices=("table", "json"), default="table", help="of --plan (default: table)"
    )
    reproduce.add_argument("--scale", default="quick", help="quick, paper, or a recipe's own")
    reproduce.add_argument("--part", action="append", help="only these parts of the recipe")
    reproduce.add_argument("--address", help="Ray cluster address (default: local Ray)")
    reproduce.add_argument("--repeats", type=int, help="seeds per config")
    reproduce.add_argument("--tracking-uri", default=None)
    reproduce.add_argument("--set", action="append", metavar="FIELD=VALUE")
    reproduce.add_argument("--quiet", action="store_true")
    reproduce.add_argument(
        "--fresh",
        action="store_true",
        help="rerun finished or changed parts from scratch (sweep recipes; a script resumes)",
    )
    reproduce.set_defaults(run=cmd_reproduce)

    report = commands.add_parser("report", help="re-render a recipe's report from MLflow alone")
    report.add_argument("recipe")
    report.add_argument("--scale", default="quick", help="quick, paper, or a recipe's own")
    report.add_argument("--experiment", help="MLflow experiment (default: RECIPE-SCALE)")
    report.add_argument("--tracking-uri", default=None)
    report.set_defaults(run=cmd_report)

    power = commands.add_parser(
        "power", help="per claim: the effect its seeds resolve and the seeds the paper's needs"
    )
    power.add_argument("recipe")
    power.add_argument("--scale", default="quick")
    power.add_argument("--tracking-uri", default=None)
    power.add_argument("--experiment", default=None, help="default: RECIPE-SCALE")
    power.set_defaults(run=cmd_power)
    summary = commands.add_parser("summary", help="gather every report's verdicts in SUMMARY.md")
    summary.add_argument("--reports", default="reports")
    summary.set_defaults(run=cmd_summary)

    data = commands.add_parser("data", help="datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    prepare = data_commands.add_parser("prepare", help="provision datasets into torchvision layout")
    prepare.add_argument("names", nargs="+")
    prepare.add_argument("--data-dir", default=None)
    prepare.add_argument("--download", action="store_true", help="allow torchvision downloads")
    prepare.set_defaults(run=cmd_data_prepare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a bad input exits 2 and a read of something that is not there exits 1,
    each with one line on stderr naming what was wrong."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # a usage error (2, one line) or --help (0)
        return stop.code if isinstance(stop.code, int) else 0
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except SpecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (FileNotFoundError, KeyError, LookupError, ValueError) as err:
        # str() of a KeyError is its repr: show the message itself
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 1
