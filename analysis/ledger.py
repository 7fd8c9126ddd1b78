"""A report's run ledger: the trial runs, metric histories and JSON artifacts it was rendered
from, committed beside it (``runs/trials.parquet``, ``histories.parquet``, ``artifacts.parquet``).

A tracking store can be lost (a new machine, a new checkout) while the committed report stays;
the ledger keeps the report's evidence with it, run by run, so the report re-renders without
the store and a reproduction continues from it, training only what the ledger lacks. A run is
known by its trial identity, ``CONFIG_ID:SEED``: the store's run wins over the ledger's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

LEDGER_DIR = "runs"
TRIALS_FILE = "trials.parquet"
HISTORIES_FILE = "histories.parquet"
ARTIFACTS_FILE = "artifacts.parquet"
COMPRESSION = "zstd"  # committed files: LRD toy's ledger 2.1 MB, 3.7 MB with snappy
FROM_LEDGER = "from_ledger"
PART = "sweep.part"
FINGERPRINT = "sweep.fingerprint"
HISTORY_COLUMNS = ["run_id", "metric", "step", "value"]
ARTIFACT_COLUMNS = ["run_id", "name", "json"]

History = Callable[[list[str], str], pd.DataFrame]
Artifact = Callable[[str, str], Any]


def trial_key(config_id: str, seed: int) -> str:
    """A trial's identity, ``CONFIG_ID:SEED``: what its run is tagged with, and how a spec's
    ``skip`` names it."""
    return f"{config_id}:{int(seed)}"


def trial_keys(runs: pd.DataFrame, status: str | None = "FINISHED") -> set[str]:
    """The :func:`trial_key` of each run (only those with ``status``, unless ``None``)."""
    if runs.empty or "config_id" not in runs or "seed" not in runs:
        return set()
    chosen = runs if status is None else runs[runs["status"] == status]
    chosen = chosen.dropna(subset=["config_id", "seed"])
    return {trial_key(str(c), s) for c, s in zip(chosen["config_id"], chosen["seed"])}


@dataclass
class Ledger:
    """The finished runs a report was rendered from, and every history it read of them."""

    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    histories: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=HISTORY_COLUMNS))
    artifacts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ARTIFACT_COLUMNS))

    def finished(self, part: str | None = None) -> set[str]:
        """The trial identities the ledger holds as finished (of one recipe part, if given)."""
        runs = self.runs
        if part is not None and PART in runs:
            runs = runs[runs[PART] == part]
        return trial_keys(runs)

    def missing_from(self, store_runs: pd.DataFrame, parts: Iterable[str] | None = None):
        """The ledger's finished runs the store lacks (by trial identity), marked
        ``from_ledger``. Of a recipe's sweeps, only runs of ``parts``, and of a part whose
        sweep the store holds, only runs of a sweep with that sweep's fingerprint: a run of a
        changed recipe is no evidence for today's."""
        if self.runs.empty:
            return self.runs
        have = trial_keys(store_runs, status=None)
        finished = self.runs[self.runs["status"] == "FINISHED"]
        keys = map(trial_key, finished["config_id"].astype(str), finished["seed"])
        chosen = pd.Series([k not in have for k in keys], index=finished.index)
        if parts is not None and PART in finished:
            chosen &= finished[PART].isin(list(parts))
            current = _fingerprints(store_runs)
            prints = finished.get(FINGERPRINT, pd.Series(None, index=finished.index))
            for part, fingerprint in current.items():
                chosen &= (finished[PART] != part) | (prints == fingerprint)
        return finished[chosen].assign(**{FROM_LEDGER: True})

    def history(self, run_ids: list[str], metric: str) -> pd.DataFrame:
        rows = self.histories
        rows = rows[(rows["metric"] == metric) & rows["run_id"].isin(run_ids)]
        return rows[["run_id", "step", "value"]].reset_index(drop=True)

    def artifact(self, run_id: str, name: str) -> Any:
        rows = self.artifacts
        found = rows[(rows["run_id"] == run_id) & (rows["name"] == name)]
        if found.empty:
            raise KeyError(f"the run ledger holds no artifact {name!r} of run {run_id}")
        return json.loads(found["json"].iloc[-1])


