"""What every lab report shares: the machine it ran on, percentiles, Markdown tables, writing
JSON + Markdown.

Reports are JSON; Markdown is rendered from the JSON (`render_table` for the tables) and the
analysis prose lives in docs/, not in code.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

# ---- the machine ------------------------------------------------------------------------------


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


def memory_gb() -> float:
    """Physical memory in GiB (0.0 where the platform does not say)."""
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return 0.0


def gpu_name() -> str:
    """`nvidia-smi`'s name and memory of each GPU ("NVIDIA H100 80GB HBM3, 81559 MiB"), "" where
    there is none."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        return subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    return ""


def machine_info(**extra) -> dict:
    """The machine a report ran on: CPU model, cores, memory, GPU ("" for none), the 1-minute load
    average (results on a shared machine need it), Python; `extra` adds or overrides fields (the
    threads a benchmark used, "gpu": "none used" for a CPU-only run)."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": memory_gb(),
        "gpu": gpu_name(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        **extra,
    }


def describe_machine(info: dict | str) -> str:
    """One line for a report's text: "CPU, 2 cores, 7.8 GB, no GPU, load average 1.3". Older
    reports stored the line itself; it comes back unchanged."""
    if isinstance(info, str):
        return info
    parts = [str(info.get("cpu", "unknown CPU")), f"{info.get('cores')} cores"]
    if info.get("memory_gb"):
        parts.append(f"{info['memory_gb']} GB")
    if "threads" in info:
        parts.append(f"{info['threads']} threads used")
    parts.append(f"GPU {info['gpu']}" if info.get("gpu") else "no GPU")
    if "load_avg_1m" in info:
        parts.append(f"load average {info['load_avg_1m']} at the start")
    return ", ".join(parts)


# ---- figures ----------------------------------------------------------------------------------


def percentiles(
    values: Iterable[float | None], qs: Sequence[float] = (50, 95), ndigits: int | None = None
) -> dict[str, float]:
    """{"p50": ..., "p95": ...} of `values` (None skipped); NaN for each where there are none;
    rounded to `ndigits` when given. Keys drop a trailing ".0" (q 99.9 -> "p99.9")."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    out = {}
    for q in qs:
        value = float(np.percentile(arr, q)) if arr.size else math.nan
        if ndigits is not None and arr.size:
            value = round(value, ndigits)
        out[f"p{q:g}"] = value
    return out


# ---- writing ----------------------------------------------------------------------------------


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A Markdown table: one header row, then `rows` (cells as they are; None is empty). `align`
    has one letter per column, "l" or "r" (numbers); missing letters mean "l"."""
    align = align.ljust(len(headers), "l")
    if len(align) != len(headers):
        raise ValueError(f"align {align!r} does not match {len(headers)} columns")
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---:" if a == "r" else "---" for a in align) + " |",
    ]
    for row in rows:
        cells = ["" if v is None else str(v) for v in row]
        if len(cells) != len(headers):
            raise ValueError(f"row {cells} has {len(cells)} cells for {len(headers)} columns")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


TABLE = re.compile(r"<!-- table: (?P<name>[\w.:-]+) -->\n.*?<!-- /table -->", re.DOTALL)


def fill_tables(doc: str, tables: dict[str, str]) -> str:
    """Put each rendered table into `doc` between its markers, `<!-- table: NAME -->` and
    `<!-- /table -->` (invisible in rendered Markdown), and leave the prose around them as it is:
    the analysis is written in docs/, the figures come from the report. A marker whose table the
    report lacks says so; a table without a marker goes at the end under its name."""

    def block(name: str) -> str:
        body = tables.get(name, "_(not in this report)_\n")
        return f"<!-- table: {name} -->\n\n{body}\n<!-- /table -->"

    placed = {m["name"] for m in TABLE.finditer(doc)}
    doc = TABLE.sub(lambda m: block(m["name"]), doc)
    for name in tables:
        if name not in placed:
            doc = doc.rstrip("\n") + f"\n\n## {name}\n\n{block(name)}\n"
    return doc


def write_json(report: dict, out: Path) -> None:
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")


def write_report(
    report: dict, render: Callable[[dict], str], out: Path | None, markdown: Path | None
) -> str:
    """Write the report as JSON (`out`) and its tables as Markdown (`markdown`); returns the
    Markdown."""
    if out:
        write_json(report, out)
    text = render(report)
    if markdown:
        markdown.write_text(text)
    return text
