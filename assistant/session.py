"""One websocket session (protocol v1): client messages in, events out.

A session validates client messages, turns PCM frames into 16 kHz float32, runs the
streaming policy off the event loop and sends events. It knows nothing of sockets: the
server hands it a `send(text)` coroutine and a `close(code, reason)` coroutine, so tests can
drive it with plain functions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from asr.audio import StreamResampler
from asr.streaming import Endpoint, Speculation, StreamingConfig, StreamingPolicy
from assistant import events
from assistant.batcher import FinalBatcher
from assistant.events import CLOSE_FOR, ErrorCode
from assistant.metrics import Metrics
from assistant.phrases import PhraseError, check_phrases
from assistant.pipeline import FinalRequest, FinalResult
from assistant.turn import TurnJudge

log = logging.getLogger(__name__)

LANGUAGES = ("auto", "en", "es")
MIN_RATE, MAX_RATE = 8_000, 48_000


@dataclass(frozen=True)
class SessionLimits:
    """Per-session limits; every violation is answered with an error event (docs/protocol.md)."""

    max_frame_bytes: int = 64 * 1024  # one binary frame: 2 s of 16 kHz PCM16
    max_buffered_s: float = 20.0  # audio received but not yet through the VAD
    idle_timeout_s: float = 60.0  # no message for this long closes the session
    # A text (control) frame: a start with 500 phrases of 80 accented characters fits.
    max_control_bytes: int = 128 * 1024
    max_json_depth: int = 16  # nesting of arrays/objects in a control frame (start uses 2)
    # An event the client does not take within this long (its socket buffer stays full: it
    # stopped reading) closes the connection: a client that never reads holds nothing.
    send_timeout_s: float = 10.0
    # With --token: the first message (auth or start with the token) must come this soon,
    # before the connection takes a session slot or any buffer.
    auth_timeout_s: float = 5.0
    # The first `start` must come this soon after the connection opens (4408 otherwise).
    start_timeout_s: float = 15.0

    def __post_init__(self) -> None:
        for name in ("max_buffered_s", "idle_timeout_s", "send_timeout_s", "auth_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.start_timeout_s <= 0 or self.max_json_depth < 2:
            raise ValueError("start_timeout_s must be > 0 and max_json_depth >= 2")
        if self.max_frame_bytes < 2 or self.max_control_bytes < 256:
            raise ValueError("max_frame_bytes must be >= 2 and max_control_bytes >= 256")


class ControlError(Exception):
    """A control frame that cannot be taken: `code` (ErrorCode) and a message for the client."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


_NOT_AN_OBJECT = 'control frames must be JSON objects, e.g. {"type": "start"}'


