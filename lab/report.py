"""What every benchmark report carries: the machine it ran on, and writing JSON + Markdown."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("Intel(R) Xeon(R) Processor"), else the
    platform's processor or machine name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """CPU model, cores, 1-minute load average (results on a shared machine need it), Python."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
    }


def write_report(
    report: dict, render: Callable[[dict], str], out: Path | None, markdown: Path | None
) -> str:
    """Write the report as JSON (`out`) and its tables as Markdown (`markdown`); returns the
    Markdown."""
    if out:
        out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    text = render(report)
    if markdown:
        markdown.write_text(text)
    return text
