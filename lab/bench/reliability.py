"""Reliability suite: the server as hostile and broken clients find it (issue #19).

    python -m lab.bench.reliability --out docs/reliability.json --md docs/reliability.md
    python -m lab.bench.reliability --quick                 # the CI size (tests/assistant/test_reliability.py)
    python -m lab.bench.reliability --url ws://127.0.0.1:8765/ws [--token T]   # a running server

Without --url it starts the fake-pipeline server of tests/ws_harness.py as a subprocess (no
models: the protocol is what is tested), with a token, short timeouts and a SQLite inventory,
reads its log, and ends with SIGTERM while a client that never reads is connected. Parts:

- cases: each kind of bad input (classes of docs/protocol.md's error table, HTTP, Origin,
  token), sent on its own connection; the expected error code and close code are checked,
  then that the session goes on where it should;
- fuzz: many short sessions of mutated control frames and random binary frames, with good
  clients interleaved that must each get their final (in order, with its shape) and `end`;
- storm: clients reconnecting as fast as they can at exactly --max-sessions;
- slow reader: a client that never reads must be closed and its slot freed;
- database loss: the SQLite file emptied and replaced while good clients keep asking;
- sigterm: the process must exit within the shutdown bound with a stuck client connected.

The report counts server crashes, unhandled exceptions in the server's log (ERROR lines and
tracebacks), lost finals of good clients and failed cases; it is written as JSON, and
`--md` renders the table (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
from lab import REPO  # noqa: E402
from lab.report import describe_machine, machine_info  # noqa: E402

HARNESS = REPO / "tests" / "ws_harness.py"
TOKEN = "reliability-token"
RATE = 16_000


def tone(seconds: float, rate: int = RATE) -> bytes:
    """Voiced buzz with a syllable envelope: speech to the energy VAD."""
    t = np.arange(int(seconds * rate)) / rate
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12))
    x = 0.3 * voice * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) / 3
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def silence(seconds: float, rate: int = RATE) -> bytes:
    return bytes(2 * int(seconds * rate))


UTTERANCE = tone(1.0) + silence(0.8)


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


# -- the server under test ---------------------------------------------------------------------


class HarnessServer:
    """tests/ws_harness.py's fake-pipeline server in a subprocess; its log is kept."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HARNESS), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            },
        )
        self.lines: list[str] = []
        line = ""
        while not line.startswith("port "):
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(
                    "the harness server ended before listening:\n" + "".join(self.lines)
                )
            self.lines.append(line)
        self.port = int(line.split()[1])
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def problems(self) -> list[str]:
        """Log lines of unhandled exceptions: ERROR records and tracebacks."""
        return [
            ln.rstrip()
            for ln in self.lines
            if ln.startswith(("ERROR", "CRITICAL")) or "Traceback" in ln
        ]

    def terminate(self, timeout: float) -> float | None:
        """SIGTERM -> seconds until the process exited (None: still up after `timeout`)."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(5)
        return time.monotonic() - sent

    def kill(self) -> None:
        if self.alive:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Target:
    """Where the clients go: url of /ws, the token (None: none needed), whether the server is
    the fake pipeline (finals then have a known shape)."""

    url: str
    token: str | None
    fake: bool = True

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    def authed(self) -> str:
        return f"{self.url}?token={self.token}" if self.token else self.url


# -- clients --------------------------------------------------------------------------------


async def _connect(url: str, **kw):
    from websockets.asyncio.client import connect

    return await connect(url, open_timeout=30, max_size=2**24, **kw)


async def good_client(target: Target, utterances: int = 1) -> tuple[int, int, str | None]:
    """start, `utterances` utterances, stop through the one client (`assistant replay`'s
    stream_session) -> (finals expected, finals right, problem)."""
    from assistant.commands.replay import stream_session

    async def frames():
        for _ in range(utterances):
            for i in range(0, len(UTTERANCE), 3200):
                yield UTTERANCE[i : i + 3200]
            await asyncio.sleep(0.01)

    try:
        session = await stream_session(target.authed(), frames(), RATE, timeout_s=60)
    except Exception as error:  # noqa: BLE001 - a refusal is what is counted
        return utterances, 0, f"connect: {error}"
    if not session.events or session.events[-1].get("type") != "end":
        return utterances, 0, f"no end: {session.events[-1:] or 'no events'}"
    finals = [e for e in session.events if e["type"] == "final"]
    right = [f for f in finals if _final_ok(f, target.fake)]
    if [f["utterance"] for f in finals] != list(range(utterances)):
        return utterances, len(right), f"finals {[f['utterance'] for f in finals]}"
    return utterances, len(right), None if len(right) == utterances else f"bad final {finals}"


def _final_ok(final: dict, fake: bool) -> bool:
    text = final.get("text")
    shaped = (
        isinstance(text, str)
        and final.get("nbest")
        and final["nbest"][0]["text"] == text
        and {"asr", "total"} <= set(final.get("timings_ms", {}))
    )
    return bool(shaped and (not fake or text.startswith("where is tide")))


SENTINEL = '{"type": "__sentinel__"}'


async def probe(
    target: Target,
    frames: list,
    codes: tuple[str, ...] = (),
    close: int | tuple[int, ...] | None = None,
    started: bool = False,
    url: str | None = None,
) -> str | None:
    """Send `frames` on a fresh connection; None when the server answered as documented.

    codes: error codes expected, in order (others must not be fatal); close: the close code
    expected (None: the session goes on, checked with a sentinel frame, then a stream);
    started: whether the frames left a stream running."""
    from websockets.exceptions import ConnectionClosed

    ws = await _connect(url or target.authed())
    got: list[dict] = []
    try:
        for frame in frames:
            await ws.send(frame)
        if close is None:
            await ws.send(SENTINEL)
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if event.get("type") == "error" and "__sentinel__" in event.get("message", ""):
                break
            got.append(event)
        if started:
            await ws.send('{"type": "stop"}')
        else:
            await ws.send('{"type": "start"}')
            if (await _next_type(ws)) != "ready":
                return f"no ready after {got}"
            await ws.send('{"type": "stop"}')
        while (kind := await _next_type(ws)) != "end":
            if kind is None:
                return f"no end after {got}"
    except ConnectionClosed:
        if close is None:
            return f"closed {ws.close_code} after {[e.get('code') for e in got]}"
        closes = close if isinstance(close, tuple) else (close,)
        if ws.close_code not in closes:
            return f"closed {ws.close_code}, expected {closes}"
    except TimeoutError:
        return f"no answer (timeout) after {got}"
    finally:
        await ws.close()
    errors = [e.get("code") for e in got if e.get("type") == "error"]
    if [c for c in errors if c in codes] != list(codes):
        return f"errors {errors}, expected {list(codes)}"
    return None


async def _send_utterance(ws) -> None:
    """One utterance (tone then silence) in frames of 3,200 bytes (0.1 s)."""
    for i in range(0, len(UTTERANCE), 3200):
        await ws.send(UTTERANCE[i : i + 3200])


async def _next_type(ws) -> str | None:
    while True:
        event = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if event.get("type") != "partial":
            return event.get("type")


# -- the cases --------------------------------------------------------------------------------


def start(**fields) -> str:
    return json.dumps({"type": "start", **fields})


def _cases(target: Target) -> list[tuple[str, str, object]]:
    """(class, name, coroutine factory) for each case; the factory returns None or a problem."""
    P = lambda frames, **kw: lambda: probe(target, frames, **kw)  # noqa: E731
    out: list[tuple[str, str, object]] = []

    def add(cls: str, name: str, factory) -> None:
        out.append((cls, name, factory))

    for name, frame in {
        "not json": "not json",
        "unclosed object": "{",
        "array": "[1, 2]",
        "string": '"start"',
        "number": "42",
        "null": "null",
        "empty": "",
        "truncated start": '{"type": "start"',
        "nested arrays x1000": "[" * 1000 + "]" * 1000,
        "nested objects x1000": '{"a":' * 1000 + "1" + "}" * 1000,
        "open brackets x100000": "[" * 100_000,
        "nested 17 levels": "[" * 17 + "]" * 17,
    }.items():
        add("bad_json", name, P([frame], codes=("bad_json",)))
    for name, message in {
        "other type": {"type": "hello"},
        "numeric type": {"type": 5},
        "null type": {"type": None},
        "no type": {},
        "list type": {"type": ["start"]},
        "object type": {"type": {"a": 1}},
        "upper case": {"type": "START"},
    }.items():
        add("unknown_type", name, P([json.dumps(message)], codes=("unknown_type",)))
    for name, fields in {
        "language object": {"language": {}},
        "language false": {"language": False},
        "language 0": {"language": 0},
        "language empty": {"language": ""},
        "language fr": {"language": "fr"},
        "language list": {"language": ["en"]},
        "store true": {"store": True},
        "store float": {"store": 1.5},
        "store object": {"store": {}},
        "store empty": {"store": ""},
        "store too long": {"store": "x" * 40},
        "token number": {"token": 5},
        "phrases string": {"phrases": "tide"},
        "phrases numbers": {"phrases": [1, 2]},
        "phrases empty string": {"phrases": [""]},
        "phrase too long": {"phrases": ["x" * 81]},
        "too many phrases": {"phrases": [f"p{i}" for i in range(501)]},
    }.items():
        add("bad_message", name, P([start(**fields)], codes=("bad_message",)))
    for rate in (0, -16000, 7999, 48001, 10**12, "16000", 16000.0, True, [16000], {}):
        add("bad_sample_rate", repr(rate), P([start(sample_rate=rate)], codes=("bad_sample_rate",)))
    add("not_started", "audio before start", P([silence(0.1)], codes=("not_started",)))
    add("not_started", "stop before start", P(['{"type": "stop"}'], codes=("not_started",)))
    add(
        "already_started",
        "start twice",
        P([start(), start()], codes=("already_started",), started=True),
    )
    for n in (1, 3, 3201):
        add("odd_length", f"{n} bytes", P([start(), bytes(n)], codes=("odd_length",), started=True))
    add(
        "frame_too_large",
        "binary 70,000 bytes",
        P([start(), bytes(70_000)], codes=("frame_too_large",), close=1009),
    )
    add(
        "frame_too_large",
        "text 140,000 bytes",
        P([start(pad="x" * 140_000)], codes=("frame_too_large",), close=1009),
    )
    add("library", "binary 300 KB (library limit)", P([start(), bytes(300_000)], close=1009))
    add("invalid_utf8", "text frame \\xff\\xfe", lambda: asyncio.to_thread(_invalid_utf8, target))
    add("utterance", "start after stop before end", lambda: _start_after_stop(target))
    add("utterance", "disconnect mid-utterance", lambda: _disconnect_mid_utterance(target))
    add("utterance", "resampled 8 kHz and 44.1 kHz", lambda: _other_rates(target))
    if target.token:
        add(
            "unauthorized",
            "start without token",
            P([start()], codes=("unauthorized",), close=1008, url=target.url),
        )
        add(
            "unauthorized",
            "wrong token in start",
            P([start(token="nope")], codes=("unauthorized",), close=1008, url=target.url),
        )
        add(
            "unauthorized",
            "audio first",
            P([silence(0.1)], codes=("unauthorized",), close=1008, url=target.url),
        )
        add(
            "unauthorized",
            "silent connection",
            P([], codes=("unauthorized",), close=1008, url=target.url),
        )
        add(
            "unauthorized",
            "big frame before token",
            P([bytes(200_000)], close=1009, url=target.url),
        )
        add(
            "unauthorized",
            "auth message then start",
            P([json.dumps({"type": "auth", "token": target.token})], url=target.url),
        )
        add("http", "wrong ?token= 401", lambda: _http(target, "/ws?token=nope", 401, upgrade=True))
        for path in ("/metrics", "/stores"):
            add("http", f"{path} without token 401", lambda p=path: _http(target, p, 401))
            add(
                "http",
                f"{path} with token 200",
                lambda p=path: _http(target, f"{p}?token={target.token}", 200),
            )
    add("start_timeout", "connection that never starts", lambda: _never_starts(target))
    add("http", "/healthz 200", lambda: _http(target, "/healthz", 200))
    add("http", "name of 300 bytes 404", lambda: _http(target, "/" + "a" * 300, 404))
    add("http", "target of 5,000 bytes 414", lambda: _http(target, "/" + "a" * 5000, 414))
    add("http", "NUL in the name 404", lambda: _http(target, "/%00x", 404))
    add("http", "traversal 404", lambda: _http(target, "/../pyproject.toml", 404))
    add("http", "encoded traversal 404", lambda: _http(target, "/%2e%2e/pyproject.toml", 404))
    add("http", "dot file 404", lambda: _http(target, "/.git", 404))
    add("http", "duplicated Host 400", lambda: _http(target, "/", 400, extra=("Host: 127.0.0.1",)))
    origin = f"Origin: http://127.0.0.1:{target.port}"
    add(
        "http",
        "duplicated Origin 400",
        lambda: _http(target, "/ws", 400, extra=(origin, origin), upgrade=True),
    )
    add("http", "POST 405", lambda: _http(target, "/", 405, method="POST"))
    add(
        "http",
        "garbage request line",
        lambda: _http_raw(target, b"\x16\x03\x01\x00\xa5garbage\r\n\r\n", (0, 400)),
    )
    add(
        "origin",
        "evil origin 403",
        lambda: _http(target, "/ws", 403, extra=("Origin: https://evil.example",), upgrade=True),
    )
    add(
        "origin",
        "DNS rebinding 403",
        lambda: _http(
            target,
            "/ws",
            403,
            host=f"evil.example:{target.port}",
            extra=(f"Origin: http://evil.example:{target.port}",),
            upgrade=True,
        ),
    )
    add(
        "origin",
        "null origin 403",
        lambda: _http(target, "/ws", 403, extra=("Origin: null",), upgrade=True),
    )
    add(
        "origin",
        "own page 101",
        lambda: _http(
            target, f"/ws?token={target.token or ''}", 101, extra=(origin,), upgrade=True
        ),
    )
    add(
        "origin",
        "localhost page 101",
        lambda: _http(
            target,
            f"/ws?token={target.token or ''}",
            101,
            extra=(f"Origin: http://localhost:{target.port}",),
            upgrade=True,
        ),
    )
    return out


UPGRADE = (
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
)


async def _http(target, path, status, extra=(), upgrade=False, host="127.0.0.1", method="GET"):
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}",
        *(UPGRADE if upgrade else ()),
        *extra,
        "",
        "",
    ]
    return await _http_raw(target, "\r\n".join(lines).encode(), status)


async def _http_raw(target, request: bytes, status) -> str | None:
    got = await asyncio.to_thread(http_status, target.port, request)
    wanted = status if isinstance(status, (range, tuple)) else (status,)
    return None if got in wanted else f"HTTP {got}, expected {status}"


def _invalid_utf8(target: Target) -> str | None:
    with RawClient(target.port, "/ws" + (f"?token={target.token}" if target.token else "")) as raw:
        raw.protocol.send_frame(_text_frame(b"\xff\xfe"))
        raw._flush()
        raw.messages(10)
        return None if raw.close_code == 1007 else f"closed {raw.close_code}, expected 1007"


def _text_frame(data: bytes):
    from websockets.frames import Frame, Opcode

    return Frame(Opcode.TEXT, data)


async def _start_after_stop(target: Target) -> str | None:
    ws = await _connect(target.authed())
    try:
        await ws.send(start())
        await _next_type(ws)
        await _send_utterance(ws)
        await ws.send('{"type": "stop"}')
        await ws.send(start())
        kinds = [await _next_type(ws) for _ in range(3)]
        if kinds != ["final", "end", "ready"]:
            return f"events {kinds}"
        await ws.send('{"type": "stop"}')
        return None if await _next_type(ws) == "end" else "no end"
    finally:
        await ws.close()


async def _disconnect_mid_utterance(target: Target) -> str | None:
    ws = await _connect(target.authed())
    await ws.send(start())
    await _next_type(ws)
    await ws.send(tone(0.5))
    ws.transport.abort()  # gone without a close
    expected, right, problem = await good_client(target)
    return problem


async def _other_rates(target: Target) -> str | None:
    for rate in (8000, 44100):
        ws = await _connect(target.authed())
        try:
            await ws.send(start(sample_rate=rate))
            ready = json.loads(await ws.recv())
            if ready.get("sample_rate") != rate:
                return f"ready {ready}"
            pcm = tone(1.0, rate) + silence(0.8, rate)
            for i in range(0, len(pcm), 3200):
                await ws.send(pcm[i : i + 3200])
            await ws.send('{"type": "stop"}')
            kinds = [await _next_type(ws) for _ in range(2)]
            if kinds != ["final", "end"]:
                return f"{rate} Hz: events {kinds}"
        finally:
            await ws.close()
    return None


async def _never_starts(target: Target) -> str | None:
    from websockets.exceptions import ConnectionClosed

    ws = await _connect(target.authed())
    codes = []
    try:
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 90))
            codes.append(event.get("code"))
    except ConnectionClosed:
        pass
    except TimeoutError:
        return "still open"
    finally:
        await ws.close()
    ok = codes == ["start_timeout"] and ws.close_code == 4408
    return None if ok else f"errors {codes}, closed {ws.close_code}"


async def run_cases(target: Target) -> list[dict]:
    results = []
    for cls, name, factory in _cases(target):
        try:
            problem = await asyncio.wait_for(factory(), 120)
        except Exception as error:  # noqa: BLE001 - a case that breaks is a failed case
            problem = f"{type(error).__name__}: {error}"
        results.append({"class": cls, "case": name, "ok": problem is None, "problem": problem})
        if problem:
            log.warning("case %s / %s: %s", cls, name, problem)
    return results


# -- fuzz ------------------------------------------------------------------------------------


def _random_json(rng: random.Random, depth: int = 0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, -1, 1, 16000, 8000, 48000, 2**63, 7999, 48001])
    if kind == 3:
        return rng.choice([0.5, 16000.0, -1e308, 1e308])
    if kind == 4:
        return rng.choice(
            [
                "",
                "en",
                "es",
                "auto",
                "fr",
                "start",
                "stop",
                "x" * rng.randrange(200),
                "ñ\u200b\U0001f600",
            ]
        )
    if kind == 5:
        return "x" * rng.randrange(1, 2000)
    if kind == 6:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return {rng.choice(["type", "language", "store", "a"]): _random_json(rng, depth + 1)}
    return [[[[[]]]]] if rng.random() < 0.5 else "[" * 40


def mutate_control(rng: random.Random, token: str | None) -> str:
    """A control frame: a valid start/stop/auth, then mutated one of several ways."""
    base = rng.choice(
        [
            {"type": "start", "sample_rate": 16000, "language": "auto", "store": "1"},
            {"type": "start", "phrases": ["tide", "huggies"]},
            {"type": "stop"},
            {"type": "auth", "token": token or ""},
        ]
    )
    how = rng.randrange(8)
    if how == 0:  # a field of another type
        base[rng.choice(["type", "sample_rate", "language", "store", "phrases", "token"])] = (
            _random_json(rng)
        )
        return json.dumps(base)
    if how == 1:  # an extra field
        base[rng.choice(["x", "utterance", "__proto__", ""])] = _random_json(rng)
        return json.dumps(base)
    text = json.dumps(base)
    if how == 2 and text:  # characters flipped
        chars = list(text)
        for _ in range(rng.randrange(1, 4)):
            chars[rng.randrange(len(chars))] = chr(rng.randrange(32, 127))
        return "".join(chars)
    if how == 3:  # truncated
        return text[: rng.randrange(len(text))]
    if how == 4:  # nested deep
        n = rng.choice([15, 17, 100, 1000, 5000])
        return "[" * n + text + "]" * n
    if how == 5:  # random JSON
        return json.dumps(_random_json(rng))
    if how == 6:  # random printable text
        return "".join(chr(rng.randrange(32, 0x2FF)) for _ in range(rng.randrange(64)))
    return text  # unchanged: valid frames in between


def random_binary(rng: random.Random) -> bytes:
    if rng.random() < 0.03:  # at and over the maximum (over it ends the session: rare)
        return os.urandom(rng.choice([65_536, 65_537, 66_000]))
    how = rng.randrange(5)
    if how == 0:
        return bytes(rng.randrange(0, 9))  # tiny, often odd
    if how == 1:
        return os.urandom(rng.randrange(1, 8000))
    if how == 2:
        return tone(rng.uniform(0.05, 0.5))
    if how == 3:
        return silence(rng.uniform(0.05, 0.5))
    return bytes([0x7F, 0xFF] * rng.randrange(1, 2000))  # full scale


async def fuzz_session(target: Target, rng: random.Random, messages: int, stats: dict) -> None:
    """One connection: `messages` mutated control and random binary frames, read meanwhile."""
    from websockets.exceptions import ConnectionClosed

    try:
        ws = await _connect(target.authed() if rng.random() < 0.9 else target.url)
    except Exception as error:  # noqa: BLE001
        stats["refused"][type(error).__name__] = stats["refused"].get(type(error).__name__, 0) + 1
        return

    async def read() -> None:
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                code = event.get("code") or event.get("type")
                stats["events"][code] = stats["events"].get(code, 0) + 1

    reader = asyncio.create_task(read())
    try:
        for _ in range(messages):
            if rng.random() < 0.5:
                await ws.send(mutate_control(rng, target.token))
            else:
                await ws.send(random_binary(rng))
            stats["messages"] += 1
            if rng.random() < 0.2:
                await asyncio.sleep(0.005)
        if rng.random() < 0.3:
            ws.transport.abort()  # gone without a close
        else:
            await ws.send('{"type": "stop"}')
            await asyncio.sleep(0.05)
    except ConnectionClosed:
        pass
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader, 10)
        reader.cancel()
        stats["sessions"] += 1
        code = ws.close_code
        stats["closes"][str(code)] = stats["closes"].get(str(code), 0) + 1


async def run_fuzz(target: Target, messages: int, seed: int, parallel: int = 3) -> dict:
    """`messages` fuzz frames over sessions of 5-40 messages, `parallel` at a time, and good
    clients alongside, one after another, until the fuzz is done."""
    rng = random.Random(seed)
    stats = {"messages": 0, "sessions": 0, "events": {}, "closes": {}, "refused": {}}
    good = {"sessions": 0, "finals_expected": 0, "finals_right": 0, "problems": []}
    done = asyncio.Event()

    async def fuzzer(worker: int) -> None:
        wrng = random.Random(rng.random())
        while stats["messages"] < messages:
            await fuzz_session(target, wrng, wrng.randrange(5, 40), stats)
        done.set()

    async def good_clients() -> None:
        while not done.is_set() or good["sessions"] == 0:
            expected, right, problem = await good_client(target, utterances=rng.choice([1, 2]))
            good["sessions"] += 1
            good["finals_expected"] += expected
            good["finals_right"] += right
            if problem:
                good["problems"].append(problem)

    started = time.monotonic()
    await asyncio.gather(*(fuzzer(i) for i in range(parallel)), good_clients())
    return {
        **stats,
        "seconds": round(time.monotonic() - started, 1),
        "good_sessions": good["sessions"],
        "good_finals_expected": good["finals_expected"],
        "good_finals_right": good["finals_right"],
        "lost_finals": good["finals_expected"] - good["finals_right"],
        "good_problems": good["problems"][:10],
    }


# -- storm, slow reader, database loss, SIGTERM -------------------------------------------------


async def run_storm(target: Target, clients: int, rounds: int) -> dict:
    """`clients` clients, each reconnecting `rounds` times the moment its last one closed, at a
    server whose --max-sessions is `clients`: a refusal is the server's count lagging."""
    refused, opened = [], 0

    async def one() -> None:
        nonlocal opened
        for _ in range(rounds):
            ws = await _connect(target.authed())
            try:
                await ws.send(start())
                event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                opened += 1
                if event.get("type") != "ready":
                    refused.append(event.get("code"))
            finally:
                await ws.close()

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(clients)))
    return {
        "clients": clients,
        "connections": opened,
        "refused": len(refused),
        "seconds": round(time.monotonic() - started, 1),
    }


