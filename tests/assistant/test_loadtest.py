"""The load test runs against a live server at N=2 streams (CI size).

The server holds the real CTranslate2 first pass (CPU) and an energy VAD; later stages are
left out to keep CI short. What the load test is for is asserted: every stream gets its own
final (not the other stream's), with timings, within a bound. Latency figures are not
asserted (shared CI cores), and neither is any word the first pass hears: int8 kernels differ
between machines, and "tide pods" / "tight pods" are close readings.
"""

from __future__ import annotations

import asyncio

import pytest

from lab.bench.first_pass import load_fixtures
from lab.bench.loadtest import run_load
from lab.serving import ServerThread
from lab.wer import wer

CLIPS = ("en_01_tide_pods.wav", "es_01_huggies.wav")
FINAL_BOUND_MS = 120_000  # no hang: one_stream's own receive timeout


def test_two_concurrent_streams_get_their_own_finals(whisper_transcriber):
    from asr.vad import EnergyVad
    from assistant.pipeline import Pipeline, PipelineConfig
    from assistant.server import AssistantServer, ServerConfig

    rows = sorted(
        (r for r in load_fixtures() if r["file"].endswith(CLIPS)), key=lambda r: r["file"]
    )
    assert len(rows) == 2
    pipeline = Pipeline(whisper_transcriber, config=PipelineConfig(nbest=3, partial_beam=1))
    server = AssistantServer(ServerConfig(port=0), pipeline=pipeline, vad_factory=EnergyVad)
    with ServerThread(server) as st:
        report = asyncio.run(run_load(st.url, rows, streams=2, speed=4.0, seed=1, cycle=True))
    assert report["streams"] == 2 and len(report["results"]) == 2
    assert FINAL_BOUND_MS > report["final_max_ms"] >= report["final_p95_ms"]
    assert report["final_p95_ms"] >= report["final_p50_ms"] >= 0
    by_file = {r["file"]: r for r in rows}
    results = report["results"]
    assert sorted(r["file"] for r in results) == sorted(by_file)  # one final per stream
    for result in results:
        assert result["text"].strip()
        assert result["timings_ms"]["asr"] > 0
        own = by_file[result["file"]]
        (other,) = (r for f, r in by_file.items() if f != result["file"])
        # Its own clip's words, not the other stream's: an English and a Spanish clip share
        # no words, so any reading of its own clip is nearer to its own reference.
        near_own = wer([own["text"]], [result["text"]], own["language"])
        near_other = wer([other["text"]], [result["text"]], other["language"])
        assert near_own < near_other, (result["file"], result["text"])


def _run(latencies: list[float]) -> dict:
    return {
        "mean_clip_s": 3.0,
        "results": [
            {"final_latency_s": s, "text": "x", "timings_ms": {"asr": 1.0}} for s in latencies
        ],
    }


def test_interleaved_runs_pool_and_pair_by_seed():
    from lab.bench.loadtest import paired_ratio, pool_runs, render

    local = [_run([0.2, 0.4]), _run([0.3])]
    ray = [_run([0.3, 0.5]), _run([0.3])]
    pooled = pool_runs(ray, 2)
    assert (pooled["finals"], pooled["repeats"], pooled["real_time"]) == (3, 2, True)
    assert paired_ratio(ray, local) == pytest.approx((0.4 / 0.3 + 1.0) / 2)  # two seeds
    run = {**pool_runs(local, 2), "load_avg_1min": [1.0, 2.0]}
    report = {
        "command": "c",
        "machine": "m",
        "speed": 1.0,
        "engines": [
            {"label": "local", "runs": [run], "max_real_time_streams": 2},
            {"label": "ray", "runs": [run], "max_real_time_streams": 2},
        ],
        "ratios": [
            {
                "streams": 2,
                "engine": "ray",
                "base": "local",
                "p50_ratio": 1.1,
                "p95_ratio": 0.9,
                "paired_median_ratio": 1.05,
            }
        ],
    }
    page = render(report)
    assert "| ray | 2 | 1.10 | 0.90 | 1.05 |" in page
