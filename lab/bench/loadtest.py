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

log = logging.getLogger(__name__)
FRAME_S = 0.1


@dataclass
class StreamResult:
    """One stream: final_latency_s (stop -> final), the final's text and server timings."""

    file: str
    final_latency_s: float
    text: str
    timings_ms: dict
    events: int


async def one_stream(url: str, row: dict, speed: float, delay_s: float) -> StreamResult:
    """Replay one fixture clip over a websocket; return its final latency."""
    from websockets.asyncio.client import connect

    await asyncio.sleep(delay_s)
    pcm = (np.clip(row["audio"], -1, 1) * 32767).astype("<i2").tobytes()
    step = int(FRAME_S * 16000) * 2
    async with connect(url, open_timeout=30, max_size=2**22) as ws:
        await ws.send(
            json.dumps({"type": "start", "sample_rate": 16000, "language": row["language"]})
        )
        ready = json.loads(await ws.recv())
        if ready.get("type") != "ready":
            raise RuntimeError(f"server answered {ready}")
        started = time.perf_counter()
        for i, offset in enumerate(range(0, len(pcm), step)):
            await ws.send(pcm[offset : offset + step])
            # Pace against the clock, not per frame, so send jitter does not accumulate.
            wait = started + (i + 1) * FRAME_S / speed - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        stopped = time.perf_counter()
        await ws.send(json.dumps({"type": "stop"}))
        final, events = None, 0
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), timeout=120))
            events += 1
            if event["type"] == "final" and final is None:
                final = (time.perf_counter(), event)
            if event["type"] == "error":
                log.warning("server error: %s", event)
            if event["type"] == "end":
                break
    if final is None:
        raise RuntimeError(f"no final for {row['file']}")
    # A final that came before stop (VAD endpoint on trailing silence) waited 0 after it.
    return StreamResult(
        row["file"],
        max(0.0, final[0] - stopped),
        final[1].get("text", ""),
        final[1].get("timings_ms", {}),
        events,
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


def _in_process_server():
    """The real pipeline (load_pipeline) behind an AssistantServer on port 0, in a thread."""
    import threading

    from assistant.pipeline import load_pipeline
    from assistant.server import AssistantServer, ServerConfig

    server = AssistantServer(ServerConfig(port=0, max_sessions=256), pipeline=load_pipeline())
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(300)
    return server, loop


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
    server = loop = None
    url = args.url
    if url is None:
        server, loop = _in_process_server()
        url = f"ws://127.0.0.1:{server.port}/ws"
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
        if server is not None:
            asyncio.run_coroutine_threadsafe(server.shutdown(), loop).result(60)
            loop.call_soon_threadsafe(loop.stop)
    for run in report["runs"]:
        print(
            f"{run['streams']:3d} streams  p50 {run['final_p50_ms']:7.0f} ms  p95 {run['final_p95_ms']:7.0f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
