"""Where the time of one final goes, inside the server: stage by stage, from the end of speech.

    python -m lab.bench.final_profile [--utterances 6] [--pipeline window_s=1] \
        [--streaming speculate_ms=128 speech_pad_ms=128] [--out build/final_profile.json]

Starts the real server in-process (the pipeline `assistant serve` loads, with PipelineConfig
and StreamingConfig overrides), replays fixture queries as one websocket client in real time
(lab.bench.latency's sessions), and times every call of the stages it wraps, on whatever
thread runs it: the first pass (`asr`: log-mel + encoder, language detection, greedy draft,
phrase selection, beam search), rescoring, parsing, the answer (linking, database queries) and
the partial decodes. Each span is charged to the final whose end of speech precedes it; times
are exclusive (a span's children are subtracted), in ms:

  start      end of speech -> the final's first-pass decode starts (VAD + `speculate_ms`
             + the client's frame length)
  asr, encode, detect, draft (the greedy draft decode), select, generate (the beam search),
             rescore, parse, answer, link, db
  done       end of speech -> the answer is ready
  final      end of speech -> the final arrives (lab.bench.latency's figure)
  held       final - done: the result waits for the endpoint (silence, or the verdict)
  partials   partial decodes that ran between the end of speech and the final (started
             before it or after), and `overlap` the ms the final's first pass ran beside them

Wall times on a shared machine are inflated by whatever else runs; compare settings as ratios
measured in the same run (run it twice, or interleave), and say the load.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from lab import REPO
from lab.report import machine_info

sys.path.insert(0, str(REPO / "tests"))  # ws_harness: the fixture helpers

COLUMNS = (
    "start", "asr", "encode", "detect", "draft", "select", "generate", "rescore", "parse",
    "answer", "link", "db", "done", "final", "held", "partials", "overlap",
)  # fmt: skip


class Spans:
    """Timed calls of wrapped methods: (name, thread, start, end, exclusive seconds)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, float, float, float]] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def wrap(self, obj, attr: str, name: str, under: dict[str, str] | None = None) -> None:
        """Time `obj.attr` (an instance's method) under `name`, or under `under[parent]` when
        it is called inside a wrapped `parent` (the draft's generate call is the draft's);
        nothing when `obj` has no such method."""
        method = getattr(obj, attr, None)
        if obj is None or method is None:
            return

        def timed(*args, **kwargs):
            stack = self._local.__dict__.setdefault("stack", [])
            label = (under or {}).get(stack[-1][1], name) if stack else name
            stack.append([0.0, label])  # time spent in wrapped children, name
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                ended = time.perf_counter()
                children = stack.pop()[0]
                if stack:
                    stack[-1][0] += ended - started
                with self._lock:
                    self.spans.append(
                        (label, threading.current_thread().name, started, ended,
                         ended - started - children)
                    )  # fmt: skip

        setattr(obj, attr, timed)


def instrument(pipeline, spans: Spans) -> None:
    t = pipeline.transcriber
    spans.wrap(t, "nbest_batch", "asr")
    spans.wrap(t, "_encode", "encode")
    spans.wrap(t, "_detect", "detect")
    spans.wrap(t, "_drafts", "draft")
    spans.wrap(t, "_run", "generate", under={"draft": "draft"})
    spans.wrap(pipeline.phrases, "select", "select")
    spans.wrap(pipeline.reranker, "rank", "rescore")
    spans.wrap(pipeline.parser, "parse_batch", "parse")
    spans.wrap(pipeline.parser, "parse", "parse")
    answerer = pipeline.answerer
    spans.wrap(answerer, "answer", "answer")
    linker = getattr(answerer, "linker", None) or getattr(
        getattr(answerer, "fallback", None), "linker", None
    )
    spans.wrap(linker, "link_joint", "link")
    spans.wrap(linker, "link", "link")
    spans.wrap(pipeline.inventory, "_rows", "db")
    spans.wrap(pipeline, "partial", "partial")


