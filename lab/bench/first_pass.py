"""First-pass benchmark: latency and real-time factor at batch 1 and batched, per backend,
and a concurrent-streams simulation of the server's final batching on one model.

    python -m lab.bench.first_pass --backend ctranslate2 --device cpu --out docs/gpu_benchmark_cpu.json
    python -m lab.bench.first_pass --backend torch --device cuda --dtype float16 bfloat16 \
        --torch-model DIR --batching static continuous --out OUT.json   # on the GPU machine

Reads the committed fixtures (tests/fixtures, 16 kHz mono WAV) with the standard library, so
the GPU machine needs only torch, transformers and tokenizers. Every figure is wall-clock
time after one warm-up call; RTF = decode time / audio duration (lower is faster).

Streams simulation (--streams): N streams each speak a fixture clip, wait `think` seconds
(uniform 1-4 s), speak again; a final arrives when a clip ends. One worker serves finals as
the server's FinalBatcher does: it takes every final that has arrived (up to --max-batch),
after waiting --batch-wait-ms for more, and decodes them in one nbest_batch call
(`--batching static`); or, with `--batching continuous` (torch backend), each final is
submitted to an asr.torch_continuous.ContinuousDecoder when it arrives and joins the running
beam search at the next decoder step. Both modes replay the same arrivals. Final latency =
decode end - clip end (what the user waits after end of speech, first pass only).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import time
import wave
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
from lab import REPO  # noqa: E402
from lab.report import machine_info, percentiles  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"


def read_wav(path: Path) -> np.ndarray:
    """16-bit mono 16 kHz WAV -> float32 [-1, 1] (the fixtures' format; checked)."""
    with wave.open(str(path)) as handle:
        if (handle.getframerate(), handle.getnchannels(), handle.getsampwidth()) != (16000, 1, 2):
            raise ValueError(f"{path}: expected 16 kHz mono 16-bit PCM")
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def load_fixtures(root: Path = FIXTURES) -> list[dict]:
    rows = [
        json.loads(line)
        for line in (root / "fixtures.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    for row in rows:
        row["audio"] = read_wav(root / row["file"])
    return rows


def build(
    backend: str, device: str, dtype: str, nbest: int, torch_model: Path | None, widen: bool = True
):
    """The transcriber under test; `widen` toggles the wider-beam retries (widen_beam)."""
    if backend == "torch":
        from asr.torch_backend import TorchTranscriber, TorchTranscriberConfig

        return TorchTranscriber(
            TorchTranscriberConfig(
                model_dir=torch_model,
                device=device,
                dtype=dtype,
                nbest=nbest,
                batch_size=64,
                widen_beam=widen,
            )
        )
    from asr.transcriber import Transcriber, TranscriberConfig

    return Transcriber(TranscriberConfig(device=device, nbest=nbest, widen_beam=widen))


def bench_single(model, rows: list[dict]) -> dict:
    """Batch 1 over every fixture (language given): latency and RTF percentiles."""
    model.nbest(rows[0]["audio"], rows[0]["language"])  # warm-up
    lat, rtf, per_lang = [], [], {"en": [], "es": []}
    for row in rows:
        started = time.perf_counter()
        model.nbest(row["audio"], row["language"])
        seconds = time.perf_counter() - started
        lat.append(seconds)
        rtf.append(seconds / (len(row["audio"]) / 16000))
        per_lang[row["language"]].append(seconds)
    q = percentiles(lat)
    return {
        "clips": len(rows),
        "latency_p50_ms": 1000 * q["p50"],
        "latency_p95_ms": 1000 * q["p95"],
        "rtf_p50": percentiles(rtf, (50,))["p50"],
        "latency_p50_ms_en": 1000 * percentiles(per_lang["en"], (50,))["p50"],
        "latency_p50_ms_es": 1000 * percentiles(per_lang["es"], (50,))["p50"],
        "mean_audio_s": float(np.mean([len(r["audio"]) / 16000 for r in rows])),
    }


def bench_batched(model, rows: list[dict], sizes: list[int], repeats: int) -> list[dict]:
    """One nbest_batch call of B clips (fixtures cycled): wall time, RTF, clips per second."""
    out = []
    for size in sizes:
        batch = [rows[i % len(rows)] for i in range(size)]
        audios, langs = [r["audio"] for r in batch], [r["language"] for r in batch]
        # Warm up at this very batch size: new tensor shapes cost allocator/kernel set-up once.
        model.nbest_batch(audios, langs)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            model.nbest_batch(audios, langs)
            times.append(time.perf_counter() - started)
        wall = statistics.median(times)
        audio_s = sum(len(a) for a in audios) / 16000
        out.append(
            {
                "batch": size,
                "wall_ms": 1000 * wall,
                "rtf": wall / audio_s,
                "clips_per_s": size / wall,
                "audio_s_per_s": audio_s / wall,
            }
        )
        log.info("batch %d: %.0f ms", size, 1000 * wall)
    return out


def stream_arrivals(rows: list[dict], streams: int, duration_s: float, seed: int = 0):
    """[(end of speech time s, row)] of N streams, sorted; drawn up front (seeded), so that
    both batching modes see the very same finals."""
    rng = random.Random(seed)
    arrivals = []
    for _s in range(streams):
        t = rng.uniform(0, 4.0)
        while True:
            row = rows[rng.randrange(len(rows))]
            t += len(row["audio"]) / 16000
            if t > duration_s:
                break
            arrivals.append((t, row))
            t += rng.uniform(1.0, 4.0)
    arrivals.sort(key=lambda a: a[0])
    return arrivals


def _serve_static(model, arrivals, start: float, batch_wait_ms: float, max_batch: int):
    """The server's FinalBatcher policy: one nbest_batch call at a time over every final
    that has arrived. -> (decode end time of each final, finals per call)."""
    done, batches, i = [], [], 0
    while i < len(arrivals):
        now = time.perf_counter() - start
        if arrivals[i][0] > now:
            time.sleep(min(arrivals[i][0] - now, 0.05))
            continue
        time.sleep(batch_wait_ms / 1000)
        now = time.perf_counter() - start
        j = i
        while j < len(arrivals) and arrivals[j][0] <= now and j - i < max_batch:
            j += 1
        chunk = arrivals[i:j]
        model.nbest_batch([r["audio"] for _, r in chunk], [r["language"] for _, r in chunk])
        done.extend([time.perf_counter() - start] * len(chunk))
        batches.append(len(chunk))
        i = j
    return done, {
        "mean_batch": float(np.mean(batches)) if batches else 0.0,
        "max_batch_seen": max(batches, default=0),
        "batch_unit": "finals per nbest_batch call",
    }


def _serve_continuous(model, arrivals, start: float, max_batch: int):
    """Continuous batching (asr.torch_continuous): each final is submitted when it arrives
    and joins the running beam search at the next decoder step. -> (decode end times,
    utterances per decoder step)."""
    from asr.torch_continuous import ContinuousDecoder

    done = [float("nan")] * len(arrivals)
    futures = []
    with ContinuousDecoder(model, max_active=max_batch) as decoder:
        for i, (t, row) in enumerate(arrivals):
            wait = t - (time.perf_counter() - start)
            if wait > 0:
                time.sleep(wait)
            future = decoder.submit(row["audio"], row["language"])
            future.add_done_callback(
                lambda _f, i=i: done.__setitem__(i, time.perf_counter() - start)
            )
            futures.append(future)
        for future in futures:
            future.result()
        stats = decoder.stats
    return done, {
        "mean_batch": stats.mean_batch,
        "max_batch_seen": stats.max_batch,
        "batch_unit": "utterances per decoder step",
        "decoder_steps": stats.steps,
        "encoder_batches": stats.encoder_batches,
        "widened": stats.widened,
    }


def simulate_streams(
    model,
    rows: list[dict],
    streams: int,
    duration_s: float,
    batch_wait_ms: float,
    max_batch: int,
    seed: int = 0,
    batching: str = "static",
) -> dict:
    """Concurrent streams against one model (see module doc), served with static batching
    (the server's FinalBatcher policy) or continuous batching (torch backend only).

    The worker runs in real time on this thread; latency = decode end - end of speech.
    """
    arrivals = stream_arrivals(rows, streams, duration_s, seed)
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    if batching == "continuous":
        done, batch_stats = _serve_continuous(model, arrivals, start, max_batch)
    else:
        done, batch_stats = _serve_static(model, arrivals, start, batch_wait_ms, max_batch)
    wall = time.perf_counter() - start
    latencies = [end - t for end, (t, _) in zip(done, arrivals, strict=True)]
    audio = sum(len(r["audio"]) for _, r in arrivals) / 16000
    q = percentiles(latencies)
    return {
        "streams": streams,
        "batching": batching,
        "finals": len(latencies),
        "final_p50_ms": 1000 * q["p50"],
        "final_p95_ms": 1000 * q["p95"],
        "final_max_ms": 1000 * max(latencies, default=float("nan")),
        **batch_stats,
        "simulated_s": duration_s,
        "wall_s": wall,
        "kept_up": wall < duration_s + 2.0,
        "audio_s": audio,
        "load_avg_1min_start": load_start,
        "load_avg_1min_end": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("ctranslate2", "torch"), default="ctranslate2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", nargs="+", default=["auto"], help="torch dtypes to measure")
    parser.add_argument(
        "--widen-beam",
        nargs="+",
        choices=("on", "off"),
        default=["on"],
        help="measure with and/or without the wider-beam retries",
    )
    parser.add_argument("--torch-model", type=Path, default=None)
    parser.add_argument("--nbest", type=int, default=5)
    parser.add_argument(
        "--batch-sizes", type=int, nargs="*", default=[1, 4, 16, 64], help="none: skip"
    )
    parser.add_argument(
        "--no-single", action="store_true", help="skip the batch-1 pass over every fixture"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--streams", type=int, nargs="*", default=[1, 4, 16, 64])
    parser.add_argument("--stream-seconds", type=float, default=20.0)
    parser.add_argument(
        "--batching",
        nargs="+",
        choices=("static", "continuous"),
        default=["static"],
        help="how the streams simulation serves finals; both: compared in the same run "
        "(continuous: torch backend only)",
    )
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N fixtures")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if "continuous" in args.batching and args.backend != "torch":
        parser.error("--batching continuous needs --backend torch")
    if args.backend == "ctranslate2" and args.device == "cpu":
        try:
            import torch  # noqa: F401 - only so that torch's threads don't fight CTranslate2's

            torch.set_num_threads(1)
        except ImportError:
            pass
    rows = load_fixtures()
    if args.limit:
        rows = rows[: args.limit]
    results = {
        "machine": machine_info(),
        "command": "python -m lab.bench.first_pass "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "runs": [],
    }
    dtypes = (
        args.dtype if args.backend == "torch" else ["int8" if args.device == "cpu" else "float16"]
    )
    configs = [(dtype, widen) for widen in args.widen_beam for dtype in dtypes]
    for dtype, widen in configs:
        model = build(args.backend, args.device, dtype, args.nbest, args.torch_model, widen == "on")
        run = {
            "backend": args.backend,
            "device": args.device,
            "dtype": dtype,
            "nbest": args.nbest,
            "widen_beam": widen,
        }
        # Shared machines: the load average says how much of the CPU this run really had.
        run["load_avg_1min_start"] = os.getloadavg()[0]
        if args.no_single:  # warm-up: first calls and new batch shapes pay one-time costs
            model.nbest(rows[0]["audio"], rows[0]["language"])
            model.nbest_batch([r["audio"] for r in rows[:4]], [r["language"] for r in rows[:4]])
        else:
            run["single"] = bench_single(model, rows)
            log.info("%s %s widen %s single: %s", args.backend, dtype, widen, run["single"])
        run["batched"] = bench_batched(model, rows, args.batch_sizes, args.repeats)
        run["streams"] = []
        # Streams once per widening policy, with the first dtype (they take the longest);
        # both batching modes back to back on the same arrivals.
        for n in args.streams if dtype == dtypes[0] else []:
            for batching in args.batching:
                sim = simulate_streams(
                    model,
                    rows,
                    n,
                    args.stream_seconds,
                    args.batch_wait_ms,
                    args.max_batch,
                    batching=batching,
                )
                log.info("streams %d (%s): %s", n, batching, sim)
                run["streams"].append(sim)
        run["load_avg_1min_end"] = os.getloadavg()[0]
        results["runs"].append(run)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        # Written after each run so that partial results survive a timeout.
        args.out.write_text(json.dumps(results, indent=2))
        del model
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
