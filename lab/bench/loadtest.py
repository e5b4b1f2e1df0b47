"""Load test: N concurrent websocket streams replaying fixture clips against `assistant serve`.

    python -m lab.bench.loadtest --url ws://127.0.0.1:8765/ws --streams 1 2 4 --out docs/loadtest_cpu.json
    python -m lab.bench.loadtest --streams 1 2       # starts the real pipeline in-process on port 0
    python -m lab.bench.loadtest --engine local ray --streams 1 2 4 8 --repeats 3 \
        --out docs/results/loadtest_engines_cpu.json --markdown docs/results/loadtest_engines_cpu.md

Each stream: `start` (language given), the clip's 16-bit PCM in 100 ms frames paced at
`--speed` x real time, then `stop`. Final latency = time of the `final` event - time `stop`
was sent: what a push-to-talk user waits after releasing the button (end of speech), the
server's VAD endpointing, batching, first pass, rescoring, parsing and answer included.
Streams start staggered by a random 0-1 s so that finals overlap as they would in a store.

`--engine local ray`: the same load, on the same machine, against the single-process server
(`assistant serve`) and then the Ray Serve deployment (`assistant serve --engine ray`, a local
Ray with the machine's CPUs), one after the other, never at once. `--interleave` starts both
first and gives each run to one engine and then the other (flipping the order every seed):
on a shared machine whose load drifts, the ratio between engines is then measured under the
same load; the report adds those ratios. `--stage-layout colocated split` runs the Ray engine
in each layout (assistant.engine.EngineConfig.stage_layout; with --interleave both in one
local Ray, as two Serve applications). `--repeats R` runs each
stream count R times (seeds 0..R-1) and pools the finals. A stream count is "real time" when
the p95 final latency is under the mean clip length (the server keeps up with speech);
`max_real_time_streams` is the highest count at which it and every lower count were.
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
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from assistant.engine import STAGE_LAYOUTS
from lab.bench.first_pass import FIXTURES, load_fixtures
from lab.report import machine_info, percentiles
from lab.serving import ServerThread

log = logging.getLogger(__name__)
FRAME_MS = 100
SETTLE_S = 1.0  # after a run: the last final's later stages and partials settle


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


def _in_process_server(pipeline_config=None) -> ServerThread:
    """The real pipeline (load_pipeline) behind an AssistantServer on port 0, in a thread."""
    from assistant.pipeline import load_pipeline
    from assistant.server import AssistantServer, ServerConfig

    server = AssistantServer(
        ServerConfig(port=0, max_sessions=256), pipeline=load_pipeline(pipeline_config)
    )
    return ServerThread(server).__enter__()


class _Engine:
    """A server of one engine for the load test: .url, and .close()."""

    def __init__(
        self,
        engine: str,
        cpu_threads: int = 0,
        first_pass_replicas: int = 1,
        stage_layout: str = "colocated",
        ray_cpus: int | None = None,
    ) -> None:
        from assistant.pipeline import PipelineConfig

        pipeline = PipelineConfig(cpu_threads=cpu_threads)
        self.name, self.settings = engine, {"cpu_threads": cpu_threads}
        if engine == "local":
            self._thread = _in_process_server(pipeline)
            self.url = self._thread.url
            self.describe = self._thread.server.pipeline.describe()
            return
        from assistant.engine import EngineConfig
        from assistant.ray_engine import RayEngine
        from assistant.server import ServerConfig

        config = EngineConfig(
            engine="ray",
            first_pass_replicas=first_pass_replicas,
            stage_layout=stage_layout,
            ray_cpus=ray_cpus,
        )
        self.settings.update(first_pass_replicas=first_pass_replicas, stage_layout=stage_layout)
        self._ray = RayEngine(
            config,
            ServerConfig(port=0, max_sessions=256),
            pipeline,
            log_to_driver=False,
            app=f"loadtest-{first_pass_replicas}-{stage_layout}",
        ).start()
        self.url = self._ray.url
        with urllib.request.urlopen(f"{self._ray.http_url}/healthz", timeout=10) as reply:
            self.describe = json.loads(reply.read()).get("stages")

    def close(self) -> None:
        if self.name == "local":
            self._thread.__exit__(None, None, None)
        else:
            self._ray.shutdown()


def run_repeated(url: str, rows: list[dict], streams: int, speed: float, repeats: int) -> dict:
    """`run_load` `repeats` times (seeds 0..repeats-1), the finals pooled."""
    runs = []
    for seed in range(repeats):
        runs.append(asyncio.run(run_load(url, rows, streams, speed, seed=seed)))
        time.sleep(SETTLE_S)
    return pool_runs(runs, streams)


def pool_runs(runs: list[dict], streams: int) -> dict:
    """Runs of `run_load` at one stream count (seeds 0..len-1) -> one row, the finals pooled."""
    results = [r for run in runs for r in run["results"]]
    lat = [r["final_latency_s"] for r in results]
    q = percentiles(lat)
    clip_s = float(np.mean([run["mean_clip_s"] for run in runs]))
    stages = {
        key: statistics.median(r["timings_ms"].get(key, 0.0) for r in results)
        for key in ("wait", "asr", "rescore", "nlu", "answer", "total")
    }
    return {
        "streams": streams,
        "repeats": len(runs),
        "finals": len(results),
        "final_p50_ms": 1000 * q["p50"],
        "final_p95_ms": 1000 * q["p95"],
        "final_max_ms": 1000 * max(lat),
        "server_stage_ms_p50": stages,
        "mean_clip_s": clip_s,
        "real_time": 1000 * q["p95"] < 1000 * clip_s,
        "empty_finals": sum(not r["text"].strip() for r in results),
        "results": results,
    }


def paired_ratio(runs: list[dict], base: list[dict]) -> float:
    """Median over seeds of (this engine's median final latency / the base engine's), the
    two run on the same seed: the same clips and start offsets, back to back."""
    ratios = [
        statistics.median(r["final_latency_s"] for r in a["results"])
        / max(1e-3, statistics.median(r["final_latency_s"] for r in b["results"]))
        for a, b in zip(runs, base, strict=True)
    ]
    return statistics.median(ratios)


def max_real_time(runs: list[dict]) -> int:
    """The highest stream count that stayed real time, with every lower count (0: none)."""
    best = 0
    for run in sorted(runs, key=lambda r: r["streams"]):
        if not run["real_time"]:
            break
        best = run["streams"]
    return best


def render(report: dict) -> str:
    """The Markdown of an engines report: command, machine, one row per engine and count."""
    from lab.report import describe_machine, render_table

    rows = []
    for engine in report["engines"]:
        for run in engine["runs"]:
            st = run["server_stage_ms_p50"]
            rows.append(
                (
                    engine["label"],
                    run["streams"],
                    run["finals"],
                    f"{run['final_p50_ms']:.0f}",
                    f"{run['final_p95_ms']:.0f}",
                    f"{st['asr']:.0f}",
                    f"{st['wait']:.0f}",
                    "yes" if run["real_time"] else "no",
                    f"{run['load_avg_1min'][0]:.2f} / {run['load_avg_1min'][1]:.2f}",
                )
            )
    table = render_table(
        (
            "engine",
            "streams",
            "finals",
            "p50 ms",
            "p95 ms",
            "asr p50 ms",
            "wait p50 ms",
            "real time",
            "load 1 min (start / end)",
        ),
        rows,
        "lrrrrrrll",
    )
    best = "\n".join(
        f"- {e['label']}: {e['max_real_time_streams']} stream(s) in real time "
        f"(p95 under the mean clip, {e['runs'][0]['mean_clip_s']:.1f} s)"
        for e in report["engines"]
    )
    ratios = ""
    if report.get("ratios"):
        ratios = "\n" + render_table(
            ("engine / " + report["ratios"][0]["base"], "streams", "p50", "p95", "paired median"),
            [
                (
                    r["engine"],
                    r["streams"],
                    f"{r['p50_ratio']:.2f}",
                    f"{r['p95_ratio']:.2f}",
                    f"{r['paired_median_ratio']:.2f}",
                )
                for r in report["ratios"]
            ],
            "lrrrr",
        )
        ratios = (
            "\nRatios (interleaved: each seed's load on every engine back to back; paired "
            "median: the median over seeds of the two engines' median latency on that seed):"
            "\n" + ratios
        )
    return (
        f"# Load test across engines\n\nCommand: `{report['command']}`\n\n"
        f"Machine: {describe_machine(report['machine'])}\n\n"
        f"Final latency = `final` event - `stop` sent (end of speech), per stream; clips at "
        f"{report['speed']:g} x real time.\n\n{table}\n{best}\n{ratios}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url", default=None, help="ws://HOST:PORT/ws (default: in-process server)"
    )
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--speed", type=float, default=1.0, help="x real time")
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--engine",
        nargs="+",
        choices=("local", "ray"),
        default=None,
        help="start these engines in turn on this machine (instead of --url / one in-process)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per stream count (pooled)")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="--engine: start every engine first, then run each load on each engine in turn "
        "(ratios between engines on a shared machine)",
    )
    parser.add_argument("--cpu-threads", type=int, default=0, help="CTranslate2 threads")
    parser.add_argument(
        "--first-pass-replicas", type=int, nargs="+", default=[1], help="ray: Whisper replicas"
    )
    parser.add_argument(
        "--stage-layout",
        nargs="+",
        choices=STAGE_LAYOUTS,
        default=[STAGE_LAYOUTS[0]],
        help="ray: where rescoring and NLU + answers run (assistant serve --stage-layout)",
    )
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rows = load_fixtures(args.fixtures)
    if args.engine:
        return _engines(args, rows, argv)
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


def _engines(args, rows: list[dict], argv: list[str] | None) -> int:
    """--engine: each engine (and Ray first-pass replica count) in turn, the same load; with
    --interleave all of them up at once and every run taken by each in turn."""
    import sys

    from lab.report import write_report

    command = "python -m lab.bench.loadtest " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"command": command, "machine": machine_info(), "speed": args.speed, "engines": []}
    report["interleaved"] = bool(args.interleave)
    plan = [
        (name, k, layout)
        for name in args.engine
        for k in (args.first_pass_replicas if name == "ray" else [1])
        for layout in (args.stage_layout if name == "ray" else ["colocated"])
    ]

    def save() -> None:
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            write_report(report, render, args.out, args.markdown)

    if args.interleave:
        _interleaved(args, rows, plan, report, save)
    else:
        for name, replicas, layout in plan:
            engine = _Engine(name, args.cpu_threads, replicas, layout)
            entry = _entry(engine, replicas)
            report["engines"].append(entry)
            try:
                asyncio.run(run_load(engine.url, rows, 1, args.speed, seed=99))  # warm-up
                for n in args.streams:
                    load_start = os.getloadavg()[0]
                    run = run_repeated(engine.url, rows, n, args.speed, args.repeats)
                    _add_run(entry, run, load_start)
                    save()
            finally:
                engine.close()
    text = write_report(report, render, args.out, args.markdown)
    print(text)
    return 0


def _entry(engine: _Engine, replicas: int) -> dict:
    layout = engine.settings.get("stage_layout", "colocated")
    split = ", split stages" if layout == "split" else ""
    label = (
        engine.name if engine.name == "local" else f"ray ({replicas} first-pass replica(s){split})"
    )
    return {
        "engine": engine.name,
        "label": label,
        "settings": engine.settings,
        "stages": engine.describe,
        "runs": [],
    }


def _add_run(entry: dict, run: dict, load_start: float) -> None:
    run["load_avg_1min"] = [load_start, os.getloadavg()[0]]  # shared-machine context
    entry["runs"].append(run)
    entry["max_real_time_streams"] = max_real_time(entry["runs"])
    log.info(
        "%s, %d streams: p50 %.0f ms, p95 %.0f ms",
        entry["label"],
        run["streams"],
        run["final_p50_ms"],
        run["final_p95_ms"],
    )


def _interleaved(args, rows: list[dict], plan: list, report: dict, save) -> None:
    """Every engine started first; then, per stream count and seed, each engine runs the
    same load back to back (the order flipped every seed), so that a shared machine's
    changing load falls on all of them alike. The idle engines stay up meanwhile (an idle
    local Ray takes about a tenth of a core: lab.bench.ray_hops)."""
    engines = []
    # several Ray engines share one local Ray: logical CPUs for all of their replicas (each
    # engine's fit the machine; they take their loads in turn)
    rays = sum(name == "ray" for name, _, _ in plan)
    ray_cpus = (os.cpu_count() or 2) * rays if rays > 1 else None
    try:
        for name, replicas, layout in plan:
            engines.append(_Engine(name, args.cpu_threads, replicas, layout, ray_cpus))
            report["engines"].append(_entry(engines[-1], replicas))
        for engine in engines:
            asyncio.run(run_load(engine.url, rows, 1, args.speed, seed=99))  # warm-up
        report["ratios"] = []
        for n in args.streams:
            load_start = os.getloadavg()[0]
            runs: list[list[dict]] = [[] for _ in engines]
            for seed in range(args.repeats):
                order = list(range(len(engines)))
                for i in order if seed % 2 == 0 else order[::-1]:
                    runs[i].append(asyncio.run(run_load(engines[i].url, rows, n, args.speed, seed)))
                    time.sleep(SETTLE_S)
            for entry, engine_runs in zip(report["engines"], runs, strict=True):
                _add_run(entry, pool_runs(engine_runs, n), load_start)
            base = report["engines"][0]["runs"][-1]
            for entry, engine_runs in list(zip(report["engines"], runs, strict=True))[1:]:
                run = entry["runs"][-1]
                report["ratios"].append(
                    {
                        "streams": n,
                        "engine": entry["label"],
                        "base": report["engines"][0]["label"],
                        "p50_ratio": run["final_p50_ms"] / base["final_p50_ms"],
                        "p95_ratio": run["final_p95_ms"] / base["final_p95_ms"],
                        "paired_median_ratio": paired_ratio(engine_runs, runs[0]),
                    }
                )
            save()
    finally:
        for engine in engines:
            engine.close()


if __name__ == "__main__":
    raise SystemExit(main())
