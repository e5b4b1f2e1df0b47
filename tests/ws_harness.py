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
    """

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.phrases: list[tuple[str, ...] | None] = []  # each final request's phrase list
        self.fail_answer = False

    def describe(self) -> dict:
        return {"asr": "FakePipeline"}

    def partial(self, audio, language):
        return f"partial {len(audio) // 1600}", language or "en"

    def finals(self, requests):
        self.batches.append(len(requests))
        out = []
        for r in requests:
            self.phrases.append(r.phrases)
            text = f"where is tide {len(r.audio) // 16000}"
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
def fake_server(**config_overrides):
    from asr.vad import EnergyVad
    from assistant.server import AssistantServer, ServerConfig

    pipeline = FakePipeline()
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
