"""The websocket server (protocol v1, docs/protocol.md) and the demo page, on `websockets`.

Routes, all on one port: `/ws` websocket; `/` the demo page and its static files from assistant/web/;
`/healthz` 200 once the models are loaded (503 before); `/metrics` Prometheus text.

The server is thin: it moves bytes and JSON between sockets and `Session` objects. Models
load in a thread after the socket is bound, so /healthz answers while Whisper loads.
SIGTERM: stop accepting, let every session finish the utterance in flight (final + end),
then close with 1001.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import mimetypes
import signal
import socket
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers, MultipleValuesError
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from asr.streaming import StreamingConfig
from assistant import events
from assistant.batcher import FinalBatcher
from assistant.events import CLOSE_FOR, CloseCode, ErrorCode
from assistant.metrics import Metrics
from assistant.session import ControlError, Session, SessionLimits, parse_control

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
MAX_PATH_BYTES = 2048  # longer request targets get 414 (no route or file name is near it)
CLOSE_STEP_S = 1.0  # a close, a goodbye event or a refusal that takes longer is dropped
PENDING_AUTH_PER_SESSION = 4  # connections awaiting their token, per --max-sessions slot


@dataclass(frozen=True)
class ServerConfig:
    """Server settings; `assistant serve` flags map one-to-one (kebab-case)."""

    host: str = "127.0.0.1"
    port: int = 8765  # 0: any free port (tests)
    token: str | None = None  # required from clients when set (?token= or in "start")
    allowed_origins: tuple[str, ...] = ()  # browser origins besides the page's own; "*": any
    max_sessions: int = 16
    limits: SessionLimits = field(default_factory=SessionLimits)
    streaming: StreamingConfig = field(default_factory=StreamingConfig)
    batch_wait_ms: float = 5.0  # how long a final waits for finals of other sessions
    # Finals decoded together in one nbest_batch call. None: 8 on CUDA, 1 on CPU, where a batch
    # costs about as much as its decodes in sequence, so the first final would wait for all
    # (lab/bench/latency.py: docs/latency.md against docs/latency_batch8.md).
    max_batch: int | None = None
    # Continuous batching of finals (asr.torch_continuous): each final joins the running
    # beam search at the next decoder step instead of waiting for the batch before it.
    # None: on when the first pass is PyTorch on CUDA; the CTranslate2 path never uses it.
    continuous_batching: bool | None = None
    default_store: str = "1"
    shutdown_grace_s: float = 15.0  # SIGTERM: time allowed to finish utterances in flight
    # At --max-sessions, a new connection waits this long for a slot before too_many_sessions.
    admit_wait_s: float = 1.0
    # The answer stage (inventory database): longer than this is db_unavailable, and then the
    # database is left alone for db_retry_s (finals answer db_unavailable at once meanwhile).
    answer_timeout_s: float = 3.0
    db_retry_s: float = 10.0
    web_dir: Path = WEB_DIR

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.max_sessions < 1:
            raise ValueError("max_sessions must be >= 1")
        if self.max_batch is not None and self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        for name in ("answer_timeout_s", "db_retry_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        if self.limits.max_frame_bytes < 1024:
            raise ValueError("max_frame_bytes must be >= 1024")


class AssistantServer:
    """Owns the listening socket, the shared pipeline and batcher, and the live sessions.

    pipeline: a loaded pipeline (tests), or None to call `pipeline_factory` in a thread
    after binding. vad_factory: per-session VAD (None: Silero).
    """

    # Extra options of the listening socket (loop.create_server), e.g. reuse_port for several
    # front-end processes on one port (assistant.ray_engine).
    listen_options: dict = {}

    def __init__(
        self,
        config: ServerConfig,
        pipeline=None,
        pipeline_factory: Callable[[], object] | None = None,
        vad_factory: Callable[[], object] | None = None,
    ) -> None:
        if pipeline is None and pipeline_factory is None:
            raise ValueError("give a pipeline or a pipeline_factory")
        self.config = config
        self.pipeline = pipeline
        self.pipeline_factory = pipeline_factory
        self.vad_factory = vad_factory
        self.metrics = Metrics()
        self.sessions: set[Session] = set()
        self.shutting_down = False
        self.load_failed = False
        self._loaded: asyncio.Event | None = None
        self._server: Server | None = None
        self._batcher: FinalBatcher | None = None
        self._decoder = None  # asr.torch_continuous.ContinuousDecoder when batching continuously
        # Connections whose URL carried the right ?token= (weak: a connection that never
        # reaches the handler does not linger, and no later connection inherits its entry).
        self._authenticated: weakref.WeakSet[ServerConnection] = weakref.WeakSet()
        self._answers = None  # assistant.answer_stage.AnswerStage once the pipeline is there
        self._names = own_names(config.host)  # what a same-origin page's Origin may name
        self._pending_auth = 0  # connections waiting for their token (see _authenticate)
        self._loading_slots = 0  # admitted connections waiting for the models to load

    # -- life cycle ----------------------------------------------------------------------

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.sockets[0].getsockname()[1]

    @property
    def ready(self) -> bool:
        return self.pipeline is not None and not self.load_failed

    async def start(self) -> None:
        self._loaded = asyncio.Event()
        self._batcher = FinalBatcher(
            self._run_batch,
            self.config.batch_wait_ms / 1000,
            self.config.max_batch or 1,
            self.metrics,
        )
        self._server = await serve(
            self._handler,
            self.config.host,
            self.config.port,
            process_request=self._process_request,
            # Above the documented frame maximum, so that an oversized frame gets an error
            # event before the close; far above it the library closes with 1009 itself.
            max_size=max(4 * self.config.limits.max_frame_bytes, 1 << 16),
            max_queue=64,
            compression=None,  # PCM does not compress; saves CPU
            **self.listen_options,
        )
        if self.pipeline is not None:
            self._configure_batching()
            self._loaded.set()
        else:
            asyncio.get_running_loop().create_task(self._load())
        log.info("listening on http://%s:%d/", self.config.host, self.port)

    async def _load(self) -> None:
        try:
            self.pipeline = await asyncio.to_thread(self.pipeline_factory)
            self._configure_batching()
            log.info(
                "models loaded; serving (finals %s)",
                "batched continuously"
                if self._decoder
                else f"batched up to {self._batcher.max_batch}",
            )
        except Exception:
            log.exception("models failed to load")
            self.load_failed = True
        finally:
            self._loaded.set()

    def _configure_batching(self) -> None:
        answerer = getattr(self.pipeline, "answerer", None)
        if answerer is not None and self._answers is None:
            # The answer stage leaves the first-pass batch worker (finals run with
            # answer=False): a slow database then never holds up the next batch, and its calls
            # get their own timeout and breaker.
            from assistant.answer_stage import AnswerStage, CircuitBreaker

            self._answers = AnswerStage(
                answerer,
                self.config.answer_timeout_s,
                CircuitBreaker(open_s=self.config.db_retry_s),
            )
        transcriber = getattr(self.pipeline, "transcriber", None)
        device = getattr(transcriber, "device", "cpu")
        if self._continuous(transcriber, str(device)):
            from asr.torch_continuous import ContinuousDecoder

            # The decoder merges concurrent calls itself: each final goes alone, at once, on
            # its own thread (its later stages then wait for nobody's first pass).
            self._decoder = ContinuousDecoder(transcriber)
            self.pipeline = self.pipeline.with_final_decoder(self._decoder)
            self._batcher.max_batch, self._batcher.max_wait_s = 1, 0.0
            self._batcher.max_in_flight = self.config.max_sessions
            return
        if self.config.max_batch is None:
            self._batcher.max_batch = 8 if device == "cuda" else 1

    def _continuous(self, transcriber, device: str) -> bool:
        if self.config.continuous_batching is False or transcriber is None:
            return False
        from asr.torch_continuous import ContinuousDecoder

        if not ContinuousDecoder.supports(transcriber):
            if self.config.continuous_batching:
                log.warning("continuous batching needs the PyTorch first pass; batching as before")
            return False
        return bool(self.config.continuous_batching) or device.startswith("cuda")

    def _run_batch(self, requests):
        return self.pipeline.finals(requests, answer=self._answers is None)

    async def shutdown(self) -> None:
        """Graceful: refuse new sessions, finish utterances in flight, close with 1001.

        Bounded by `shutdown_grace_s`: sessions get all of it but the last 3 s (half of it
        when it is under 6 s) to finish; then every connection gets its `shutting_down` event
        and close within 1 s each, and one that cannot take them (a client that stopped
        reading) is dropped, so a stuck client never holds the exit."""
        if self.shutting_down or self._server is None:
            return
        self.shutting_down = True
        log.info("shutting down: finishing %d session(s)", len(self.sessions))
        self._server.server.close()  # stop accepting connections
        sessions = list(self.sessions)
        grace = self.config.shutdown_grace_s
        drain_s = max(grace - 3 * CLOSE_STEP_S, grace / 2)
        await asyncio.gather(*(s.drain(drain_s) for s in sessions), return_exceptions=True)

        async def goodbye(s: Session) -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    s.error(
                        ErrorCode.SHUTTING_DOWN, "the server is shutting down; reconnect later"
                    ),
                    CLOSE_STEP_S,
                )

        await asyncio.gather(*(goodbye(s) for s in sessions))
        # Still open or closing after the goodbye (or still in their HTTP handshake).
        left = [c for c in self._server.all_connections if c.state is not State.CLOSED]
        await asyncio.gather(*(_close_or_abort(c, CloseCode.GOING_AWAY) for c in left))
        self._server.close(close_connections=False)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), CLOSE_STEP_S)
        if self._batcher:
            await self._batcher.stop()
        if self._answers is not None:
            self._answers.close()
        if self._decoder is not None:
            await asyncio.to_thread(self._decoder.close)

    async def serve_forever(self) -> None:
        """start(), then run until SIGTERM/SIGINT, then shutdown()."""
        await self.start()
        await wait_for_stop_signal()
        await self.shutdown()

    # -- HTTP ----------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        try:
            return self._route(connection, request)
        except MultipleValuesError as error:  # a header given twice (Host, Origin, ...)
            self.metrics.error("bad_request")
            return _response(
                HTTPStatus.BAD_REQUEST, f"duplicated header {error}\n".encode(), "text/plain"
            )
        except Exception:  # a bug: a 500 without details for the client, the trace in the log
            log.exception("HTTP request for %.80r failed", request.path)
            return _response(HTTPStatus.INTERNAL_SERVER_ERROR, b"internal error\n", "text/plain")

    def _route(self, connection: ServerConnection, request: Request) -> Response | None:
        if getattr(request, "method", "GET") != "GET":
            return _response(HTTPStatus.METHOD_NOT_ALLOWED, b"only GET\n", "text/plain")
        if len(request.path) > MAX_PATH_BYTES:
            return _response(HTTPStatus.REQUEST_URI_TOO_LONG, b"path too long\n", "text/plain")
        for name in ("Host", "Origin", "Authorization"):
            if len(request.headers.get_all(name)) > 1:
                raise MultipleValuesError(name)
        url = urlsplit(request.path)
        path, query = url.path, parse_qs(url.query)
        if path == "/ws":
            return self._check_websocket(connection, request, query)
        if path == "/healthz":
            status = HTTPStatus.OK if self.ready else HTTPStatus.SERVICE_UNAVAILABLE
            state = "ok" if self.ready else ("error" if self.load_failed else "loading")
            body = {"status": state, "sessions": len(self.sessions)}
            if self.ready and hasattr(self.pipeline, "describe"):
                body["stages"] = self.pipeline.describe()
                if self._answers is not None:  # the answer stage the server runs itself
                    body["stages"]["answer"] = type(self._answers.answerer).__name__
                    body["database"] = self._answers.breaker.state  # closed, open, half_open
            return _response(status, json.dumps(body).encode(), "application/json")
        if path in ("/stores", "/metrics") and not self._http_token_ok(request, query):
            self.metrics.error(str(ErrorCode.UNAUTHORIZED))
            return _response(
                HTTPStatus.UNAUTHORIZED,
                b"this server needs its access token: ?token=... or Authorization: Bearer ...\n",
                "text/plain",
            )
        if path == "/stores":  # for the page's store selector
            stores = (
                self.pipeline.stores() if self.ready and hasattr(self.pipeline, "stores") else []
            )
            return _response(HTTPStatus.OK, json.dumps(stores).encode(), "application/json")
        if path == "/metrics":
            return _response(
                HTTPStatus.OK, self.metrics.render().encode(), "text/plain; version=0.0.4"
            )
        return self._static(path)

    def _http_token_ok(self, request: Request, query: dict) -> bool:
        if not self.config.token:
            return True
        given = query.get("token", [None])[0]
        header = request.headers.get("Authorization", "")
        if given is None and header.lower().startswith("bearer "):
            given = header[7:].strip()
        return self._token_ok(given)

    def _static(self, path: str) -> Response:
        """Files directly in assistant/web/ (no sub-folders, no dot-files: nothing else is reachable)."""
        name = "index.html" if path in ("/", "") else path.lstrip("/")
        not_found = _response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        if "/" in name or "\\" in name or name.startswith(".") or name.endswith(".py"):
            return not_found
        file = self.config.web_dir / name
        try:  # a name the file system refuses (too long, NUL) is simply not there
            if not file.is_file():
                return not_found
            body = file.read_bytes()
        except (OSError, ValueError):
            return not_found
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        return _response(HTTPStatus.OK, body, kind)

    def _check_websocket(self, connection, request: Request, query: dict) -> Response | None:
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin):
            self.metrics.error("forbidden_origin")
            return _response(
                HTTPStatus.FORBIDDEN, b"origin not allowed; see --allowed-origins\n", "text/plain"
            )
        if self.config.token:
            given = query.get("token", [None])[0]
            if given is not None:
                if not self._token_ok(given):
                    self.metrics.error(str(ErrorCode.UNAUTHORIZED))
                    return _response(HTTPStatus.UNAUTHORIZED, b"wrong access token\n", "text/plain")
                self._authenticated.add(connection)
        return None

    def _origin_allowed(self, origin: str) -> bool:
        """An allow-listed origin, or this server's own page under a name it is bound to.

        Never compared with the request's Host header: a DNS-rebinding page controls both
        (evil.example resolving to 127.0.0.1 sends Origin and Host http://evil.example:PORT)."""
        allowed = self.config.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        try:
            url = urlsplit(origin)
            port = url.port or {"http": 80, "https": 443}.get(url.scheme)
        except ValueError:
            return False
        host = (url.hostname or "").lower()
        return url.scheme in ("http", "https") and port == self.port and host in self._names

    def _token_ok(self, token: object) -> bool:
        return (
            isinstance(token, str)
            and self.config.token is not None
            and hmac.compare_digest(token.encode(), self.config.token.encode())
        )

    # -- websocket -----------------------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        limits = self.config.limits
        if self.shutting_down:
            await self._refuse(
                ws, ErrorCode.SHUTTING_DOWN, "the server is shutting down; reconnect later"
            )
            return
        first: str | None = ""  # the authenticating message when it is a start
        if self.config.token and ws not in self._authenticated:
            # Before a slot or a buffer: one small message, soon, with the token in it.
            first = await self._authenticate(ws)
            if first is None:
                return
        self._authenticated.discard(ws)
        if not await self._admit():
            await self._refuse(
                ws,
                ErrorCode.TOO_MANY_SESSIONS,
                f"the server is at its limit of {self.config.max_sessions} sessions; "
                "retry in a moment",
            )
            return
        # The slot is held from here; the session is made once the models are there.
        self._loading_slots += 1
        try:
            await self._loaded.wait()
        finally:
            self._loading_slots -= 1
        if not self.ready:
            await self._refuse(
                ws,
                ErrorCode.UNAVAILABLE,
                "the speech models are not available; tell the administrator",
            )
            return
        session: Session | None = None

        async def send(text: str) -> None:
            try:
                await asyncio.wait_for(ws.send(text), limits.send_timeout_s)
            except TimeoutError:
                await self._slow_client(ws, session)
                raise

        async def close(code: int, reason: str) -> None:
            await _close_or_abort(ws, code, reason)

        session = Session(
            send,
            close,
            self.pipeline,
            self._batcher,
            self.config.streaming,
            limits,
            self.metrics,
            default_store=self.config.default_store,
            authenticated=True,
            token_check=self._token_ok,
            vad_factory=self.vad_factory,
            answers=self._answers,
        )
        self.sessions.add(session)
        self.metrics.session_opened()
        try:
            if first:
                await self._on_message(session, first)
            await self._receive(ws, session)
        finally:
            await session.dispose()
            self._release(session)
        # The close handshake runs outside the slot: a client that reconnects at once finds it.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.wait_closed(), CLOSE_STEP_S)
        _abort(ws)

    async def _authenticate(self, ws: ServerConnection) -> str | None:
        """The first message when it is a start with the token, "" for an auth message with
        it, None when refused (no token in time, a wrong one, or another message first)."""
        limits = self.config.limits
        if self._pending_auth >= PENDING_AUTH_PER_SESSION * self.config.max_sessions:
            await self._refuse(
                ws,
                ErrorCode.TOO_MANY_SESSIONS,
                "too many connections are authenticating; retry in a moment",
            )
            return None
        # Until the token is seen: one frame of at most max_control_bytes (over it: 1009 from
        # the library), and reading pauses after that frame (no queue of 64 frames).
        protocol, queue = ws.protocol, ws.recv_messages
        full_size, high_low = protocol.max_message_size, (queue.high, queue.low)
        protocol.max_message_size = limits.max_control_bytes
        queue.high = queue.low = 0
        self._pending_auth += 1
        try:
            message = await asyncio.wait_for(ws.recv(), limits.auth_timeout_s)
        except TimeoutError:
            message = None
        except ConnectionClosed:
            return None
        finally:
            self._pending_auth -= 1
            protocol.max_message_size = full_size
            queue.high, queue.low = high_low
        if isinstance(message, str):
            with contextlib.suppress(ControlError):
                parsed = parse_control(message, limits)
                if parsed.get("type") in ("start", "auth") and self._token_ok(parsed.get("token")):
                    return message if parsed["type"] == "start" else ""
        await self._refuse(
            ws,
            ErrorCode.UNAUTHORIZED,
            "this server needs an access token: add ?token=... to the URL, or send "
            f'"token" in the first message (start or auth) within {limits.auth_timeout_s:g} s',
        )
        return None

    async def _admit(self) -> bool:
        """Take a session slot; at the limit, wait up to `admit_wait_s` for one to free (a
        client that reconnects right after its close may beat its old session's clean-up).

        A session holds its slot until it is closed, not until its close handshake is over:
        the client has seen the end by then and may reconnect."""
        deadline = time.monotonic() + self.config.admit_wait_s
        while self._slots_taken() >= self.config.max_sessions:
            if time.monotonic() >= deadline or self.shutting_down:
                return False
            await asyncio.sleep(0.02)
        return True

    def _slots_taken(self) -> int:
        """Open sessions plus admitted connections still waiting for the models."""
        return sum(not s.closed for s in self.sessions) + self._loading_slots

    def _release(self, session: Session) -> None:
        if session in self.sessions:
            self.sessions.discard(session)
            self.metrics.session_closed()

    async def _refuse(self, ws: ServerConnection, code: ErrorCode, message: str) -> None:
        """An error event and its close, for a connection that never became a session."""
        self.metrics.error(str(code))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.send(events.error(code, message)), CLOSE_STEP_S)
        await _close_or_abort(ws, int(CLOSE_FOR[code]), str(code))

    async def _slow_client(self, ws: ServerConnection, session: Session | None) -> None:
        """The client stopped reading: its events back up. Close it and free its slot."""
        if session is not None and session.closed:
            return
        if session is not None:
            session.closed = True
        self.metrics.error(str(ErrorCode.SLOW_CLIENT))
        log.warning(
            "session %s: an event waited %g s for the client to read; closing with %d",
            session.id if session else "-",
            self.config.limits.send_timeout_s,
            CloseCode.SLOW_CLIENT,
        )
        await _close_or_abort(ws, CloseCode.SLOW_CLIENT, str(ErrorCode.SLOW_CLIENT))

    async def _on_message(self, session: Session, message: str | bytes) -> None:
        try:
            await session.on_message(message)
        except Exception:  # a bug must cost this session, never the server
            log.exception("session %s: message handling failed", session.id)
            await session.error(ErrorCode.PIPELINE, "the server could not handle this message")

    async def _receive(self, ws: ServerConnection, session: Session) -> None:
        limits = session.limits
        opened = time.monotonic()
        while not session.closed:
            timeout = limits.idle_timeout_s
            if not session.ever_started:
                timeout = min(timeout, max(0.0, opened + limits.start_timeout_s - time.monotonic()))
            try:
                message = await asyncio.wait_for(ws.recv(), timeout)
            except TimeoutError:
                if session.busy:
                    continue
                if not session.ever_started and timeout < limits.idle_timeout_s:
                    await session.error(
                        ErrorCode.START_TIMEOUT,
                        f"no start within {limits.start_timeout_s:g} s of connecting; "
                        "reconnect and send start first",
                    )
                else:
                    await session.error(
                        ErrorCode.IDLE_TIMEOUT,
                        f"nothing received for {limits.idle_timeout_s:g} s; reconnect to go on",
                    )
                return
            except ConnectionClosed:
                return
            await self._on_message(session, message)


