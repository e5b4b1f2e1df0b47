"""Batch-1 parse latency of runtime student directories, measured interleaved in one process.

    python -m lab.nlu.speed nlu/models/student build/nlu/student_heard_big --out speed.json

Each round times one `parse_batch` call of every model on the same query (2 ONNX Runtime
threads, as lab.nlu.evaluate), so load from other jobs falls on all of them alike; the
report gives p50/p95/min per model and each model's p50 as a ratio to the first one's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lab.report import machine_info, percentiles

THREADS = 2


def interleaved(model_dirs: list[str], texts: list[str], rounds: int) -> dict:
    """model dir -> {p50_ms, p95_ms, min_ms, p50_ratio}, one call of each per round."""
    from nlu.runtime import OnnxParser

    parsers = {d: OnnxParser(d, "int8", THREADS) for d in model_dirs}
    times: dict[str, list[float]] = {d: [] for d in model_dirs}
    for i in range(rounds + 10):
        text = [texts[i % len(texts)]]
        for d, parser in parsers.items():
            t0 = time.perf_counter()
            parser.parse_batch(text)
            if i >= 10:  # warm-up calls
                times[d].append((time.perf_counter() - t0) * 1000)
    out = {}
    for d, ts in times.items():
        q = percentiles(ts, ndigits=3)
        out[d] = {"p50_ms": q["p50"], "p95_ms": q["p95"], "min_ms": round(min(ts), 3)}
    first = out[model_dirs[0]]["p50_ms"]
    for row in out.values():
        row["p50_ratio"] = round(row["p50_ms"] / first, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lab.nlu.speed", description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="runtime student directories (model.int8.onnx)")
    ap.add_argument("--texts", default="data/corpus_sample/test_sample.jsonl")
    ap.add_argument("--rounds", type=int, default=600)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    rows = [json.loads(x) for x in Path(args.texts).read_text(encoding="utf-8").splitlines()]
    report = {
        "command": "python -m lab.nlu.speed " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": machine_info(),
        "rounds": args.rounds,
        "models": interleaved(args.models, [r["text"] for r in rows], args.rounds),
    }
    text = json.dumps(report, indent=1, ensure_ascii=False)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
