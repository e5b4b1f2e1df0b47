"""The websocket server (protocol v1, docs/protocol.md) and the demo page, on `websockets`.

Routes, all on one port: `/ws` websocket; `/` the demo page and its static files from web/;
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
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from asr.streaming import StreamingConfig
from assistant.events import CloseCode, ErrorCode
from assistant.metrics import Metrics
from assistant.session import FinalBatcher, Session, SessionLimits

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


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
    # (scripts/bench_latency.py: docs/latency.md against docs/latency_batch8.md).
    max_batch: int | None = None
    # Continuous batching of finals (asr.torch_continuous): each final joins the running
    # beam search at the next decoder step instead of waiting for the batch before it.
    # None: on when the first pass is PyTorch on CUDA; the CTranslate2 path never uses it.
    continuous_batching: bool | None = None
    default_store: str = "1"
    shutdown_grace_s: float = 15.0  # SIGTERM: time allowed to finish utterances in flight
    web_dir: Path = WEB_DIR


class AssistantServer:
    """Owns the listening socket, the shared pipeline and batcher, and the live sessions.

    pipeline: a loaded pipeline (tests), or None to call `pipeline_factory` in a thread
    after binding. vad_factory: per-session VAD (None: Silero).
    """

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
        transcriber = getattr(self.pipeline, "transcriber", None)
        device = getattr(transcriber, "device", "cpu")
        if self._continuous(transcriber, str(device)):
            from asr.torch_continuous import ContinuousDecoder

            # The decoder merges concurrent calls itself: each final goes alone, at once, on
            # its own thread (its later stages then wait for nobody's first pass).
            self._decoder = ContinuousDecoder(transcriber)
            self.pipeline.transcriber = self._decoder
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
        return self.pipeline.finals(requests)

    async def shutdown(self) -> None:
        """Graceful: refuse new sessions, finish utterances in flight, close with 1001."""
        if self.shutting_down or self._server is None:
            return
        self.shutting_down = True
        log.info("shutting down: finishing %d session(s)", len(self.sessions))
        self._server.server.close()  # stop accepting connections
        sessions = list(self.sessions)
        await asyncio.gather(
            *(s.drain(self.config.shutdown_grace_s) for s in sessions), return_exceptions=True
        )
        for s in sessions:
            await s.error(ErrorCode.SHUTTING_DOWN, "the server is shutting down; reconnect later")
        self._server.close(close_connections=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)
        if self._batcher:
            await self._batcher.stop()
        if self._decoder is not None:
            await asyncio.to_thread(self._decoder.close)

    async def serve_forever(self) -> None:
        """start(), then run until SIGTERM/SIGINT, then shutdown()."""
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await self.shutdown()

    # -- HTTP ----------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        path = url.path
        if path == "/ws":
            return self._check_websocket(connection, request, parse_qs(url.query))
        if path == "/healthz":
            status = HTTPStatus.OK if self.ready else HTTPStatus.SERVICE_UNAVAILABLE
            state = "ok" if self.ready else ("error" if self.load_failed else "loading")
            body = {"status": state, "sessions": len(self.sessions)}
            if self.ready and hasattr(self.pipeline, "describe"):
                body["stages"] = self.pipeline.describe()
            return _response(status, json.dumps(body).encode(), "application/json")
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

    def _static(self, path: str) -> Response:
        """Files directly in web/ (no sub-folders, no dot-files: nothing else is reachable)."""
        name = "index.html" if path in ("/", "") else path.lstrip("/")
        if "/" in name or "\\" in name or name.startswith(".") or name.endswith(".py"):
            return _response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        file = self.config.web_dir / name
        if not file.is_file():
            return _response(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        return _response(HTTPStatus.OK, file.read_bytes(), kind)

    def _check_websocket(self, connection, request: Request, query: dict) -> Response | None:
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin, request.headers.get("Host", "")):
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

    def _origin_allowed(self, origin: str, host: str) -> bool:
        allowed = self.config.allowed_origins
        if "*" in allowed or origin in allowed:
            return True
        # Same origin: the demo page served by this server.
        return urlsplit(origin).netloc == host and urlsplit(origin).scheme in ("http", "https")

    def _token_ok(self, token: object) -> bool:
        return (
            isinstance(token, str)
            and self.config.token is not None
            and hmac.compare_digest(token.encode(), self.config.token.encode())
        )

    # -- websocket -----------------------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        authenticated = not self.config.token or ws in self._authenticated
        self._authenticated.discard(ws)

        async def send(text: str) -> None:
            await ws.send(text)

        async def close(code: int, reason: str) -> None:
            await ws.close(code, reason)

        session = Session(
            send,
            close,
            None,
            self._batcher,
            self.config.streaming,
            self.config.limits,
            self.metrics,
            default_store=self.config.default_store,
            authenticated=authenticated,
            token_check=self._token_ok,
            vad_factory=self.vad_factory,
        )
        if self.shutting_down:
            await session.error(
                ErrorCode.SHUTTING_DOWN, "the server is shutting down; reconnect later"
            )
            return
        if len(self.sessions) >= self.config.max_sessions:
            await session.error(
                ErrorCode.TOO_MANY_SESSIONS,
                f"the server is at its limit of {self.config.max_sessions} sessions; retry in a moment",
            )
            return
        self.sessions.add(session)
        self.metrics.session_opened()
        try:
            await self._loaded.wait()
            if not self.ready:
                await session.error(
                    ErrorCode.UNAVAILABLE,
                    "the speech models are not available; tell the administrator",
                )
                return
            session.pipeline = self.pipeline
            await self._receive(ws, session)
        finally:
            await session.dispose()
            self.sessions.discard(session)
            self.metrics.session_closed()

    async def _receive(self, ws: ServerConnection, session: Session) -> None:
        idle = session.limits.idle_timeout_s
        while not session.closed:
            try:
                message = await asyncio.wait_for(ws.recv(), idle)
            except TimeoutError:
                if session.busy:
                    continue
                await session.error(
                    ErrorCode.IDLE_TIMEOUT, f"nothing received for {idle:g} s; reconnect to go on"
                )
                return
            except ConnectionClosed:
                return
            await session.on_message(message)
        # Let the close handshake finish before the handler returns.
        with contextlib.suppress(Exception):
            await ws.wait_closed()


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


async def run_server(config: ServerConfig, pipeline_factory: Callable[[], object]) -> None:
    """Entry point of `assistant serve`."""
    await AssistantServer(config, pipeline_factory=pipeline_factory).serve_forever()


__all__ = ["AssistantServer", "CloseCode", "ServerConfig", "run_server"]
