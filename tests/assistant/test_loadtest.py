"""The load test runs against a live server at N=2 streams (CI size).

The server holds the real CTranslate2 first pass (CPU) and an energy VAD; later stages are
left out to keep CI short. Latency figures are not asserted (shared CI cores); the shape,
that every stream got its own final, and that the text is the clip's are.
"""

from __future__ import annotations

import asyncio

from ws_harness import ServerThread

from bench.first_pass import load_fixtures
from bench.loadtest import run_load


def test_two_concurrent_streams_get_finals(whisper_transcriber):
    from asr.vad import EnergyVad
    from assistant.pipeline import Pipeline, PipelineConfig
    from assistant.server import AssistantServer, ServerConfig

    rows = [
        r
        for r in load_fixtures()
        if r["file"].endswith(("en_01_tide_pods.wav", "es_01_huggies.wav"))
    ]
    pipeline = Pipeline(whisper_transcriber, config=PipelineConfig(nbest=3, partial_beam=1))
    server = AssistantServer(ServerConfig(port=0), pipeline=pipeline, vad_factory=EnergyVad)
    with ServerThread(server) as st:
        report = asyncio.run(run_load(st.url, rows, streams=2, speed=4.0, seed=1))
    assert report["streams"] == 2 and len(report["results"]) == 2
    assert report["final_p95_ms"] >= report["final_p50_ms"] >= 0
    for result in report["results"]:
        assert result["text"].strip()
        assert "asr" in result["timings_ms"] and result["timings_ms"]["asr"] > 0
    texts = " ".join(r["text"].lower() for r in report["results"])
    assert "tide" in texts or "pañales" in texts or "huggies" in texts
