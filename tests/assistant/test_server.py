"""Protocol v1 and bad clients against a server with an instant fake pipeline (no models).

Each bad client gets an error event or a close code, and a well-behaved client is served
right after. The real models are exercised in tests/e2e.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from ws_harness import (
    FakePipeline,
    ServerThread,
    fake_server,
    recv_json,
    recv_until,
    silence_pcm,
    tone_pcm,
)

from assistant.events import CloseCode
from assistant.session import SessionLimits


def speak(ws, seconds: float = 1.2, rate: int = 16000, chunk_s: float = 0.1) -> None:
    """Tone then silence, at about 4x real time (slow enough for partial decodes)."""
    pcm = tone_pcm(seconds, rate) + silence_pcm(0.8, rate)
    step = int(chunk_s * rate) * 2
    for i in range(0, len(pcm), step):
        ws.send(pcm[i : i + step])
        time.sleep(chunk_s / 4)


def well_behaved(url: str, utterances: int = 1, **start) -> list[dict]:
    """start, speech, stop -> every event up to end; asserts the protocol shape."""
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": 16000, **start}))
        ready = recv_json(ws)
        assert ready["type"] == "ready" and ready["session"]
        assert ready["sample_rate"] == start.get("sample_rate", 16000)  # the rate it will read
        for _ in range(utterances):
            speak(ws, rate=start.get("sample_rate", 16000))
        ws.send(json.dumps({"type": "stop"}))
        got = recv_until(ws, "end")
    finals = [e for e in got if e["type"] == "final"]
    assert [f["utterance"] for f in finals] == list(range(utterances))
    for f in finals:
        assert f["intent"]["name"] == "find_product"
        assert f["entities"][0]["label"] == "BRAND"
        assert set(f["timings_ms"]) >= {"asr", "rescore", "nlu", "answer", "total"}
        assert f["nbest"][0]["text"] == f["text"]
    return got


def error_of(ws) -> dict:
    event = recv_json(ws, 10)
    assert event["type"] == "error", event
    assert "Traceback" not in event["message"] and "/work" not in event["message"]
    return event


def closed_with(ws) -> int:
    with pytest.raises(ConnectionClosed):
        for _ in range(50):
            ws.recv(timeout=10)
    return ws.close_code


def test_session_with_several_utterances_and_partials(fake):
    got = well_behaved(fake.url, utterances=3)
    assert [e["type"] for e in got][-1] == "end"
    partials = [e for e in got if e["type"] == "partial"]
    assert partials and all(e["text"] for e in partials)  # local agreement reached
    # several finals end within the batch window only if sessions overlap; here one each
    assert fake.pipeline.batches and max(fake.pipeline.batches) == 1


def test_resamples_other_rates(fake):
    got = well_behaved(fake.url, sample_rate=44100, language="es", store="2")
    final = next(e for e in got if e["type"] == "final")
    assert final["language"] == "es"
    assert final["text"].endswith(" 1") or final["text"].endswith(" 2")  # ~1.6 s at 16 kHz


def test_control_frame_errors_keep_the_session(fake):
    with connect(fake.url) as ws:
        for frame, code in [
            ("{not json", "bad_json"),
            ("[1, 2]", "bad_json"),
            ('{"type": "dance"}', "unknown_type"),
            ('{"type": "stop"}', "not_started"),
            ('{"type": "start", "sample_rate": 0}', "bad_sample_rate"),
            ('{"type": "start", "sample_rate": "16k"}', "bad_sample_rate"),
            ('{"type": "start", "sample_rate": 96000}', "bad_sample_rate"),
            ('{"type": "start", "language": "fr"}', "bad_message"),
            ('{"type": "start", "phrases": "Tide Pods"}', "bad_message"),
            ('{"type": "start", "phrases": ["Tide", 7]}', "bad_message"),
            ('{"type": "start", "phrases": ["  "]}', "bad_message"),
            ('{"type": "start", "phrases": ["' + "x" * 81 + '"]}', "bad_message"),
            ('{"type": "start", "phrases": ' + json.dumps(["p"] * 501) + "}", "bad_message"),
        ]:
            ws.send(frame)
            assert error_of(ws)["code"] == code, frame
        ws.send(os.urandom(1000))  # audio before start
        assert error_of(ws)["code"] == "not_started"
        ws.send('{"type": "start"}')
        assert recv_json(ws)["type"] == "ready"
        ws.send('{"type": "start"}')
        assert error_of(ws)["code"] == "already_started"
        ws.send(os.urandom(1001))  # odd length: not 16-bit PCM
        assert error_of(ws)["code"] == "odd_length"
        ws.send(os.urandom(3200))  # random bytes are valid (noisy) PCM: no error
        speak(ws)
        ws.send('{"type": "stop"}')
        assert any(e["type"] == "final" for e in recv_until(ws, "end"))
    well_behaved(fake.url)


def test_start_phrases_reach_the_first_pass(fake):
    """A session's phrase list goes with each of its finals; without one, None (the catalog)."""
    pipeline = fake.pipeline
    for start, want in (
        ({"phrases": ["Tide Pods", " Huggies ", "Tide Pods"]}, ("Tide Pods", "Huggies")),
        ({}, None),
    ):
        with connect(fake.url) as ws:
            ws.send(json.dumps({"type": "start", **start}))
            assert recv_json(ws)["type"] == "ready"
            speak(ws)
            ws.send('{"type": "stop"}')
            assert any(e["type"] == "final" for e in recv_until(ws, "end"))
        assert pipeline.phrases[-1] == want


