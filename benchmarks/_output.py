"""Where a benchmark's table goes (stdout, and the Markdown file ``--out`` names), and the
machine's load it records beside it."""

from __future__ import annotations

import os
from pathlib import Path


def emit(table: str, out: str | None) -> None:
    print(table)
    if out:
        Path(out).write_text(table + "\n")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as a table's header gives them."""
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())
