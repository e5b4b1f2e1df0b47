"""`assistant serve`: the websocket server (protocol v1) and the demo page."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from asr.transcriber import SERVED_ADAPTER
from assistant.errors import UserError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="websocket server and demo page",
        description="Serve protocol v1 at ws://HOST:PORT/ws and the demo page at http://HOST:PORT/.",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="interface (0.0.0.0: every one; default %(default)s)"
    )
    p.add_argument(
        "--port", type=int, default=8765, help="port (0: any free one; default %(default)s)"
    )
    p.add_argument(
        "--token", default=None, help="access token clients must give (?token= or in start)"
    )
    p.add_argument(
        "--allowed-origins", nargs="*", default=[], metavar="ORIGIN",
        help="browser origins allowed besides the page's own, e.g. https://example.com ('*': any)",
    )  # fmt: skip
    p.add_argument(
        "--max-sessions", type=int, default=16, help="concurrent sessions (default %(default)s)"
    )
    p.add_argument(
        "--max-frame-bytes",
        type=int,
        default=65536,
        help="largest binary frame (default %(default)s)",
    )
    p.add_argument(
        "--max-utterance-s",
        type=float,
        default=15.0,
        help="utterance length limit (default %(default)s)",
    )
    p.add_argument(
        "--idle-timeout-s",
        type=float,
        default=60.0,
        help="close idle sessions after (default %(default)s)",
    )
    p.add_argument(
        "--start-timeout-s",
        type=float,
        default=15.0,
        help="close connections that send no start for this long (default %(default)s)",
    )
    p.add_argument(
        "--auth-timeout-s",
        type=float,
        default=5.0,
        help="with --token: time for the first message to bring it (default %(default)s)",
    )
    p.add_argument(
        "--send-timeout-s",
        type=float,
        default=10.0,
        help="close a client that takes no event for this long: it stopped reading "
        "(default %(default)s)",
    )
    p.add_argument(
        "--answer-timeout-s",
        type=float,
        default=3.0,
        help="longest wait for the inventory database per answer (default %(default)s)",
    )
    p.add_argument(
        "--db-retry-s",
        type=float,
        default=10.0,
        help="after the database failed: answer without it this long, then try again "
        "(default %(default)s)",
    )
    p.add_argument(
        "--endpoint-silence-ms",
        type=int,
        default=500,
        help="silence that ends an utterance (default %(default)s)",
    )
    p.add_argument(
        "--partial-interval-s",
        type=float,
        default=0.5,
        help="audio between partial decodes (default %(default)s)",
    )
    p.add_argument("--no-partials", action="store_true", help="send finals only (saves CPU)")
    p.add_argument(
        "--batch-wait-ms",
        type=float,
        default=5.0,
        help="how long a final waits for others (default %(default)s)",
    )
    p.add_argument(
        "--max-batch", type=int, default=None,
        help="finals decoded together (default: 8 on CUDA, 1 on CPU)",
    )  # fmt: skip
    p.add_argument(
        "--continuous-batching",
        choices=["auto", "on", "off"],
        default="auto",
        help="finals join the running PyTorch beam search at each decoder step instead of "
        "waiting for the batch before them (auto: on for the PyTorch backend on CUDA; "
        "default %(default)s)",
    )
    p.add_argument("--nbest", type=int, default=5, help="readings per final (default %(default)s)")
    p.add_argument("--no-rescore", action="store_true", help="first-pass order only")
    p.add_argument(
        "--no-phrases",
        action="store_true",
        help="decode unbiased: no catalog phrases unless a client sends its own",
    )
    p.add_argument(
        "--adapter",
        default=SERVED_ADAPTER or "none",
        metavar="NAME",
        help="first-pass adapter merged into Whisper base by `assistant models assemble` "
        "(asr/data/adapters/NAME), or none for Whisper base as published (default %(default)s)",
    )
    p.add_argument(
        "--asr-backend",
        choices=["auto", "ctranslate2", "torch"],
        default="auto",
        help="first-pass engine: CTranslate2, or PyTorch for CUDA 13 GPUs (default %(default)s)",
    )
    p.add_argument(
        "--window-s",
        type=float,
        default=10.0,
        help="Whisper encoder window in seconds, grown to fit long utterances (default %(default)s)",
    )
    p.add_argument("--store", default="1", help="default store id (default %(default)s)")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    from asr.streaming import StreamingConfig
    from assistant.server import ServerConfig
    from assistant.session import SessionLimits

    try:
        streaming = StreamingConfig(
            endpoint_silence_ms=args.endpoint_silence_ms,
            partial_interval_s=args.partial_interval_s,
            partials=not args.no_partials,
            max_utterance_s=args.max_utterance_s,
        )
    except ValueError as error:
        raise UserError(f"{error}; fix the option") from error
    if args.max_batch is not None and args.max_batch < 1:
        raise UserError("--max-batch must be at least 1")
    if args.max_frame_bytes < 1024 or args.max_sessions < 1 or args.idle_timeout_s <= 0:
        raise UserError(
            "--max-frame-bytes must be >= 1024, --max-sessions >= 1, --idle-timeout-s > 0"
        )
    timeouts = ("start_timeout_s", "auth_timeout_s", "send_timeout_s", "answer_timeout_s")
    for name in (*timeouts, "db_retry_s"):
        if not getattr(args, name) > 0:
            raise UserError(f"--{name.replace('_', '-')} must be > 0")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be 0..65535, got {args.port}")
    return ServerConfig(
        host=args.host,
        port=args.port,
        token=args.token or None,
        allowed_origins=tuple(args.allowed_origins),
        max_sessions=args.max_sessions,
        limits=SessionLimits(
            max_frame_bytes=args.max_frame_bytes,
            idle_timeout_s=args.idle_timeout_s,
            start_timeout_s=args.start_timeout_s,
            auth_timeout_s=args.auth_timeout_s,
            send_timeout_s=args.send_timeout_s,
        ),
        answer_timeout_s=args.answer_timeout_s,
        db_retry_s=args.db_retry_s,
        streaming=streaming,
        batch_wait_ms=args.batch_wait_ms,
        max_batch=args.max_batch,
        continuous_batching={"auto": None, "on": True, "off": False}[args.continuous_batching],
        default_store=str(args.store),
    )


def run(args: argparse.Namespace) -> int:
    from assistant.pipeline import PipelineConfig, load_pipeline
    from assistant.server import AssistantServer

    config = build_config(args)
    # A database URL that cannot be parsed would leave every session `unavailable`: say so now.
    # (A database that is down, or a file not there yet, is reported per answer instead.)
    from assistant.inventory.db import parse_url
    from assistant.paths import database_url

    parse_url(database_url())
    # Fail before binding when Whisper is not assembled: a clear message beats a 503 forever.
    try:
        from asr.models import ModelError, resolve_model_dir

        resolve_model_dir(None, None if args.adapter == "none" else args.adapter)
    except ModelError as error:
        raise UserError(f"{error}") from error
    pipeline_config = PipelineConfig(
        nbest=args.nbest,
        rescore=not args.no_rescore,
        phrases=not args.no_phrases,
        window_s=args.window_s,
        asr_backend=args.asr_backend,
        adapter=None if args.adapter == "none" else args.adapter,
    )
    # A server's progress (models loaded, shutting down) belongs in its log.
    for name in ("assistant", "asr", "rescoring", "nlu"):
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    server = AssistantServer(config, pipeline_factory=lambda: load_pipeline(pipeline_config))

    async def main() -> None:
        try:
            await server.start()
        except OSError as error:
            raise UserError(
                f"cannot listen on {config.host}:{config.port} ({error.strerror}); try another --port"
            ) from error
        print(
            f"assistant: serving http://{config.host}:{server.port}/ (websocket /ws); loading models...",
            file=sys.stderr,
        )
        stop = asyncio.Event()
        import signal

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("assistant: shutting down (finishing utterances in flight)", file=sys.stderr)
        await server.shutdown()

    asyncio.run(main())
    return 0