def _paced(raw: RawClient, utterances: int) -> bool:
    """Send `utterances` to a client that never reads, each in about 0.1 s (the server keeps
    up with the audio: what backs up is its events). False once the server dropped us."""
    try:
        for _ in range(utterances):
            for i in range(0, len(UTTERANCE), 3200):
                raw.send(UTTERANCE[i : i + 3200])
            time.sleep(0.1)
    except OSError:
        return False
    return True


def _metric(target: Target, name: str) -> float:
    """One sample of the server's /metrics (0 when absent)."""
    import urllib.request

    query = f"?token={target.token}" if target.token else ""
    url = f"http://127.0.0.1:{target.port}/metrics{query}"
    for line in urllib.request.urlopen(url, timeout=10).read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def _sessions(target: Target) -> int:
    import urllib.request

    body = urllib.request.urlopen(f"http://127.0.0.1:{target.port}/healthz", timeout=10).read()
    return json.loads(body)["sessions"]


SLOW = 'assistant_errors_total{code="slow_client"}'


def run_slow_reader(target: Target, server: HarnessServer | None) -> dict:
    """A client that sends start and audio and never reads: it must be closed as slow_client
    (its slot freed) and a good client served after it."""
    before = _metric(target, SLOW)
    path = "/ws" + (f"?token={target.token}" if target.token else "")
    raw = RawClient(target.port, path, rcvbuf=4096)
    started = time.monotonic()
    closed_after = None
    try:
        raw.send(start())
        if _paced(raw, 30):
            raw.sock.settimeout(1)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and _metric(target, SLOW) == before:
                time.sleep(0.1)
        if _metric(target, SLOW) > before:
            closed_after = time.monotonic() - started
    finally:
        raw.close()
    expected, right, problem = asyncio.run(good_client(target))
    return {
        "closed": closed_after is not None,
        "closed_after_s": None if closed_after is None else round(closed_after, 1),
        "good_client_after": problem is None,
    }