async def _close_or_abort(ws: ServerConnection, code: int, reason: str = "") -> None:
    """Close with `code`; drop the TCP connection when the close cannot be delivered in time."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code, reason), CLOSE_STEP_S)
    _abort(ws)


def _abort(ws: ServerConnection) -> None:
    if ws.state is not State.CLOSED:
        with contextlib.suppress(Exception):
            ws.transport.abort()


def own_names(host: str) -> frozenset[str]:
    """Host names and addresses under which clients reach a server bound to `host` (lower case;
    IPv6 without brackets): the loopback names for a loopback or wildcard bind, the machine's
    names and addresses for a wildcard bind."""
    names = {host.lower().strip("[]")}
    loopback = {"localhost", "127.0.0.1", "::1"}
    wildcard = host in ("", "0.0.0.0", "::")
    if wildcard or names & loopback or host.startswith("127."):
        names |= loopback
    if wildcard:
        hostname = socket.gethostname()
        names |= {hostname.lower(), socket.getfqdn().lower()}
        with contextlib.suppress(OSError):
            names |= {info[4][0] for info in socket.getaddrinfo(hostname, None)}
    return frozenset(names)


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


async def wait_for_stop_signal() -> None:
    """Return at the first SIGTERM or SIGINT (where the loop can take signal handlers)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


__all__ = ["AssistantServer", "CloseCode", "ServerConfig", "wait_for_stop_signal"]