def test_oversized_frame_closes_with_1009(fake):
    with connect(fake.url) as ws:
        ws.send('{"type": "start"}')
        recv_json(ws)
        ws.send(bytes(SessionLimits().max_frame_bytes + 2))
        assert error_of(ws)["code"] == "frame_too_large"
        assert closed_with(ws) == CloseCode.MESSAGE_TOO_BIG
    with connect(fake.url) as ws:  # far over: the library itself closes with 1009
        ws.send(bytes(4 << 20))
        assert closed_with(ws) == CloseCode.MESSAGE_TOO_BIG
    well_behaved(fake.url)


def test_invalid_utf8_text_frame_closes_with_1007(fake):
    with connect(fake.url) as ws:
        # A text frame with bytes that are not UTF-8: send the raw frame.
        from websockets.frames import Frame, Opcode

        with ws.protocol_mutex:
            ws.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe\x00garbage"))
            ws.send_data()
        assert closed_with(ws) == CloseCode.INVALID_DATA
    well_behaved(fake.url)


def test_disconnect_mid_utterance_then_others_are_served(fake):
    for _ in range(2):
        with connect(fake.url) as ws:
            ws.send('{"type": "start"}')
            recv_json(ws)
            ws.send(tone_pcm(1.0))  # mid-utterance, then gone
    wait_no_sessions(fake)
    assert fake.call(_sessions(fake)) == 0
    well_behaved(fake.url)


async def _sessions(st) -> int:
    return len(st.server.sessions)


