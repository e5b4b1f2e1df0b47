#!/usr/bin/env python
"""Latency of the streaming server: end of speech -> final event, and each stage, p50/p95.

Starts the real server in-process (port 0, the same pipeline `assistant serve` loads), then
replays fixture queries as websocket clients in real time: one stream, then N concurrent
streams, each a session of English and Spanish queries separated by silence. For every
utterance it records:

  end_of_speech_to_final_ms  wall time from the moment the last speech sample was spoken
                             (the VAD's end of speech, in stream time, on the replay's
                             clock) to the arrival of the final; includes the client's
                             framing (frames of --chunk-ms, each sent once its last sample
                             is captured, as a microphone sends them), the endpoint silence,
                             queueing, batching and all stages
  server stages              timings_ms of the final: wait (batching queue), asr, rescore,
                             nlu, answer, total

  false cut-offs            finals beyond one per query sent (a query ended before its
                             last word gives two), as a share of the queries

The settings before issue 14 (lab.bench.stream_parity.BEFORE: fixed 500 ms endpoint, no
speculation), the first speculative defaults (`speculate160`: speculation and pad at 160 ms)
and the current defaults (`after`: speculative finals at 128 ms, adaptive endpointing; and
`after100`: the same with the 100 ms frames the demo page sent before) are measured in the same run, one after the other on the same loaded pipeline (`--settings` picks
some of them). The pipeline's first-pass settings are recorded with them.

Usage:  python -m lab.bench.latency [--streams 1 4] [--utterances 6] [--out docs/latency]
Writes OUT.json (every measurement) and OUT.md (tables). Say where it ran: the machine line
is filled in from /proc/cpuinfo and the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lab import REPO  # noqa: E402
from lab.report import machine_info, percentiles  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))  # ws_harness: the server thread and fixture helpers

SR = 16_000
# Streaming settings measured, as changes to the defaults ("before": stream_parity.BEFORE),
# and the client's frame length where it is not --chunk-ms (`after100`: the current defaults
# with the 100 ms frames the page sent before).
SETTINGS = {
    "before": {},
    "speculate160": {"speculate_ms": 160, "speech_pad_ms": 160},
    "after100": {"chunk_ms": 100},
    "after": {},
}
STAGES = ("end_of_speech_to_final", "wait", "asr", "rescore", "nlu", "answer", "total")


def session_audio(rows: list[dict], gap_s: float) -> np.ndarray:
    from ws_harness import fixture_audio

    gap = np.zeros(int(gap_s * SR), dtype=np.float32)
    parts = [gap[: SR // 2]]
    for row in rows:
        parts += [fixture_audio(Path(row["file"]).stem), gap]
    return np.concatenate(parts)


async def one_stream(url: str, audio: np.ndarray, speed: float, chunk_ms: int) -> list[dict]:
    from asr.audio import float32_to_pcm16
    from assistant.commands.replay import file_frames, stream_session

    began = time.perf_counter()
    log = await stream_session(
        url, file_frames(float32_to_pcm16(audio), SR, chunk_ms, speed), timeout_s=600
    )
    out = []
    for event, arrived in zip(log.events, log.times, strict=True):
        if event["type"] == "error":
            out.append({"error": event.get("code")})
        if event["type"] != "final":
            continue
        speech_end_wall = began + event["end_s"] / speed
        row = {k: event["timings_ms"].get(k) for k in STAGES[1:]}
        row["end_of_speech_to_final"] = (arrived - speech_end_wall) * 1000.0
        row["language"], row["text"] = event["language"], event["text"]
        row["speculative"], row["silence_ms"] = event.get("speculative"), event.get("silence_ms")
        out.append(row)
    return out


def reference_final_ms(pipeline, rows: dict, repeats: int = 3) -> float:
    """Median cost of one final (batch of 1, all stages) on this machine right now, without
    streaming: the floor the streamed figures compare against."""
    from ws_harness import FIXTURES

    from asr.audio import decode_audio
    from assistant.pipeline import FinalRequest

    row = next(iter(rows.values()))
    request = FinalRequest(decode_audio(FIXTURES / row["file"]), row["language"], "1")
    pipeline.finals([request])  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        pipeline.finals([request])
        times.append((time.perf_counter() - started) * 1000.0)
    return round(float(np.median(times)), 1)


def stage_percentiles(values: list[float | None]) -> dict[str, float]:
    """p50 / p95 (ms, one decimal) of one stage over the finals that report it, and their count."""
    return {**percentiles(values, ndigits=1), "n": sum(v is not None for v in values)}


def main() -> int:
    from assistant.commands.replay import LIVE_FRAME_MS

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4], help="concurrency levels")
    ap.add_argument(
        "--utterances", type=int, default=6, help="queries per stream (half EN, half ES)"
    )
    ap.add_argument("--speed", type=float, default=1.0, help="times real time (1: live)")
    ap.add_argument("--gap-s", type=float, default=3.0, help="silence between queries (s)")
    ap.add_argument("--no-partials", action="store_true", help="finals only")
    ap.add_argument(
        "--chunk-ms",
        type=int,
        default=LIVE_FRAME_MS,
        help="client frame (default %(default)s ms: the page's), each sent once captured",
    )
    ap.add_argument(
        "--max-batch", type=int, default=None, help="server --max-batch (default: by device)"
    )
    ap.add_argument(
        "--settings",
        nargs="+",
        choices=list(SETTINGS),
        default=list(SETTINGS),
        help="streaming settings to measure, in this order",
    )
    ap.add_argument("--out", default=str(REPO / "docs" / "latency"), help="OUT.json and OUT.md")
    args = ap.parse_args()

    from ws_harness import fixture_rows

    from asr.streaming import StreamingConfig
    from assistant.pipeline import load_pipeline
    from assistant.server import ServerConfig

    rows = fixture_rows()
    en = [r for r in rows.values() if r["language"] == "en"]
    es = [r for r in rows.values() if r["language"] == "es"]
    load_before = os.getloadavg()
    pipeline = load_pipeline()
    reference_ms = reference_final_ms(pipeline, rows)
    import dataclasses

    from lab.bench.stream_parity import BEFORE

    after = StreamingConfig(partials=not args.no_partials)
    results: dict[str, dict] = {}
    changes = {**SETTINGS, "before": BEFORE}
    for name in args.settings:
        change = dict(changes[name])
        chunk_ms = change.pop("chunk_ms", args.chunk_ms)
        streaming = dataclasses.replace(after, **change)
        config = ServerConfig(port=0, streaming=streaming, max_batch=args.max_batch)
        results.update(measure(name, config, pipeline, en, es, args, chunk_ms))
        max_batch = results.pop("_max_batch")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    report = {
        "command": "python -m lab.bench.latency " + " ".join(sys.argv[1:]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": machine_info(gpu="none used (CPU int8)"),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "niceness": os.nice(0),
        "pipeline": pipeline.describe(),
        "reference_final_ms": reference_ms,
        "settings": {
            "speed": args.speed,
            "chunk_ms": args.chunk_ms,
            "gap_s": args.gap_s,
            "partials": not args.no_partials,
            "streaming_before": BEFORE,
            "streaming_speculate160": SETTINGS["speculate160"],
            "streaming_after": dataclasses.asdict(after),
            "first_pass": {
                k: getattr(pipeline.config, k)
                for k in ("nbest", "window_s", "widen_beam", "partial_beam", "phrases", "adapter")
            },
            "batch_wait_ms": ServerConfig().batch_wait_ms,
            "max_batch": max_batch,
            "nbest": pipeline.config.nbest,
        },
        "results": results,
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    page = out.with_suffix(".md")
    old = page.read_text(encoding="utf-8") if page.is_file() else ""
    page.write_text(keep_prose(old, markdown(report)), encoding="utf-8")
    print(markdown(report))
    return 0


KEPT = re.compile(r"<!-- kept -->\n.*?<!-- /kept -->\n?", re.DOTALL)


def keep_prose(old: str, new: str) -> str:
    """The new tables followed by the hand-written sections of the old page (each between
    `<!-- kept -->` and `<!-- /kept -->`): a rerun refreshes the figures, not the analysis."""
    kept = [m.group(0).rstrip("\n") + "\n" for m in KEPT.finditer(old)]
    return new.rstrip("\n") + "\n" + "".join("\n" + k for k in kept)


def measure(name: str, config, pipeline, en: list, es: list, args, chunk_ms: int) -> dict:
    """One server with `config`: every concurrency level of args.streams -> {"NAME/N": ...}."""
    from assistant.server import AssistantServer
    from lab.serving import ServerThread

    results: dict = {}
    with ServerThread(AssistantServer(config, pipeline=pipeline)) as st:
        results["_max_batch"] = st.server._batcher.max_batch
        for n in args.streams:
            sessions = []
            for s in range(n):  # each stream its own queries: EN and ES interleaved
                k = args.utterances // 2
                picks = [en[(s * k + i) % len(en)] for i in range(k)]
                picks += [es[(s * k + i) % len(es)] for i in range(args.utterances - k)]
                order = [q for pair in zip(picks[:k], picks[k:], strict=False) for q in pair]
                sessions.append(session_audio(order, args.gap_s))
            print(f"{name}: {n} stream(s), {args.utterances} queries each", file=sys.stderr)

            async def run_all(sessions=sessions):
                return await asyncio.gather(
                    *(one_stream(st.url, a, args.speed, chunk_ms) for a in sessions)
                )

            started = time.perf_counter()
            per_stream = asyncio.run(run_all())
            finals = [r for stream in per_stream for r in stream if "error" not in r]
            errors = [r["error"] for stream in per_stream for r in stream if "error" in r]
            queries = n * args.utterances
            extra = sum(
                max(0, len([r for r in x if "error" not in r]) - args.utterances)
                for x in per_stream
            )
            results[f"{name}/{n}"] = {
                "settings": name,
                "chunk_ms": chunk_ms,
                "streams": n,
                "queries": queries,
                "utterances": len(finals),
                "false_cut_offs": round(extra / queries, 4),
                "speculative": sum(bool(r.get("speculative")) for r in finals),
                "errors": errors,
                "wall_s": round(time.perf_counter() - started, 1),
                "stages_ms": {
                    stage: stage_percentiles([r.get(stage) for r in finals]) for stage in STAGES
                },
                "finals": finals,
            }
    return results


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Streaming latency",
        "",
        f"Measured by `{report['command']}` on {report['date']} (commit {report['commit']}).",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['gpu']}. "
        f"Load average (1/5/15 min) before {report['load_average_before']}, after {report['load_average_after']}, "
        f"niceness {report['niceness']}: a load above the core count means other jobs shared the "
        "cores, which inflates every figure below.",
        "",
        f"Pipeline: {report['pipeline']}. Settings: {report['settings']}.",
        "",
        f"Reference: one final computed alone (batch of 1, all stages, no streaming) took "
        f"{report['reference_final_ms']} ms (median of 3) on this machine during this run. "
        "Streams replay queries back to back, so a final that arrives while another batch "
        "runs waits for it (`wait`); with several streams on 2 cores the finals queue up "
        "whenever speech arrives faster than the CPU decodes it.",
        "",
        "Each stream is one websocket session replaying fixture queries (English and Spanish, "
        "tests/fixtures) in real time with silence between them, in frames sent as a microphone "
        "sends them (each once its last sample is captured). `end of speech -> final` runs "
        "from the moment the last speech sample was spoken to the final's arrival, so it "
        "includes the client's framing and the endpoint silence; the other rows are the "
        "server's own stage timings (`wait` is the batching queue).",
        "",
    ]
    for _key, res in report["results"].items():
        lines += [
            f"## {res['settings']}: {res['streams']} concurrent stream(s), "
            f"{res.get('chunk_ms', 100)} ms frames: {res['queries']} queries, "
            f"{res['utterances']} finals ({res['speculative']} speculative), false cut-offs "
            f"{res['false_cut_offs']:.1%}, errors {res['errors'] or 'none'}",
            "",
            "| stage | p50 ms | p95 ms | n |",
            "| --- | ---: | ---: | ---: |",
        ]
        for stage, p in res["stages_ms"].items():
            name = "end of speech -> final" if stage == "end_of_speech_to_final" else stage
            lines.append(f"| {name} | {p['p50']} | {p['p95']} | {p['n']} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
