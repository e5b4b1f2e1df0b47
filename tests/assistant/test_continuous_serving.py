"""Continuous batching in the server: FinalBatcher in-flight batches, and a real server whose
first pass is a (tiny, random-weight) PyTorch Whisper wrapped in a ContinuousDecoder."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from websockets.sync.client import connect
from ws_harness import recv_json, recv_until, silence_pcm, tone_pcm

from assistant.batcher import FinalBatcher
from lab.serving import ServerThread


def _blocking_batcher(max_in_flight: int):
    """A batcher whose batches block until `release` is set; `started` counts them."""
    release, started, lock = threading.Event(), [], threading.Lock()

    def run_batch(requests):
        with lock:
            started.append(len(requests))
        release.wait(10)
        return [f"result {r}" for r in requests]

    batcher = FinalBatcher(run_batch, max_wait_s=0.0, max_batch=1, max_in_flight=max_in_flight)
    return batcher, release, started


@pytest.mark.parametrize("in_flight", [1, 3])
def test_final_batcher_runs_up_to_max_in_flight_batches_at_once(in_flight):
    async def scenario():
        batcher, release, started = _blocking_batcher(in_flight)
        tasks = [asyncio.create_task(batcher.submit(f"r{i}")) for i in range(3)]
        # Wait for the batches that may start (a loaded machine starts threads late), then a
        # little longer: a batch past max_in_flight must not start while the others block.
        deadline = time.monotonic() + 30
        while len(started) < in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        running = len(started)
        release.set()
        results = await asyncio.gather(*tasks)
        await batcher.stop()
        return running, [r for r, _ in results]

    running, results = asyncio.run(scenario())
    assert running == in_flight  # serial batching waits for the batch before
    assert results == ["result r0", "result r1", "result r2"]


@pytest.fixture(scope="module")
def tiny_transcriber(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_whisper import torch_threads, write_tiny_whisper_dir

    from asr.torch_backend import TorchTranscriber, TorchTranscriberConfig

    folder = write_tiny_whisper_dir(tmp_path_factory.mktemp("tiny-whisper"))
    with torch_threads(1):
        yield TorchTranscriber(
            TorchTranscriberConfig(model_dir=folder, device="cpu", nbest=3, max_new_tokens=8)
        )


def _server(transcriber, **config):
    from asr.vad import EnergyVad
    from assistant.pipeline import Pipeline, PipelineConfig
    from assistant.server import AssistantServer, ServerConfig

    pipeline = Pipeline(transcriber, config=PipelineConfig(nbest=3))
    server = AssistantServer(
        ServerConfig(port=0, **config), pipeline=pipeline, vad_factory=EnergyVad
    )
    return ServerThread(server), pipeline


def _utterance(url: str) -> list[dict]:
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": 16000, "language": "en"}))
        assert recv_json(ws)["type"] == "ready"
        pcm = tone_pcm(1.0, 16000) + silence_pcm(0.8, 16000)
        for i in range(0, len(pcm), 3200):
            ws.send(pcm[i : i + 3200])
            time.sleep(0.01)
        ws.send(json.dumps({"type": "stop"}))
        return [e for e in recv_until(ws, "end") if e["type"] == "final"]


def test_server_decodes_finals_continuously(tiny_transcriber):
    from asr.torch_continuous import ContinuousDecoder

    st, pipeline = _server(tiny_transcriber, continuous_batching=True)
    with st:
        assert isinstance(st.server.pipeline.transcriber, ContinuousDecoder)
        assert st.server._batcher.max_in_flight == st.server.config.max_sessions
        results: list = [None] * 3
        threads = [
            threading.Thread(target=lambda i=i: results.__setitem__(i, _utterance(st.url)))
            for i in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        decoded = st.server.pipeline.transcriber.stats.steps
    for finals in results:
        assert len(finals) == 1 and finals[0]["nbest"] and finals[0]["language"] == "en"
        assert finals[0]["text"] == finals[0]["nbest"][0]["text"]
    assert decoded > 0
    assert not st.server.pipeline.transcriber._thread.is_alive()  # closed at shutdown


def test_server_keeps_static_batching_on_cpu_by_default(tiny_transcriber):
    st, pipeline = _server(tiny_transcriber)
    with st:
        assert pipeline.transcriber is tiny_transcriber and st.server._decoder is None
        assert st.server._batcher.max_in_flight == 1
        assert len(_utterance(st.url)) == 1