def per_final(finals: list[dict], spans: Spans) -> list[dict]:
    """Each final's stage times (ms, exclusive) from the spans between its end of speech and
    the next final's end of speech."""
    out = []
    ends = [f["speech_end_wall"] for f in finals] + [float("inf")]
    for k, final in enumerate(finals):
        t0, t1 = ends[k], min(ends[k + 1], final["arrived"])
        mine = [s for s in spans.spans if t0 <= s[2] < t1]
        row: dict = defaultdict(float)
        for name, _thread, _start, _end, exclusive in mine:
            if name != "partial":
                row[name] += 1000 * exclusive
        asr = [s for s in mine if s[0] == "asr"]
        # partial decodes still running at the end of speech, or started before the final
        partials = [s for s in spans.spans if s[0] == "partial" and s[3] > t0 and s[2] < t1]
        # a partial's decode is itself a first pass (nbest_batch) on its thread: not the final's
        inside = lambda s, partials=partials: any(  # noqa: E731
            p[1] == s[1] and p[2] <= s[2] and s[3] <= p[3] for p in partials
        )
        for span in mine:
            if span[0] != "partial" and inside(span):
                row[span[0]] -= 1000 * span[4]
        finals_asr = [s for s in asr if not inside(s)]
        row["asr"] = sum(1000 * (s[3] - s[2]) for s in finals_asr)
        answers = [s for s in mine if s[0] == "answer"]
        last = max([s[3] for s in answers] or [s[3] for s in finals_asr] or [t0])
        row["start"] = 1000 * (finals_asr[0][2] - t0) if finals_asr else None
        row["done"] = 1000 * (last - t0)
        row["final"] = 1000 * (final["arrived"] - t0)
        row["held"] = row["final"] - row["done"]
        row["partials"] = len(partials)
        row["overlap"] = sum(  # the final's first pass shared the cores with partials this long
            1000 * max(0.0, min(a[3], p[3]) - max(a[2], p[2])) for a in finals_asr for p in partials
        )
        row["decodes"] = len(finals_asr)
        row["text"], row["speculative"] = final["text"], final["speculative"]
        row["silence_ms"], row["complete"] = final["silence_ms"], final["complete"]
        out.append({k: (round(v, 1) if isinstance(v, float) else v) for k, v in row.items()})
    return out


async def replay(url: str, audio, speed: float = 1.0) -> list[dict]:
    from asr.audio import float32_to_pcm16
    from assistant.commands.replay import file_frames, stream_session

    began = time.perf_counter()
    log = await stream_session(
        url, file_frames(float32_to_pcm16(audio), 16_000, 100, speed), timeout_s=600
    )
    return [
        {
            "speech_end_wall": began + event["end_s"] / speed,
            "arrived": arrived,
            "text": event["text"],
            "speculative": event.get("speculative"),
            "silence_ms": event.get("silence_ms"),
            "complete": event.get("complete"),
            "timings_ms": event["timings_ms"],
        }
        for event, arrived in zip(log.events, log.times, strict=True)
        if event["type"] == "final"
    ]


def overrides(items: list[str], cls) -> dict:
    """FIELD=VALUE strings -> {field: value} typed as the dataclass' defaults."""
    out = {}
    defaults = cls.__dataclass_fields__
    for item in items:
        name, value = item.split("=", 1)
        default = defaults[name].default
        if isinstance(default, bool):
            out[name] = value.lower() in ("1", "true", "yes")
        else:
            out[name] = type(default)(value) if default is not None else value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--utterances", type=int, default=6, help="queries (half EN, half ES)")
    ap.add_argument("--gap-s", type=float, default=3.0, help="silence between queries (s)")
    ap.add_argument("--pipeline", nargs="*", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--streaming", nargs="*", default=[], metavar="FIELD=VALUE")
    ap.add_argument("--out", type=Path, default=None, help="JSON of every final's row")
    args = ap.parse_args(argv)

    from ws_harness import fixture_rows

    from asr.streaming import StreamingConfig
    from assistant.pipeline import PipelineConfig, load_pipeline
    from assistant.server import AssistantServer, ServerConfig
    from lab.bench.latency import session_audio
    from lab.serving import ServerThread

    config = dataclasses.replace(PipelineConfig(), **overrides(args.pipeline, PipelineConfig))
    streaming = dataclasses.replace(StreamingConfig(), **overrides(args.streaming, StreamingConfig))
    rows = list(fixture_rows().values())
    en = [r for r in rows if r["language"] == "en"]
    es = [r for r in rows if r["language"] == "es"]
    k = args.utterances // 2
    order = [q for pair in zip(en[:k], es[: args.utterances - k], strict=False) for q in pair]
    load_before = os.getloadavg()
    pipeline = load_pipeline(config)
    spans = Spans()
    instrument(pipeline, spans)
    server = AssistantServer(ServerConfig(port=0, streaming=streaming), pipeline=pipeline)
    with ServerThread(server) as st:
        finals = asyncio.run(replay(st.url, session_audio(order, args.gap_s)))
    rows_out = per_final(finals, spans)
    medians = {
        c: round(statistics.median(v), 1)
        for c in COLUMNS
        if (v := [r[c] for r in rows_out if r.get(c) is not None])
    }
    report = {
        "command": "python -m lab.bench.final_profile " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(gpu="none used (CPU int8)"),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "pipeline": dataclasses.asdict(config),
        "streaming": dataclasses.asdict(streaming),
        "median_ms": medians,
        "finals": rows_out,
    }  # fmt: skip
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(f"load {report['load_average_before']} -> {report['load_average_after']}")
    print("| " + " | ".join(("text",) + COLUMNS) + " |")
    for r in rows_out:
        print("| " + " | ".join([r["text"][:32]] + [str(r.get(c, "")) for c in COLUMNS]) + " |")
    print("| median | " + " | ".join(str(medians.get(c, "")) for c in COLUMNS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
