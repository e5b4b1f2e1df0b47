"""Server metrics in the Prometheus text exposition format (version 0.0.4), written by hand.

Counters, one gauge and fixed-bucket histograms are all the server needs; keeping them here
avoids a dependency and a global registry (each server instance owns its Metrics).
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

# Seconds; covers a 10 ms NLU call up to a 10 s final decode on a busy 2-core CPU.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # last one is +Inf
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1


class Metrics:
    """Thread-safe: observations come from the event loop and from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sessions_total = 0
        self.sessions_active = 0
        self.utterances_total = 0
        self.partials_total = 0
        self.errors: dict[str, int] = defaultdict(int)
        self.stage_latency: dict[str, Histogram] = {}
        self.batch_size = Histogram(BATCH_BUCKETS)

    def session_opened(self) -> None:
        with self._lock:
            self.sessions_total += 1
            self.sessions_active += 1

    def session_closed(self) -> None:
        with self._lock:
            self.sessions_active -= 1

    def utterance(self, timings_ms: dict[str, float]) -> None:
        with self._lock:
            self.utterances_total += 1
            for stage, ms in timings_ms.items():
                hist = self.stage_latency.setdefault(stage, Histogram(LATENCY_BUCKETS))
                hist.observe(ms / 1000.0)

    def partial(self) -> None:
        with self._lock:
            self.partials_total += 1

    def error(self, code: str) -> None:
        with self._lock:
            self.errors[code] += 1

    def batch(self, size: int) -> None:
        with self._lock:
            self.batch_size.observe(size)

    def render(self) -> str:
        """The /metrics body."""
        with self._lock:
            lines = [
                "# HELP assistant_sessions_total Websocket sessions opened.",
                "# TYPE assistant_sessions_total counter",
                f"assistant_sessions_total {self.sessions_total}",
                "# HELP assistant_sessions_active Websocket sessions open now.",
                "# TYPE assistant_sessions_active gauge",
                f"assistant_sessions_active {self.sessions_active}",
                "# HELP assistant_utterances_total Utterances answered with a final event.",
                "# TYPE assistant_utterances_total counter",
                f"assistant_utterances_total {self.utterances_total}",
                "# HELP assistant_partials_total Partial events sent.",
                "# TYPE assistant_partials_total counter",
                f"assistant_partials_total {self.partials_total}",
                "# HELP assistant_errors_total Error events sent, by code.",
                "# TYPE assistant_errors_total counter",
            ]
            lines += [
                f'assistant_errors_total{{code="{c}"}} {n}' for c, n in sorted(self.errors.items())
            ]
            lines += [
                "# HELP assistant_stage_latency_seconds Per-utterance latency of each stage.",
                "# TYPE assistant_stage_latency_seconds histogram",
            ]
            for stage, hist in sorted(self.stage_latency.items()):
                lines += _histogram_lines(
                    "assistant_stage_latency_seconds", hist, f'stage="{stage}"'
                )
            lines += [
                "# HELP assistant_final_batch_size Utterances decoded together in one batch.",
                "# TYPE assistant_final_batch_size histogram",
            ]
            lines += _histogram_lines("assistant_final_batch_size", self.batch_size, "")
        return "\n".join(lines) + "\n"


def _histogram_lines(name: str, hist: Histogram, labels: str) -> list[str]:
    sep = "," if labels else ""
    out, cumulative = [], 0
    for bound, count in zip(hist.buckets, hist.counts, strict=False):
        cumulative += count
        out.append(f'{name}_bucket{{{labels}{sep}le="{bound:g}"}} {cumulative}')
    out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {hist.n}')
    suffix = f"{{{labels}}}" if labels else ""
    out.append(f"{name}_sum{suffix} {hist.total:.6f}")
    out.append(f"{name}_count{suffix} {hist.n}")
    return out
