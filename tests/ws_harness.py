"""Helpers for the server and end-to-end tests: a fake pipeline, a server thread, a client."""

from __future__ import annotations

import asyncio
import json
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from asr.nbest import Hypothesis, NBest
from assistant.pipeline import FinalResult
from nlu.schema import Entity, NluResult


class FakePipeline:
    """Instant stand-in for the models: the 'transcript' says how long the audio was.

    fail_answer: raise a database error from the answer stage (DB down).
    answerer: an answer stage the server runs itself (assistant.answer.AnswerStage), as it
    does with the real pipeline's; None: finals carry no answer.
    pad: characters of filler added to each final's text (a client that does not read fills
    its socket buffer sooner).
    """

    def __init__(self, answerer=None, pad: int = 0) -> None:
        self.batches: list[int] = []
        self.phrases: list[tuple[str, ...] | None] = []  # each final request's phrase list
        self.fail_answer = False
        self.answerer = answerer
        self.pad = pad

    def describe(self) -> dict:
        return {"asr": "FakePipeline"}

    def partial(self, audio, language):
        return f"partial {len(audio) // 1600}", language or "en"

    def finals(self, requests):
        self.batches.append(len(requests))
        out = []
        for r in requests:
            self.phrases.append(r.phrases)
            text = f"where is tide {len(r.audio) // 16000}" + " x" * (self.pad // 2)
            nb = NBest(
                (Hypothesis(text, asr_score=-0.1, score=-0.1),),
                r.language or "en",
                1.0,
                len(r.audio) / 16000,
            )
            nlu = NluResult(
                text, nb.language, "find_product", 0.9, (Entity("BRAND", "tide", 9, 13),)
            )
            errors = ()
            if self.fail_answer:
                errors = (("db_unavailable", "the inventory database is unreachable"),)
            out.append(
                FinalResult(
                    nb,
                    nlu,
                    None,
                    {"asr": 1.0, "rescore": 0.0, "nlu": 0.0, "answer": 0.0, "total": 1.0},
                    errors,
                )
            )
        return out


def tone_pcm(seconds: float, rate: int = 16000, amp: float = 0.3) -> bytes:
    """A buzz of harmonics with a syllable-rate envelope: speech for EnergyVad (not Silero)."""
    t = np.arange(int(seconds * rate)) / rate
    voice = sum(np.sin(2 * np.pi * f0 * k * t) / k for f0 in (140,) for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    x = amp * voice * envelope / 3
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def silence_pcm(seconds: float, rate: int = 16000) -> bytes:
    return bytes(2 * int(seconds * rate))


class ServerThread:
    """An AssistantServer on port 0 running in its own event loop thread (sync tests)."""

    def __init__(self, server) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        self.call(self.server.start())
        return self

    def call(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def __exit__(self, *exc) -> None:
        self.call(self.server.shutdown())
        self.call(_cancel_others())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


async def _cancel_others() -> None:
    """Cancel what is left on the loop (handshakes of rejected connections) and wait."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def recv_json(ws, timeout: float = 30) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def recv_until(ws, kind: str, timeout: float = 60) -> list[dict]:
    """Events up to and including the first of type `kind`."""
    out = []
    while True:
        event = recv_json(ws, timeout)
        out.append(event)
        if event["type"] == kind:
            return out


@contextmanager
def fake_server(pipeline: FakePipeline | None = None, **config_overrides):
    from asr.vad import EnergyVad
    from assistant.server import AssistantServer, ServerConfig

    pipeline = pipeline or FakePipeline()
    config = ServerConfig(port=0, **config_overrides)
    with ServerThread(AssistantServer(config, pipeline=pipeline, vad_factory=EnergyVad)) as st:
        st.pipeline = pipeline
        yield st


FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture_rows() -> dict[str, dict]:
    """fixtures.jsonl rows by file stem (en_01_tide_pods, ...)."""
    path = FIXTURES / "fixtures.jsonl"
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {Path(r["file"]).stem: r for r in rows}


def fixture_audio(stem: str) -> np.ndarray:
    from asr.audio import decode_audio

    row = fixture_rows().get(stem)
    if row is None:
        import pytest

        pytest.skip(f"fixture {stem} missing from tests/fixtures")
    return decode_audio(FIXTURES / row["file"])


class RawClient:
    """A websocket client on a plain socket: it sends what it is told and reads only when asked.

    Built on the websockets sans-I/O client, so a test can be the client the library would
    not be: one that never reads (`rcvbuf` shrinks its socket buffer so that the server's
    events back up sooner), or one that sends frames faster than anything is answered.
    """

    def __init__(self, port: int, path: str = "/ws", headers=(), rcvbuf: int | None = None):
        import socket

        from websockets.client import ClientProtocol
        from websockets.uri import parse_uri

        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        self.protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"))
        request = self.protocol.connect()
        for name, value in headers:
            request.headers[name] = value
        self.protocol.send_request(request)
        self._flush()
        while self.protocol.handshake_exc is None and not self._response():
            self.protocol.receive_data(self.sock.recv(65536))
        self.status = self.response.status_code

    def _response(self) -> bool:
        from websockets.http11 import Response

        self._pending = getattr(self, "_pending", [])
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self.response = event
            else:
                self._pending.append(event)
        return hasattr(self, "response")

    def _flush(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.sock.sendall(data)

    def send(self, message: str | bytes) -> None:
        if isinstance(message, str):
            self.protocol.send_text(message.encode())
        else:
            self.protocol.send_binary(message)
        self._flush()

    def messages(self, timeout: float = 10, reply: bool = True) -> list:
        """Every text message until the server closes (or `timeout` passes): [str, ...].

        reply=False: leave the server's close (and pings) unanswered, as a client that is
        gone would."""
        import time

        out = [f.data.decode() for f in self._pending if f.opcode.name == "TEXT"]
        self._pending = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, OSError):
                break
            if not data:
                break
            self.protocol.receive_data(data)
            for frame in self.protocol.events_received():
                if frame.opcode.name == "TEXT":
                    out.append(frame.data.decode())
            if reply:
                self._flush()  # answer the close (and pings)
            if self.protocol.close_rcvd is not None:
                break
        return out

    @property
    def close_code(self) -> int | None:
        rcvd = self.protocol.close_rcvd
        return rcvd.code if rcvd is not None else None

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def http_status(port: int, request: bytes, timeout: float = 10) -> int:
    """Send raw HTTP request bytes; the response's status code (0 when the server hung up)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                return 0
            data += chunk
    return int(data.split(b" ", 2)[1])


def main(argv: list[str] | None = None) -> None:
    """A fake-pipeline server in its own process, for shutdown tests: prints "port N", then
    serves until SIGTERM (AssistantServer.serve_forever)."""
    import argparse
    import logging

    from asr.vad import EnergyVad
    from assistant.server import AssistantServer, ServerConfig
    from assistant.session import SessionLimits

    p = argparse.ArgumentParser()
    p.add_argument("--token")
    p.add_argument("--pad", type=int, default=0)
    p.add_argument("--send-timeout-s", type=float, default=10.0)
    p.add_argument("--shutdown-grace-s", type=float, default=15.0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = ServerConfig(
        port=0,
        token=args.token,
        shutdown_grace_s=args.shutdown_grace_s,
        limits=SessionLimits(send_timeout_s=args.send_timeout_s, max_buffered_s=600),
    )
    server = AssistantServer(config, pipeline=FakePipeline(pad=args.pad), vad_factory=EnergyVad)

    async def run() -> None:
        await server.start()
        print(f"port {server.port}", flush=True)
        stop = asyncio.Event()
        import signal

        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.shutdown()

    asyncio.run(run())


if __name__ == "__main__":
    main()