def json_depth(text: str) -> int:
    """Deepest nesting of arrays/objects in JSON `text` (outside strings), without parsing it.

    A linear scan, so that a frame of 10,000 brackets costs a scan instead of a RecursionError
    in the parser."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_control(text: str, limits: SessionLimits) -> dict:
    """A text frame -> its JSON object; size and nesting bounded before parsing.

    Raises ControlError(FRAME_TOO_LARGE) over `max_control_bytes`, ControlError(BAD_JSON) for
    anything that is not a JSON object of at most `max_json_depth` levels."""
    if len(text) > limits.max_control_bytes or len(text.encode()) > limits.max_control_bytes:
        raise ControlError(
            ErrorCode.FRAME_TOO_LARGE,
            f"text frames must be at most {limits.max_control_bytes} bytes",
        )
    if json_depth(text) > limits.max_json_depth:
        raise ControlError(
            ErrorCode.BAD_JSON, f"JSON nested deeper than {limits.max_json_depth} levels"
        )
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise ControlError(ErrorCode.BAD_JSON, _NOT_AN_OBJECT) from None
    if not isinstance(message, dict):
        raise ControlError(ErrorCode.BAD_JSON, _NOT_AN_OBJECT)
    return message


def _field(message: dict, name: str, default, kinds: tuple[type, ...], what: str):
    """message[name], `default` when absent or null; ControlError(BAD_MESSAGE) for another type."""
    value = message.get(name)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        raise ControlError(
            ErrorCode.BAD_MESSAGE, f"{name} must be {what}, got a JSON {_json_type(value)}"
        )
    return value


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


class Session:
    """Protocol state for one connection. Feed it messages; it sends events."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[None]],
        close: Callable[[int, str], Awaitable[None]],
        pipeline,
        batcher: FinalBatcher,
        streaming: StreamingConfig,
        limits: SessionLimits,
        metrics: Metrics,
        default_store: str = "1",
        authenticated: bool = True,
        token_check: Callable[[str | None], bool] | None = None,
        vad_factory: Callable[[], object] | None = None,
        answers=None,
    ) -> None:
        self.id = secrets.token_hex(6)
        self._send = send
        self._close = close
        self.pipeline = pipeline
        self.batcher = batcher
        self.streaming = streaming
        self.limits = limits
        self.metrics = metrics
        self.default_store = default_store
        self.authenticated = authenticated
        self.token_check = token_check
        self.vad_factory = vad_factory
        # assistant.answer_stage.AnswerStage: answers off the first-pass batch (None: the pipeline's)
        self.answers = answers
        self.closed = False
        self.last_activity = time.monotonic()
        self._queue: asyncio.Queue = asyncio.Queue()
        self._queued_samples = 0  # input-rate samples waiting in _queue
        self._worker: asyncio.Task | None = None
        self._started = False
        self._stopping = False
        self._processing = False  # the worker is handling audio or waiting for a final
        self._final_chain: asyncio.Task | None = None  # the latest utterance's final task
        self._tasks: set[asyncio.Task] = set()  # finals in flight
        self._partial_task: asyncio.Task | None = None
        # The utterance's speculative final: (its Speculation, the task decoding it).
        self._speculation: tuple[Speculation, asyncio.Task] | None = None
        parser = getattr(pipeline, "parser", None)
        self.judge = TurnJudge(parser, streaming.complete_confidence) if parser else None
        self._draining = False  # server shutdown: finishing, ignoring further input
        self.sample_rate = 16_000
        self._resampler: StreamResampler | None = None
        self._policy: StreamingPolicy | None = None  # made by `start`
        self.phrases: tuple[str, ...] | None = None  # the client's list; None: the catalog's
        self.ever_started = False  # a start was accepted (the start deadline is met)

    # -- sending -------------------------------------------------------------------------

    async def send(self, text: str) -> None:
        if self.closed:
            return
        try:
            await self._send(text)
        except Exception:  # connection gone: the handler notices and cleans up
            self.closed = True

    async def error(self, code: ErrorCode, message: str, utterance: int | None = None) -> None:
        self.metrics.error(str(code))
        await self.send(events.error(code, message, utterance))
        if code in CLOSE_FOR:
            await self.close(int(CLOSE_FOR[code]), str(code))

    async def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await self._close(code, reason)

    @property
    def in_utterance(self) -> bool:
        """Speech has started and its utterance has not ended yet."""
        return self._policy is not None and self._policy.in_speech

    @property
    def busy(self) -> bool:
        """Audio or a final still in the works (idle timeout does not apply)."""
        return self._processing or not self._queue.empty() or bool(self._tasks)

    # -- receiving -----------------------------------------------------------------------

    async def on_message(self, message: str | bytes) -> None:
        self.last_activity = time.monotonic()
        if isinstance(message, str):
            await self._on_text(message)
        else:
            await self._on_audio(message)

    async def _on_text(self, text: str) -> None:
        try:
            message = parse_control(text, self.limits)
        except ControlError as error:
            await self.error(error.code, str(error))
            return
        kind = message.get("type")
        if not self.authenticated:
            if (
                kind in ("start", "auth")
                and self.token_check
                and self.token_check(message.get("token"))
            ):
                self.authenticated = True
                if kind == "auth":
                    return
            else:
                await self.error(
                    ErrorCode.UNAUTHORIZED,
                    "this server needs an access token: add ?token=... to the URL or "
                    '"token" to the start message',
                )
                return
        if kind == "start":
            await self._on_start(message)
        elif kind == "stop":
            await self._on_stop()
        elif kind == "auth":
            return  # already authenticated (token in the URL)
        else:
            await self.error(
                ErrorCode.UNKNOWN_TYPE,
                f"unknown message type {str(kind)[:40]!r}: use start or stop",
            )

    async def _on_start(self, message: dict) -> None:
        if self._draining:
            return  # shutting down: no new stream (shutting_down follows)
        if self._stopping and self._worker is not None and not self._worker.done():
            # `start` right after `stop`: the previous stream ends first (its finals, `end`),
            # then this one begins. Frames after this start wait in the socket meanwhile.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._worker)
            if self.closed or self._draining:
                return
        if self._started:
            await self.error(
                ErrorCode.ALREADY_STARTED, 'a stream is running: send {"type": "stop"} first'
            )
            return
        try:
            rate, language, store, phrases = self._start_fields(message)
        except ControlError as error:
            await self.error(error.code, str(error))
            return
        self.sample_rate, self.language, self.store = rate, language, store
        self.phrases = phrases
        self._resampler = StreamResampler(rate)
        fixed = None if language == "auto" else language
        self._policy = StreamingPolicy(
            self.streaming,
            vad=self.vad_factory() if self.vad_factory else None,
            partial_decoder=self.pipeline.partial,
            language=fixed,
            judge=self.judge,
        )
        self._started, self._stopping = True, False
        self.ever_started = True
        self._worker = asyncio.get_running_loop().create_task(self._work())
        await self.send(events.ready(self.id, rate, language, store))

    def _start_fields(self, message: dict) -> tuple[int, str, str, tuple[str, ...] | None]:
        """(sample_rate, language, store, phrases) of a start message; a field that is absent
        or null takes its default, one of another JSON type is a ControlError."""
        rate = message.get("sample_rate")
        rate = 16_000 if rate is None else rate
        if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
            raise ControlError(
                ErrorCode.BAD_SAMPLE_RATE,
                f"sample_rate must be an integer from {MIN_RATE} to {MAX_RATE} (Hz), "
                f"got {str(rate)[:20]}",
            )
        language = _field(message, "language", "auto", (str,), "auto, en or es")
        if language not in LANGUAGES:
            raise ControlError(
                ErrorCode.BAD_MESSAGE,
                f"language must be auto, en or es, got {language[:20]!r}",
            )
        store = _field(message, "store", self.default_store, (str, int), 'a store id such as "1"')
        store = str(store)
        if not store or len(store) > 32:
            raise ControlError(ErrorCode.BAD_MESSAGE, 'store must be a store id such as "1"')
        _field(message, "token", None, (str,), "a string")
        try:
            given = message.get("phrases")
            phrases = None if given is None else check_phrases(given)
        except PhraseError as error:
            raise ControlError(ErrorCode.BAD_MESSAGE, f"{error}; or leave phrases out") from None
        return rate, language, store, phrases

    async def _on_stop(self) -> None:
        if self._draining:
            return  # already stopping for the shutdown
        if not self._started or self._stopping:
            await self.error(ErrorCode.NOT_STARTED, 'nothing to stop: send {"type": "start"} first')
            return
        self._stopping = True
        await self._queue.put(None)

    async def _on_audio(self, data: bytes) -> None:
        if self._draining:
            return  # shutting down: the utterance in flight is being answered; no more audio
        if len(data) > self.limits.max_frame_bytes:
            await self.error(
                ErrorCode.FRAME_TOO_LARGE,
                f"binary frames must be at most {self.limits.max_frame_bytes} bytes; send shorter chunks",
            )
            return
        if not self._started or self._stopping:
            await self.error(
                ErrorCode.NOT_STARTED,
                'audio before start: send {"type": "start"} first; frame dropped',
            )
            return
        if len(data) % 2:
            await self.error(
                ErrorCode.ODD_LENGTH,
                "audio frames are 16-bit PCM: an even number of bytes; frame dropped",
            )
            return
        self._queued_samples += len(data) // 2
        if self._queued_samples > self.limits.max_buffered_s * self.sample_rate:
            await self.error(
                ErrorCode.OVERLOADED,
                f"more than {self.limits.max_buffered_s:g} s of audio waiting; stream in real time",
            )
            return
        await self._queue.put(data)

    # -- processing ----------------------------------------------------------------------

    async def _work(self) -> None:
        """Drain queued audio (coalesced), run VAD + partials off the loop, answer endpoints."""
        try:
            while True:
                self._processing = False
                item = await self._queue.get()
                self._processing = True
                chunks, stop = [], item is None
                if item is not None:
                    chunks.append(item)
                while not stop and not self._queue.empty():  # catch up in one step
                    nxt = self._queue.get_nowait()
                    if nxt is None:
                        stop = True
                    else:
                        chunks.append(nxt)
                if chunks:
                    data = b"".join(chunks)
                    audio = self._resampler.push(data)
                    found = await asyncio.to_thread(self._push, audio)
                    self._queued_samples -= len(data) // 2
                    self._handle(found)
                    self._maybe_partial()
                if stop:
                    found = await asyncio.to_thread(self._finish)
                    self._handle(found)
                    if self._final_chain is not None:
                        await self._final_chain  # every final before `end`
                    await self.send(events.end())
                    self._started = self._stopping = self._processing = False
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %s failed", self.id)
            await self.error(
                ErrorCode.PIPELINE, "the server could not process this audio; start again"
            )
            self._started = self._stopping = self._processing = False

    def _push(self, audio: np.ndarray) -> list:
        self._policy.push(audio)
        return self._policy.take_events()

    def _finish(self) -> list:
        self._policy.push(self._resampler.flush())
        return self._policy.finish()

    def _handle(self, found: list) -> None:
        """Endpoints become final tasks chained in utterance order; they do not block the
        audio loop, so the next utterance is endpointed while this one is decoded. A
        Speculation starts its final's decode before the endpoint (see _speculate)."""
        for event in found:
            if isinstance(event, Speculation):
                self._drop_speculation()
                task = self._spawn(self._speculate(event))
                self._speculation = (event, task)
            elif isinstance(event, Endpoint):
                task = self._spawn(self._final(event, self._final_chain, self._take(event)))
                self._final_chain = task

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _take(self, endpoint: Endpoint) -> asyncio.Task | None:
        """The speculative decode of exactly this endpoint's audio, if one runs; any other
        speculation is dropped (speech came after it: it costs CPU, never a second final)."""
        spec = self._speculation
        if spec is not None and (spec[0].utterance, spec[0].cut) == (
            endpoint.utterance,
            endpoint.cut,
        ):
            self._speculation = None
            return spec[1]
        self._drop_speculation()
        return None

    def _drop_speculation(self) -> None:
        if self._speculation is not None:
            self._speculation[1].cancel()  # still queued: never decoded; running: result unused
            self._speculation = None

    def _request(self, cut: Speculation | Endpoint) -> FinalRequest:
        """The final decode of an utterance's audio (with the partial reading it may reuse)."""
        language = cut.language or (None if self.language == "auto" else self.language)
        return FinalRequest(cut.audio, language, self.store, self.phrases, cut.heard)

    async def _decode(self, request: FinalRequest) -> tuple[FinalResult | None, float]:
        """(the final's result, ms it waited for its batch); (None, 0) when it failed."""
        try:
            result, wait_ms = await self.batcher.submit(request)
            if self.answers is not None:
                result = await self.answers.complete(result, request.store)
        except asyncio.CancelledError:
            raise
        except Exception:  # logged where it failed (the batcher)
            return None, 0.0
        return result, wait_ms

    async def _speculate(self, spec: Speculation) -> tuple[FinalResult | None, float]:
        """Decode a Speculation's audio; its text is a verdict on the turn (TurnJudge) that
        may end the utterance at once, whose endpoint then takes this very result."""
        decoded = await self._decode(self._request(spec))
        result = decoded[0]
        if result is not None and self.judge is not None and self._policy is not None:
            nbest = result.nbest
            verdict = self.judge.of_result(nbest.text, nbest.language, result.nlu)
            self._policy.settle(spec.utterance, spec.cut, verdict)
            self._handle(self._policy.take_events())
        return decoded

    def _maybe_partial(self) -> None:
        """Start a background partial decode when one is due and none is running."""
        if self._partial_task is not None and not self._partial_task.done():
            return
        job = self._policy.partial_job()
        if job is not None:
            self._partial_task = asyncio.get_running_loop().create_task(self._partial(job))

    async def _partial(self, job) -> None:
        try:
            decoded = await asyncio.to_thread(self.pipeline.partial, job.audio, job.language)
        except Exception:  # a failed partial is not worth an error: the final decides
            log.exception("partial decode failed")
            return
        if decoded is None:
            return
        event = self._policy.apply_partial(job, *decoded)
        if event is not None:
            self.metrics.partial()
            await self.send(events.partial(event.utterance, event.text))

    async def _final(
        self, endpoint: Endpoint, previous: asyncio.Task | None, speculated: asyncio.Task | None
    ) -> None:
        """Send the final of `endpoint`: the speculative result when `speculated` decoded the
        same audio, else a decode of its own."""
        result = None
        if speculated is not None:
            await asyncio.wait([speculated])  # a dropped one does not cancel this task
            if not speculated.cancelled():
                result, wait_ms = speculated.result()
        if result is None:  # no speculation, or it failed: decode the endpoint's audio
            speculated = None
            result, wait_ms = await self._decode(self._request(endpoint))
        if previous is not None:  # send in utterance order
            with contextlib.suppress(Exception):
                await previous
        if result is None:
            await self.error(
                ErrorCode.PIPELINE,
                "could not transcribe this utterance; try again",
                endpoint.utterance,
            )
            return
        self.metrics.utterance(events.final_timings(result, wait_ms))
        await self.send(
            events.final(endpoint.utterance, result, endpoint, wait_ms, speculated is not None)
        )
        for code, message in result.errors:
            await self.error(ErrorCode(code), message, endpoint.utterance)
        if endpoint.reason == "max_length":
            await self.error(
                ErrorCode.UTTERANCE_TOO_LONG,
                f"speech longer than {self.streaming.max_utterance_s:g} s is cut into several utterances",
                endpoint.utterance,
            )

    async def drain(self, timeout_s: float) -> None:
        """Graceful shutdown: finish the utterance in flight, send its final and `end`."""
        self._draining = True
        if self._started and not self._stopping:
            self._stopping = True
            await self._queue.put(None)
        if self._worker is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._worker), timeout_s)

    async def dispose(self) -> None:
        """Connection gone: stop work for this session (a queued final is dropped) and free
        the audio it still holds."""
        self.closed = True
        for task in [self._worker, self._partial_task, *self._tasks]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queued_samples = 0
        self._policy = self._resampler = None
