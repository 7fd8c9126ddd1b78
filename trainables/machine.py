"""One line that says what a trial ran on: host, CPU model and cores, memory, GPU."""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

import torch


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return f", {pages * size / 2**30:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        return ""


@functools.cache
def describe_machine() -> str:
    """``host: Intel(R) Xeon(R) Processor, 2 cores, 24 GiB`` (plus the GPU, if any)."""
    line = f"{platform.node()}: {_cpu_model()}, {os.cpu_count()} cores{_memory_gib()}"
    if torch.cuda.is_available():
        line += f", {torch.cuda.get_device_name(0)}"
    return line
