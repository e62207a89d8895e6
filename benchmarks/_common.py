"""What the benchmark scripts share: the name of the CPU their figures were measured on."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model(default: str = "CPU") -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``, else ``default``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or default