def wait_no_sessions(st, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while st.call(_sessions(st)) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_session_limit_closes_with_1013():
    with fake_server(max_sessions=1) as st:
        with connect(st.url) as first:
            first.send('{"type": "start"}')
            recv_json(first)
            with connect(st.url) as second:
                assert error_of(second)["code"] == "too_many_sessions"
                assert closed_with(second) == CloseCode.TRY_AGAIN_LATER
        wait_no_sessions(st)  # the first one's close handshake is asynchronous
        well_behaved(st.url)


def test_idle_timeout_closes_with_4408():
    with fake_server(limits=SessionLimits(idle_timeout_s=0.5)) as st, connect(st.url) as ws:
        assert error_of(ws)["code"] == "idle_timeout"
        assert closed_with(ws) == CloseCode.IDLE_TIMEOUT


def test_token_in_url_or_start_message():
    with fake_server(token="s3cret") as st:
        with pytest.raises(InvalidStatus) as info:
            connect(st.url + "?token=wrong")
        assert info.value.response.status_code == 401
        with connect(st.url) as ws:
            ws.send('{"type": "start"}')
            assert error_of(ws)["code"] == "unauthorized"
            assert closed_with(ws) == CloseCode.POLICY_VIOLATION
        well_behaved(st.url + "?token=s3cret")
        well_behaved(st.url, token="s3cret")


def test_origin_check():
    with fake_server(allowed_origins=("https://shop.example",)) as st:
        with pytest.raises(InvalidStatus) as info:
            connect(st.url, origin="https://evil.example")
        assert info.value.response.status_code == 403
        with connect(st.url, origin=f"http://127.0.0.1:{st.port}") as ws:  # the page itself
            ws.send('{"type": "start"}')
            assert recv_json(ws)["type"] == "ready"
        with connect(st.url, origin="https://shop.example") as ws:
            ws.send('{"type": "start"}')
            assert recv_json(ws)["type"] == "ready"


def test_db_down_gives_error_event_and_server_goes_on(fake):
    fake.pipeline.fail_answer = True
    with connect(fake.url) as ws:
        ws.send('{"type": "start"}')
        recv_json(ws)
        speak(ws)
        ws.send('{"type": "stop"}')
        got = recv_until(ws, "end")
    kinds = [(e["type"], e.get("code")) for e in got]
    assert ("final", None) in kinds and ("error", "db_unavailable") in kinds
    fake.pipeline.fail_answer = False
    well_behaved(fake.url)


def test_concurrent_finals_are_batched():
    import threading

    with fake_server(batch_wait_ms=200, max_batch=8) as st:
        threads = [threading.Thread(target=well_behaved, args=(st.url,)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert max(st.pipeline.batches) >= 2, st.pipeline.batches


def test_http_routes(fake):
    base = f"http://127.0.0.1:{fake.port}"
    health = json.load(urllib.request.urlopen(base + "/healthz"))
    assert health["status"] == "ok"
    well_behaved(fake.url)
    metrics = urllib.request.urlopen(base + "/metrics").read().decode()
    assert "assistant_utterances_total 1" in metrics
    assert 'assistant_stage_latency_seconds_bucket{stage="asr",le="+Inf"} 1' in metrics
    page = urllib.request.urlopen(base + "/")
    assert page.headers["Content-Type"].startswith("text/html") and b"<html" in page.read()
    for bad in ("/../pyproject.toml", "/%2e%2e/pyproject.toml", "/__init__.py", "/nope.js"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + bad)
        assert info.value.code == 404


def test_healthz_is_503_while_loading():
    import threading

    from asr.vad import EnergyVad
    from assistant.server import AssistantServer, ServerConfig

    release = threading.Event()

    def slow_factory():
        release.wait(30)
        return FakePipeline()

    server = AssistantServer(
        ServerConfig(port=0), pipeline_factory=slow_factory, vad_factory=EnergyVad
    )
    with ServerThread(server) as st:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{st.port}/healthz")
        assert info.value.code == 503
        release.set()
        well_behaved(st.url)  # a session opened while loading waits for the models
        assert urllib.request.urlopen(f"http://127.0.0.1:{st.port}/healthz").status == 200


def test_shutdown_finishes_the_utterance_in_flight():
    with fake_server() as st, connect(st.url) as ws:
        ws.send('{"type": "start"}')
        recv_json(ws)
        ws.send(tone_pcm(1.0))  # speech still going on: no endpoint yet
        # The server must have heard the speech start (later on a loaded machine).
        deadline = time.monotonic() + 30
        while not any(s.in_utterance for s in st.server.sessions):
            assert time.monotonic() < deadline, "the server never saw the speech start"
            time.sleep(0.02)
        future = asyncio.run_coroutine_threadsafe(st.server.shutdown(), st.loop)
        with contextlib.suppress(ConnectionClosed):  # closing may already be under way
            for _ in range(5):  # audio sent while draining is ignored, not answered with errors
                ws.send(tone_pcm(0.1))
        future.result(30)
        got = []
        with pytest.raises(ConnectionClosed):
            while True:
                got.append(recv_json(ws))
        assert [e["type"] for e in got][-3:] == ["final", "end", "error"]
        assert got[-1]["code"] == "shutting_down" and ws.close_code == CloseCode.GOING_AWAY