async def run_db_loss(target: Target, db: Path, rounds: int = 3) -> dict:
    """Good clients while the SQLite file is emptied, then replaced by a new one."""
    sys.path.insert(0, str(HARNESS.parent))
    from ws_harness import make_db

    out = {
        "finals_during_loss": 0,
        "db_unavailable_during_loss": 0,
        "answers_after": 0,
        "lost_finals": 0,
    }
    for i in range(rounds):
        db.write_bytes(b"")
        got = await _answers(target)
        out["lost_finals"] += got["lost"]
        out["finals_during_loss"] += got["finals"]
        out["db_unavailable_during_loss"] += got["db_unavailable"]
        make_db(db, f"v{i + 2}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            got = await _answers(target)
            out["lost_finals"] += got["lost"]
            if got["answer"] == f"v{i + 2}":
                out["answers_after"] += 1
                break
            await asyncio.sleep(0.3)
    out["recovered"] = out["answers_after"] == rounds
    return out


async def _answers(target: Target) -> dict:
    ws = await _connect(target.authed())
    events = []
    try:
        await ws.send(start())
        await _next_type(ws)
        await _send_utterance(ws)
        await ws.send('{"type": "stop"}')
        while not events or events[-1]["type"] != "end":
            events.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
    finally:
        await ws.close()
    finals = [e for e in events if e["type"] == "final"]
    answer = finals[0].get("answer") if finals else None
    return {
        "finals": len(finals),
        "lost": 1 - len(finals),
        "db_unavailable": sum(e.get("code") == "db_unavailable" for e in events),
        "answer": answer and answer.get("text"),
    }


def run_sigterm(bound_s: float) -> dict:
    """SIGTERM while a client that never reads holds a session with 200 KB finals queued behind
    its full socket and an utterance in flight, on a server of its own whose send timeout
    (600 s) will not close it first: the shutdown bound alone must end it."""
    server = HarnessServer(
        "--token", TOKEN, "--pad", "200000", "--send-timeout-s", "600",
        "--shutdown-grace-s", str(GRACE_S),
    )  # fmt: skip
    target = Target(f"ws://127.0.0.1:{server.port}/ws", TOKEN)
    try:
        raw = RawClient(server.port, f"/ws?token={TOKEN}", rcvbuf=4096)
        raw.send(start())
        _paced(raw, 20)
        with contextlib.suppress(OSError):
            raw.send(tone(1.0))
        connected = _sessions(target)  # the stuck session is there when the signal comes
        exit_s = server.terminate(bound_s + 30)
        raw.close()
        return {
            "sessions_at_sigterm": connected,
            "exit_s": None if exit_s is None else round(exit_s, 1),
            "bound_s": bound_s,
            "exited_within_bound": exit_s is not None and exit_s <= bound_s,
            "returncode": server.proc.returncode,
            "log_problems": server.problems()[:10],
        }
    finally:
        server.kill()


# -- the run ------------------------------------------------------------------------------------


@dataclass
class Settings:
    """Sizes of one run: the CI one (--quick) and the long one (defaults)."""

    fuzz_messages: int = 30_000
    fuzz_parallel: int = 3
    storm_clients: int = 8
    storm_rounds: int = 100
    db_rounds: int = 3
    seed: int = 19
    extra: dict = field(default_factory=dict)


QUICK = Settings(fuzz_messages=600, fuzz_parallel=2, storm_clients=4, storm_rounds=15, db_rounds=1)
GRACE_S = 6.0  # the harness server's shutdown_grace_s in a self-started run
SEND_TIMEOUT_S = 3.0
# SIGTERM bound: the grace (it includes the goodbye and the close), and 1.5 s for the
# process's own exit (asyncio.run's clean-up) on a loaded machine
SIGTERM_BOUND_S = GRACE_S + 1.5


def run(settings: Settings, url: str | None = None, token: str | None = None) -> dict:
    """The whole suite -> the report (see module docstring). url=None: a self-started server."""
    server, workdir = None, None
    if url is None:
        workdir = tempfile.TemporaryDirectory(prefix="reliability-")
        db = Path(workdir.name) / "inventory.sqlite"
        sys.path.insert(0, str(HARNESS.parent))
        from ws_harness import make_db

        make_db(db, "v1")
        server = HarnessServer(
            "--token", TOKEN, "--pad", "100000", "--max-sessions", str(settings.storm_clients),
            "--send-timeout-s", str(SEND_TIMEOUT_S), "--start-timeout-s", "2",
            "--max-buffered-s", "20", "--shutdown-grace-s", str(GRACE_S), "--db", str(db),
        )  # fmt: skip
        target = Target(f"ws://127.0.0.1:{server.port}/ws", TOKEN, fake=True)
    else:
        target = Target(url, token, fake=False)
    report: dict = {
        "machine": machine_info(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "settings": {k: v for k, v in vars(settings).items() if k != "extra"},
        "server": "tests/ws_harness.py (fake pipeline)" if server else url,
    }
    started = time.monotonic()
    try:
        report["cases"] = asyncio.run(run_cases(target))
        report["fuzz"] = asyncio.run(
            run_fuzz(target, settings.fuzz_messages, settings.seed, settings.fuzz_parallel)
        )
        report["storm"] = asyncio.run(
            run_storm(target, settings.storm_clients, settings.storm_rounds)
        )
        report["slow_reader"] = run_slow_reader(target, server)
        if server is not None:
            report["db_loss"] = asyncio.run(run_db_loss(target, db, settings.db_rounds))
            report["crashed"] = not server.alive
            report["log_problems"] = server.problems()[:20]
            report["unhandled_exceptions"] = len(server.problems())
            exit_s = server.terminate(SIGTERM_BOUND_S + 30)  # idle: a plain, quick exit
            report["crashed"] |= server.proc.returncode not in (0, None) or exit_s is None
            report["sigterm"] = run_sigterm(SIGTERM_BOUND_S)
            report["unhandled_exceptions"] += len(report["sigterm"]["log_problems"])
    finally:
        if server is not None:
            server.kill()
        if workdir is not None:
            workdir.cleanup()
    report["seconds"] = round(time.monotonic() - started, 1)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report["summary"] = summarize(report)
    return report


def summarize(report: dict) -> dict:
    cases = report["cases"]
    fuzz = report["fuzz"]
    return {
        "case_classes": len({c["class"] for c in cases}),
        "cases": len(cases),
        "cases_failed": sum(not c["ok"] for c in cases),
        "fuzz_messages": fuzz["messages"],
        "fuzz_sessions": fuzz["sessions"],
        "good_sessions": fuzz["good_sessions"],
        "lost_finals": fuzz["lost_finals"] + report.get("db_loss", {}).get("lost_finals", 0),
        "storm_refused": report["storm"]["refused"],
        "slow_reader_closed": report["slow_reader"]["closed"],
        "db_recovered": report.get("db_loss", {}).get("recovered"),
        "server_crashes": int(bool(report.get("crashed"))),
        "unhandled_exceptions": report.get("unhandled_exceptions"),
        "sigterm_exit_s": report.get("sigterm", {}).get("exit_s"),
        "sigterm_within_bound": report.get("sigterm", {}).get("exited_within_bound"),
    }


def passed(report: dict) -> bool:
    s = report["summary"]
    stuck = report.get("sigterm", {}).get("sessions_at_sigterm", 1) >= 1
    return (
        stuck
        and s["cases_failed"] == 0
        and s["lost_finals"] == 0
        and s["storm_refused"] == 0
        and s["slow_reader_closed"]
        and s["server_crashes"] == 0
        and not s["unhandled_exceptions"]
        and s["db_recovered"] in (True, None)
        and s["sigterm_within_bound"] in (True, None)
    )


def render(report: dict) -> str:
    """The markdown table of a report (docs/reliability.md embeds it)."""
    s = report["summary"]
    rows = [
        (
            "bad-input classes / cases",
            f"{s['case_classes']} / {s['cases']}, {s['cases_failed']} failed",
        ),
        ("fuzz messages / sessions", f"{s['fuzz_messages']} / {s['fuzz_sessions']}"),
        ("good clients alongside / lost finals", f"{s['good_sessions']} / {s['lost_finals']}"),
        ("storm connections / refused", f"{report['storm']['connections']} / {s['storm_refused']}"),
        ("slow reader closed after", f"{report['slow_reader']['closed_after_s']} s"),
        ("database lost and replaced: recovered", str(s["db_recovered"])),
        ("server crashes", str(s["server_crashes"])),
        ("unhandled exceptions in the log", str(s["unhandled_exceptions"])),
        (
            "SIGTERM with a stuck client: exit",
            f"{s['sigterm_exit_s']} s (bound {report.get('sigterm', {}).get('bound_s')} s)",
        ),
    ]
    lines = ["| check | result |", "| --- | --- |", *(f"| {a} | {b} |" for a, b in rows)]
    by_class: dict[str, list[int]] = {}
    for c in report["cases"]:
        by_class.setdefault(c["class"], [0, 0])
        by_class[c["class"]][0] += 1
        by_class[c["class"]][1] += c["ok"]
    lines += ["", "| class | cases | as documented |", "| --- | --- | --- |"]
    lines += [f"| {k} | {n} | {ok} |" for k, (n, ok) in by_class.items()]
    lines += [
        "",
        f"{describe_machine(report['machine'])}; load average {report['load_average_before']} before, "
        f"{report['load_average_after']} after; {report['seconds']} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="a running server's ws://.../ws (default: start the fake one)")
    p.add_argument("--token", help="its access token")
    p.add_argument("--quick", action="store_true", help="the CI size")
    p.add_argument("--messages", type=int, help="fuzz messages (default 30,000; 600 quick)")
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--out", type=Path, help="write the JSON report here")
    p.add_argument("--md", type=Path, help="write the markdown table here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    settings = QUICK if args.quick else Settings()
    settings = Settings(**{**vars(settings), "seed": args.seed})
    if args.messages:
        settings.fuzz_messages = args.messages
    report = run(settings, args.url, args.token)
    text = json.dumps(report, indent=1, ensure_ascii=False)
    if args.out:
        args.out.write_text(text + "\n")
    if args.md:
        args.md.write_text(render(report))
    print(render(report))
    return 0 if passed(report) else 1


if __name__ == "__main__":
    sys.exit(main())
