"""How ``study reproduce`` shows plans: the per-trial table of ``--plan`` and the ``--list``.

``--plan --format json`` prints :func:`study.plan.make_plan`'s dict as it is:
``{"recipe", "scale", "machine", "assumptions", "trials": [...], "parts": [...],
"totals": {...}}``, one object per trial in ``trials``.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from .recipes import Recipe, list_recipes, load_recipe, out_of_scope
from .trials import count_trainings

WIDTH = 100  # of the out-of-scope reasons in --list
COLUMNS = (
    ("part", "part"),
    ("arm", "arm"),
    ("seed", "seed"),
    ("device_kind", "device"),
    ("params", "params"),
    ("epochs", "epochs"),
    ("steps_per_epoch", "steps/epoch"),
    ("flops_per_step", "GFLOP/step"),
    ("seconds_per_step", "s/step"),
    ("estimated_hours", "hours"),
)


def _count(n: int) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= limit:
            return f"{n / limit:.3g}{suffix}"
    return str(n)


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if key == "params":
        return _count(value)
    if key == "flops_per_step":
        return _number(value / 1e9)
    if key in ("seconds_per_step", "estimated_hours"):
        return _number(value)
    return str(value)


def _number(value: float) -> str:
    """Three significant digits, whole numbers from 1000 on (no exponent in a table)."""
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The trials as aligned columns, a row's note (if any) at its end."""
    cells = [[title for _, title in COLUMNS]]
    cells += [[_cell(key, row.get(key)) for key, _ in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    notes = [""] + [row.get("note") or "" for row in rows]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
        + (f"  {note}" if note else "")
        for line, note in zip(cells, notes)
    ]


def _hours(part: dict[str, Any]) -> str:
    spent = []
    if part["cpu_hours"]:
        spent.append(f"{_number(part['cpu_hours'])} CPU-hours")
    if part["gpu_hours"]:
        spent.append(f"{_number(part['gpu_hours'])} GPU-hours")
    return ", ".join(spent) or "0 hours"


def render_table(plan: dict[str, Any]) -> str:
    """The plan for a terminal: every trial, then per part and in total, then the assumptions."""
    totals = plan["totals"]
    count = totals["trainings"] if totals["estimated"] else "an unknown number of"
    lines = [
        f"{plan['recipe']} at {plan['scale']} scale: {count} trainings "
        f"(meant for: {plan['machine']})",
        "",
        *table(plan["trials"]),
        "",
        "parts (run one after another):",
    ]
    width = max(len(p["part"]) for p in plan["parts"])
    for part in plan["parts"]:
        if not part["estimated"]:
            lines.append(f"  {part['part'].ljust(width)}  not estimated")
            continue
        lines.append(
            f"  {part['part'].ljust(width)}  {part['trainings']} trainings on "
            f"{part['device_kind'].upper()}, {part['concurrency']} at a time: {_hours(part)}, "
            f"{_number(part['wall_hours'])} h wall-clock"
        )
    unknown = "" if totals["estimated"] else " (some runs not estimated)"
    lines += [
        f"total: {totals['trainings']} trainings, {_number(totals['cpu_hours'])} CPU-hours, "
        f"{_number(totals['gpu_hours'])} GPU-hours, {_number(totals['wall_hours'])} h "
        f"wall-clock{unknown}",
        "",
    ]
    kinds = {p["device_kind"] for p in plan["parts"] if p["estimated"]}
    lines += [plan["assumptions"][kind] + "." for kind in ("cpu", "gpu") if kind in kinds]
    lines.append(
        "Wall-clock: a CPU part runs min(max_concurrent, cores here / cpus_per_trial) trials "
        "at a time, a GPU part max_concurrent; evaluation passes are included."
    )
    return "\n".join(lines)


def render_json(plan: dict[str, Any]) -> str:
    return json.dumps(plan, indent=1, default=str)


def _counts(recipe: Recipe) -> str:
    shown = []
    for scale in recipe.scales:
        count = count_trainings(recipe, scale)
        shown.append(f"{scale} {'?' if count is None else count}")
    return ", ".join(shown)


def list_lines() -> list[str]:
    """``study reproduce --list``: a header, one line per recipe (its name first), a blank
    line, then the papers' artifacts no recipe reproduces, and why."""
    lines = [f"{'recipe':12s} {'paper artifact':15s} trainings per scale (costs: --plan)"]
    for name in list_recipes():
        recipe = load_recipe(name)
        source = "—" if recipe.paper == "none" else recipe.paper.upper()
        lines.append(f"{name:12s} {source:4s} {recipe.artifact:10s} {_counts(recipe)}")
    skipped = out_of_scope()
    if skipped:
        lines += ["", "Out of scope (paper artifacts not reproduced, and why):"]
        for entry in skipped:
            lead = f"  {entry.paper.upper():4s} {entry.artifact:10s} "
            lines += textwrap.wrap(
                entry.reason,
                WIDTH,
                initial_indent=lead,
                subsequent_indent=" " * len(lead),
                break_on_hyphens=False,
            )
    return lines
