"""Where a benchmark's table goes: stdout, and the Markdown file ``--out`` names."""

from __future__ import annotations

from pathlib import Path


def emit(table: str, out: str | None) -> None:
    print(table)
    if out:
        Path(out).write_text(table + "\n")
