"""Load test: N concurrent websocket streams replaying fixture clips against `assistant serve`.

    python -m lab.bench.loadtest --url ws://127.0.0.1:8765/ws --streams 1 2 4 --out docs/loadtest_cpu.json
    python -m lab.bench.loadtest --streams 1 2       # starts the real pipeline in-process on port 0

Each stream: `start` (language given), the clip's 16-bit PCM in 100 ms frames paced at
`--speed` x real time, then `stop`. Final latency = time of the `final` event - time `stop`
was sent: what a push-to-talk user waits after releasing the button (end of speech), the
server's VAD endpointing, batching, first pass, rescoring, parsing and answer included.
Streams start staggered by a random 0-1 s so that finals overlap as they would in a store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lab.bench.first_pass import FIXTURES, load_fixtures
from lab.report import machine_info, percentiles
from lab.serving import ServerThread

log = logging.getLogger(__name__)
FRAME_MS = 100


@dataclass
class StreamResult:
    """One stream: final_latency_s (stop -> final), the final's text and server timings."""

    file: str
    final_latency_s: float
    text: str
    timings_ms: dict
    events: int


async def one_stream(url: str, row: dict, speed: float, delay_s: float) -> StreamResult:
    """Replay one fixture clip over a websocket (the `assistant replay` client); return its
    final latency after the clip's end in real time."""
    from asr.audio import float32_to_pcm16
    from assistant.commands.replay import file_frames, stream_session

    await asyncio.sleep(delay_s)
    first_frame: list[float] = []

    async def frames():
        async for frame in file_frames(float32_to_pcm16(row["audio"]), 16000, FRAME_MS, speed):
            first_frame[:1] = first_frame[:1] or [time.perf_counter()]
            yield frame

    session = await stream_session(url, frames(), language=row["language"], timeout_s=120)
    for error in session.errors:
        log.warning("server error: %s", error)
    finals = [
        (at, e) for e, at in zip(session.events, session.times, strict=True) if e["type"] == "final"
    ]
    if not finals or not first_frame:
        raise RuntimeError(f"no final for {row['file']}")
    arrived, final = finals[0]
    speech_end = first_frame[0] + len(row["audio"]) / 16000 / speed
    # A final that came before the clip's end (VAD endpoint on trailing silence) waited 0.
    return StreamResult(
        row["file"],
        max(0.0, arrived - speech_end),
        final.get("text", ""),
        final.get("timings_ms", {}),
        len(session.events),
    )


async def run_load(
    url: str, rows: list[dict], streams: int, speed: float, seed: int = 0, cycle: bool = False
) -> dict:
    """`streams` concurrent streams, one clip each: fixtures drawn with a seeded RNG, or taken
    in turn (`cycle`: stream i plays rows[i % len(rows)], so each stream's clip is known)."""
    rng = random.Random(seed)
    picks = [
        rows[i % len(rows)] if cycle else rows[rng.randrange(len(rows))] for i in range(streams)
    ]
    results = await asyncio.gather(
        *(one_stream(url, row, speed, rng.uniform(0, 1.0)) for row in picks)
    )
    lat = [r.final_latency_s for r in results]
    stages = {
        key: statistics.median(r.timings_ms.get(key, 0.0) for r in results)
        for key in ("wait", "asr", "rescore", "nlu", "answer", "total")
    }
    q = percentiles(lat)
    return {
        "streams": streams,
        "final_p50_ms": 1000 * q["p50"],
        "final_p95_ms": 1000 * q["p95"],
        "final_max_ms": 1000 * max(lat),
        "server_stage_ms_p50": stages,
        "mean_clip_s": float(np.mean([len(r["audio"]) / 16000 for r in picks])),
        "real_time": 1000 * q["p95"]
        < 1000 * float(np.mean([len(r["audio"]) / 16000 for r in picks])),
        "results": [asdict(r) for r in results],
    }


def _in_process_server() -> ServerThread:
    """The real pipeline (load_pipeline) behind an AssistantServer on port 0, in a thread."""
    from assistant.pipeline import load_pipeline
    from assistant.server import AssistantServer, ServerConfig

    server = AssistantServer(ServerConfig(port=0, max_sessions=256), pipeline=load_pipeline())
    return ServerThread(server).__enter__()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url", default=None, help="ws://HOST:PORT/ws (default: in-process server)"
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--speed", type=float, default=1.0, help="x real time")
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rows = load_fixtures(args.fixtures)
    thread = None
    url = args.url
    if url is None:
        thread = _in_process_server()
        url = thread.url
    report = {"machine": machine_info(), "url": url, "speed": args.speed, "runs": []}
    try:
        for n in args.streams:
            load_start = os.getloadavg()[0]
            run = asyncio.run(run_load(url, rows, n, args.speed))
            run["load_avg_1min"] = [load_start, os.getloadavg()[0]]  # shared-machine context
            log.info(
                "%d streams: p50 %.0f ms, p95 %.0f ms", n, run["final_p50_ms"], run["final_p95_ms"]
            )
            report["runs"].append(run)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    finally:
        if thread is not None:
            thread.__exit__(None, None, None)
    for run in report["runs"]:
        print(
            f"{run['streams']:3d} streams  p50 {run['final_p50_ms']:7.0f} ms  p95 {run['final_p95_ms']:7.0f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
