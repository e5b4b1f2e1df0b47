"""`assistant replay FILE...`: stream audio files to the server as a client would, print events.

Each file is one session: start, 16 kHz PCM16 frames of `--chunk-ms` paced at `--speed` times
real time (0: as fast as possible), stop; every event is printed as it arrives (JSON lines
with --json). Exit status 1 when the server sent an error event, 2 for a user mistake.
The streaming core (`stream_session`) is shared with `assistant mic` and the latency benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from assistant.errors import UserError

DEFAULT_URL = "ws://127.0.0.1:8765/ws"
# A live client's frame (the demo page, `assistant mic`): one VAD window (asr.vad.WINDOW, 512
# samples at 16 kHz). The server hears a frame only once all of it is captured, so each ms of
# frame is on average half a ms more between the end of speech and the final (100 ms frames:
# ~50 ms, 32 ms frames: ~16 ms; docs/latency.md).
LIVE_FRAME_MS = 32


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "replay",
        help="stream audio files to the server, print events",
        description="Stream files to a running `assistant serve` as a client would; print its events.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="audio files (WAV, FLAC, MP3, ...)")
    add_client_options(p)
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="times real time; 0: as fast as possible (default 1)",
    )
    p.add_argument(
        "--chunk-ms", type=int, default=100, help="audio per frame (default %(default)s ms)"
    )
    p.add_argument(
        "--tail-silence-s", type=float, default=0.0, help="silence appended to each file"
    )
    p.set_defaults(func=run)


def add_client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=DEFAULT_URL, help="server websocket URL (default %(default)s)")
    p.add_argument(
        "--language", default="auto", choices=("auto", "en", "es"), help="spoken language"
    )
    p.add_argument("--store", default="1", help="store id (default %(default)s)")
    p.add_argument("--token", default=None, help="access token, when the server needs one")
    p.add_argument("--json", action="store_true", help="print events as JSON lines")


@dataclass
class SessionLog:
    """What one session received. times: perf_counter() at arrival of each event."""

    events: list[dict] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    audio_done_at: float = 0.0  # when the last audio frame was sent

    @property
    def errors(self) -> list[dict]:
        return [e for e in self.events if e.get("type") == "error"]


async def stream_session(
    url: str,
    frames: AsyncIterator[bytes],
    sample_rate: int = 16_000,
    language: str = "auto",
    store: str = "1",
    token: str | None = None,
    on_event: Callable[[dict], None] | None = None,
    timeout_s: float = 120.0,
) -> SessionLog:
    """One session: start, the frames, stop; returns every event up to `end` (or a close)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

    log = SessionLog()
    start = {"type": "start", "sample_rate": sample_rate, "language": language, "store": store}
    if token:
        start["token"] = token
    try:
        ws = await connect(url, open_timeout=10, max_size=2**22, compression=None)
    except InvalidURI as error:
        raise UserError(f"{url}: not a websocket URL; give ws://HOST:PORT/ws") from error
    except InvalidStatus as error:
        code = error.response.status_code
        raise UserError(
            f"{url}: the server refused the connection (HTTP {code}); check --token or the origin"
        ) from error
    except (OSError, TimeoutError) as error:
        raise UserError(
            f"cannot connect to {url} ({error}); is `assistant serve` running?"
        ) from error

    async def receive() -> None:
        try:
            async for message in ws:
                event = json.loads(message)
                log.events.append(event)
                log.times.append(time.perf_counter())
                if on_event:
                    on_event(event)
                if event.get("type") == "end" or event.get("fatal"):
                    return
                if event.get("type") == "error" and not any(
                    e.get("type") == "ready" for e in log.events
                ):
                    return  # the start was refused: nothing more will come
        except ConnectionClosed:
            return

    async with ws:
        receiver = asyncio.create_task(receive())
        try:
            await ws.send(json.dumps(start))
            async for frame in frames:
                if receiver.done():
                    break  # the server closed or sent a fatal error
                await ws.send(frame)
            log.audio_done_at = time.perf_counter()
            if not receiver.done():
                await ws.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(receiver, timeout_s)
        except ConnectionClosed:
            pass
        except TimeoutError:
            log.events.append(
                {"type": "error", "code": "client_timeout", "message": "no end event"}
            )
        finally:
            receiver.cancel()
    return log


async def file_frames(
    pcm: bytes, sample_rate: int, chunk_ms: int, speed: float
) -> AsyncIterator[bytes]:
    """PCM16 bytes cut into frames, paced at `speed` times real time (0: no pacing) as a
    microphone delivers them: each frame once its last sample has been spoken, so that a
    latency measured from the end of speech counts the client's framing too."""
    step = max(2, int(sample_rate * chunk_ms / 1000) * 2)
    began = time.perf_counter()
    for i in range(0, len(pcm), step):
        if speed > 0:  # pace against the clock, not by sleeping a fixed time (no drift)
            due = began + (min(i + step, len(pcm)) / 2 / sample_rate) / speed
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        yield pcm[i : i + step]


def load_pcm(path: str, tail_silence_s: float = 0.0) -> bytes:
    """A file as 16 kHz PCM16 bytes (UserError when it cannot be read)."""
    import numpy as np

    from asr.audio import AudioError, decode_audio, float32_to_pcm16

    try:
        audio = decode_audio(path)
    except AudioError as error:
        raise UserError(f"{error}") from error
    if tail_silence_s > 0:
        audio = np.concatenate([audio, np.zeros(int(tail_silence_s * 16_000), dtype=np.float32)])
    return float32_to_pcm16(audio)


def format_event(event: dict) -> str:
    """One human-readable line per event."""
    kind = event.get("type")
    if kind == "partial":
        return f"  … [{event['utterance']}] {event['text']}"
    if kind == "final":
        intent = (event.get("intent") or {}).get("name", "-")
        ents = ", ".join(f"{e['label']}={e['text']}" for e in event.get("entities", []))
        lines = [
            f"  ✓ [{event['utterance']}] {event['text']!r} ({event.get('language')}) intent={intent} {ents}"
        ]
        answer = event.get("answer")
        if answer:
            lines.append(f"    → {answer.get('text', '')}")
        t = event.get("timings_ms", {})
        lines.append("    ms: " + " ".join(f"{k}={v:.0f}" for k, v in t.items()))
        return "\n".join(lines)
    if kind == "error":
        return f"  ! {event.get('code')}: {event.get('message')}"
    if kind == "ready":
        return f"  session {event.get('session')} ready"
    return f"  {kind}"


def printer(as_json: bool) -> Callable[[dict], None]:
    def show(event: dict) -> None:
        print(json.dumps(event, ensure_ascii=False) if as_json else format_event(event), flush=True)

    return show


def run(args: argparse.Namespace) -> int:
    if args.speed < 0 or args.chunk_ms <= 0:
        raise UserError("--speed must be >= 0 and --chunk-ms > 0")
    pcms = [(path, load_pcm(path, args.tail_silence_s)) for path in args.files]  # fail early
    failed = False
    for path, pcm in pcms:
        if not args.json:
            print(path)
        log = asyncio.run(
            stream_session(
                args.url,
                file_frames(pcm, 16_000, args.chunk_ms, args.speed),
                language=args.language,
                store=args.store,
                token=args.token,
                on_event=printer(args.json),
            )
        )
        failed |= bool(log.errors) or not any(e.get("type") == "end" for e in log.events)
    if failed:
        print("assistant replay: the server reported errors (see above)", file=sys.stderr)
    return 1 if failed else 0
