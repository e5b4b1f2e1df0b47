"""Helpers for the server and end-to-end tests: a fake pipeline, audio, a client
(the server thread is lab.serving.ServerThread)."""

from __future__ import annotations

import asyncio
import json
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from asr.nbest import Hypothesis, NBest
from assistant.pipeline import FinalResult
from lab.serving import ServerThread
from nlu.schema import Entity, NluResult


class FakePipeline:
    """Instant stand-in for the models: the 'transcript' says how long the audio was.

    fail_answer: raise a database error from the answer stage (DB down).
    answerer: an answer stage the server runs itself (assistant.answer_stage.AnswerStage), as it
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

    def finals(self, requests, answer: bool = True):
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


from lab.bench.reliability import RawClient, http_status  # noqa: E402, F401  (raw clients, shared)


class VersionAnswer:
    """An answer whose text is the catalog version the database holds."""

    def __init__(self, text: str) -> None:
        self.text = text

    def to_dict(self) -> dict:
        return {"text": self.text, "language": "en", "products": []}


class VersionAnswerer:
    """An answer stage that really reads the database: Inventory.check() per answer."""

    def __init__(self, inventory) -> None:
        self.inventory = inventory
        self.calls = 0

    def answer(self, nlu, store, nbest=None):
        self.calls += 1
        return VersionAnswer(self.inventory.check())


def make_db(path: Path, version: str) -> None:
    """A small SQLite inventory holding only its catalog version, written beside `path` and
    moved over it (a new file, as `db init` into a temporary file and a rename would do)."""
    import os

    from sqlalchemy import create_engine

    from assistant.inventory import db

    tmp = path.with_suffix(".new")
    tmp.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{tmp}")
    db.meta.create(engine)
    with engine.begin() as conn:
        conn.execute(db.meta.insert(), [{"key": "catalog_version", "value": version}])
    engine.dispose()
    os.replace(tmp, path)


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
    p.add_argument("--max-sessions", type=int, default=16)
    p.add_argument("--send-timeout-s", type=float, default=10.0)
    p.add_argument("--start-timeout-s", type=float, default=15.0)
    p.add_argument("--idle-timeout-s", type=float, default=60.0)
    p.add_argument("--max-buffered-s", type=float, default=600.0)
    p.add_argument("--shutdown-grace-s", type=float, default=15.0)
    p.add_argument("--db", help="SQLite file: finals answer with its catalog version")
    args = p.parse_args(argv)
    # As `assistant serve` logs: the assistant's own loggers at INFO, libraries at WARNING.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("assistant").setLevel(logging.INFO)
    config = ServerConfig(
        port=0,
        token=args.token,
        max_sessions=args.max_sessions,
        shutdown_grace_s=args.shutdown_grace_s,
        db_retry_s=0.5,
        limits=SessionLimits(
            send_timeout_s=args.send_timeout_s,
            start_timeout_s=args.start_timeout_s,
            idle_timeout_s=args.idle_timeout_s,
            max_buffered_s=args.max_buffered_s,
        ),
    )
    answerer = None
    if args.db:
        from assistant.inventory import Inventory

        answerer = VersionAnswerer(Inventory(f"sqlite:///{args.db}"))
    pipeline = FakePipeline(answerer=answerer, pad=args.pad)
    server = AssistantServer(config, pipeline=pipeline, vad_factory=EnergyVad)

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
