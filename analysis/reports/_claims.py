"""Claims as a recipe declares them, checked when the recipe loads, and turned into drafts.

Every claim names its direction as the paper's text states it (``expect: better``, ``worse``
or ``equivalent``); a claim without one is refused, never defaulted. An ``equivalent`` claim
carries the margin it is tested against and the reason for that margin. A claim that another
recipe already counts (the same measurement) names it in ``counted_in``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..verdicts import Draft, Evidence, directional, equivalence, expected_sign
from ._common import Cell

Expect = Literal["better", "worse", "equivalent"]


class ClaimSpec(BaseModel):
    """One declared comparison: ``method`` against ``baseline`` (arm labels or values)."""

    model_config = ConfigDict(extra="forbid")

    method: str | float
    baseline: str | float
    expect: Expect
    claim: str | None = None
    margin: float | None = Field(None, gt=0)
    margin_reason: str | None = None
    counted_in: str | None = None
    where: dict[str, list[str]] = Field(default_factory=dict)
    unless: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _margin_with_equivalence(self) -> ClaimSpec:
        if self.expect == "equivalent" and (self.margin is None or not self.margin_reason):
            raise ValueError(
                "an `expect: equivalent` claim needs `margin` (> 0, in the report's unit) and "
                "`margin_reason` (why that margin, e.g. the paper's run-to-run std)"
            )
        if self.expect != "equivalent" and self.margin is not None:
            raise ValueError("`margin` belongs to `expect: equivalent` claims only")
        return self

    def applies(self, **scope: str | None) -> bool:
        """Whether this claim covers a slot, e.g. ``applies(group="Adam", row="...")``: every
        ``where`` scope holds and no ``unless`` scope does (a paper's stated exception)."""
        included = all(scope.get(k) in allowed for k, allowed in self.where.items())
        excluded = any(scope.get(k) in denied for k, denied in self.unless.items())
        return included and not excluded


def parse_claims(items: Any, where: str, model: type[ClaimSpec] | None = None) -> list[Any]:
    """Validate a recipe's claim list (as ``model``, a :class:`ClaimSpec` or a subclass of it);
    errors name the entry and what is allowed."""
    model = model or ClaimSpec
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValueError(f"{where}: a list of claims, got {type(items).__name__}")
    claims = []
    for i, item in enumerate(items):
        try:
            claims.append(model.model_validate(item))
        except ValidationError as err:
            name = (
                f"{item.get('method')} vs {item.get('baseline')}" if isinstance(item, dict) else ""
            )
            problems = "; ".join(_problem(e) for e in err.errors())
            raise ValueError(f"{where}[{i}] ({name}): {problems}") from None
    return claims


def _problem(error: Mapping[str, Any]) -> str:
    field = ".".join(str(p) for p in error["loc"]) or "claim"
    if field == "expect" and error["type"] == "missing":
        return (
            "expect is required: say `expect: better`, `worse` or `equivalent`, as the paper's "
            "text states the claim (no direction is assumed)"
        )
    return f"{field}: {error['msg'].removeprefix('Value error, ')}"


def relation(expect: str) -> str:
    return {"better": "better than", "worse": "worse than", "equivalent": "no different from"}[
        expect
    ]


def compare(
    spec: ClaimSpec,
    method: Cell,
    baseline: Cell,
    lower_is_better: bool,
    paper_effect: float | None,
    labels: tuple[str, str],
) -> Evidence:
    """The evidence for ``spec`` from two cells' per-seed values (failed seeds listed)."""
    failed = {labels[0]: method.failed_seeds, labels[1]: baseline.failed_seeds}
    if spec.expect == "equivalent":
        assert spec.margin is not None
        return equivalence(method.values, baseline.values, spec.margin, labels, failed)
    sign = expected_sign(spec.expect, lower_is_better)
    effect = paper_effect if paper_effect is not None and paper_effect * sign > 0 else None
    return directional(method.values, baseline.values, sign, effect, labels, failed)


def draft(
    spec: ClaimSpec,
    text: str,
    paper: str,
    method: Cell,
    baseline: Cell,
    evidence: Evidence,
    key: str,
) -> Draft:
    """A draft whose measured text shows both arms and the paired difference."""
    delta = f"Δ {evidence.estimate:+.2f}, n={evidence.n}" if evidence.n else "no seed finished both"
    measured = f"{method.text()} vs {baseline.text()} ({delta})"
    notes = ()
    if spec.expect == "equivalent":
        notes = (f"margin ±{spec.margin:g}: {spec.margin_reason}",)
    return Draft(text, paper, measured, evidence, key, spec.counted_in or "", notes)


def paper_text(
    spec: ClaimSpec, p_method: float | None, p_base: float | None, where: str | None
) -> str:
    """The paper's numbers for the claim, or its direction where it gives none."""
    if p_method is None or p_base is None:
        return f"{spec.method} {relation(spec.expect)} {spec.baseline} (the paper's text)"
    text = f"{p_method:g} vs {p_base:g} ({p_method - p_base:+.2f})"
    return text + (f" on {where}" if where else "")


def finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def scope_names(items: Sequence[ClaimSpec]) -> set[str]:
    return {k for spec in items for k in spec.where}