def _fingerprints(store_runs: pd.DataFrame) -> dict[str, str]:
    """Each part's sweep fingerprint, as the store's current runs carry it."""
    if store_runs.empty or PART not in store_runs or FINGERPRINT not in store_runs:
        return {}
    known = store_runs.dropna(subset=[PART, FINGERPRINT])
    return dict(zip(known[PART], known[FINGERPRINT]))


def read(report_dir: Path) -> Ledger:
    """The ledger committed beside a report (empty when there is none)."""
    where = Path(report_dir) / LEDGER_DIR
    if not (where / TRIALS_FILE).is_file():
        return Ledger()
    empty = Ledger()
    histories, artifacts = where / HISTORIES_FILE, where / ARTIFACTS_FILE
    return Ledger(
        pd.read_parquet(where / TRIALS_FILE),
        pd.read_parquet(histories) if histories.is_file() else empty.histories,
        pd.read_parquet(artifacts) if artifacts.is_file() else empty.artifacts,
    )


def write(
    report_dir: Path,
    runs: pd.DataFrame,
    histories: Iterable[pd.DataFrame],
    artifacts: dict[tuple[str, str], Any] | None = None,
) -> list[Path]:
    """Write the ledger of a report: its runs, and the histories and artifacts it read."""
    where = Path(report_dir) / LEDGER_DIR
    where.mkdir(parents=True, exist_ok=True)
    frames = [h for h in histories if h is not None and not h.empty]
    read_back = (
        pd.concat(frames, ignore_index=True)
        .drop_duplicates(["run_id", "metric", "step"], keep="last")
        .sort_values(["run_id", "metric", "step"], ignore_index=True)
        if frames
        else Ledger().histories
    )
    runs.drop(columns=[FROM_LEDGER], errors="ignore").to_parquet(
        where / TRIALS_FILE, index=False, compression=COMPRESSION
    )
    read_back[HISTORY_COLUMNS].to_parquet(
        where / HISTORIES_FILE, index=False, compression=COMPRESSION
    )
    rows = [
        {"run_id": run_id, "name": name, "json": json.dumps(value)}
        for (run_id, name), value in sorted((artifacts or {}).items())
    ]
    pd.DataFrame(rows, columns=ARTIFACT_COLUMNS).to_parquet(
        where / ARTIFACTS_FILE, index=False, compression=COMPRESSION
    )
    return [where / TRIALS_FILE, where / HISTORIES_FILE, where / ARTIFACTS_FILE]


class RecordingHistory:
    """A report's reader of histories (called) and JSON artifacts (:meth:`artifact`) over the
    store and a ledger, remembering all it served, so the next ledger holds what the report
    read."""

    def __init__(
        self,
        from_store: History,
        ledger: Ledger,
        ledger_runs: set[str],
        artifact_from_store: Artifact | None = None,
    ) -> None:
        self.from_store = from_store
        self.artifact_from_store = artifact_from_store
        self.ledger = ledger
        self.ledger_runs = ledger_runs
        self.served: list[pd.DataFrame] = []
        self.artifacts: dict[tuple[str, str], Any] = {}

    def artifact(self, run_id: str, name: str) -> Any:
        """Run ``run_id``'s JSON artifact ``name`` (as a script logged it)."""
        if run_id in self.ledger_runs or self.artifact_from_store is None:
            value = self.ledger.artifact(run_id, name)
        else:
            value = self.artifact_from_store(run_id, name)
        self.artifacts[(run_id, name)] = value
        return value

    def __call__(self, run_ids: list[str], metric: str) -> pd.DataFrame:
        stored = [r for r in run_ids if r not in self.ledger_runs]
        kept = [r for r in run_ids if r in self.ledger_runs]
        parts = [self.from_store(stored, metric)] if stored else []
        if kept:
            parts.append(self.ledger.history(kept, metric))
        parts = [p for p in parts if p is not None and not p.empty]
        rows = (
            pd.concat(parts, ignore_index=True)
            if parts
            else pd.DataFrame({"run_id": [], "step": [], "value": []})
        )
        self.served.append(rows.assign(metric=metric))
        return rows
