"""`assistant serve`: the websocket server (protocol v1) and the demo page."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys

from assistant.domain import DOMAIN_HELP
from assistant.errors import UserError
from assistant.options import ConfigOptions, Flag, build

log = logging.getLogger(__name__)


# Help for the options generated from the config dataclasses (assistant.options); each default
# is the dataclass's own. A field without a line here still gets its option.
SERVER_HELP = {
    "host": "interface (0.0.0.0: every one)",
    "port": "port (0: any free one)",
    "token": "access token clients must give (?token= or in start)",
    "allowed_origins": "browser origins allowed besides the page's own, e.g. "
    "https://example.com ('*': any)",
    "max_sessions": "concurrent sessions",
    "batch_wait_ms": "how long a final waits for others",
    "max_batch": "finals decoded together (default: 8 on CUDA, 1 on CPU)",
    "continuous_batching": "finals join the running PyTorch beam search at each decoder step "
    "instead of waiting for the batch before them (auto: on for the PyTorch backend on CUDA)",
    "default_store": "default store id",
    "shutdown_grace_s": "SIGTERM: time allowed to finish the utterances in flight",
    "admit_wait_s": "at --max-sessions, how long a new connection waits for a slot",
    "answer_timeout_s": "longest wait for the inventory database per answer",
    "db_retry_s": "after the database failed: answer without it this long, then try again",
}
LIMITS_HELP = {
    "max_frame_bytes": "largest binary frame",
    "max_buffered_s": "audio received but not yet through the VAD",
    "idle_timeout_s": "close idle sessions after",
    "max_control_bytes": "largest text (control) frame",
    "max_json_depth": "deepest nesting of a control frame",
    "start_timeout_s": "close connections that send no start for this long",
    "auth_timeout_s": "with --token: time for the first message to bring it",
    "send_timeout_s": "close a client that takes no event for this long: it stopped reading",
}
STREAMING_HELP = {
    "vad_threshold": "a VAD window is speech at or above this probability",
    "vad_neg_threshold": "... and silence below this one",
    "endpoint_silence_ms": "silence that ends an utterance when its text has no verdict",
    "endpoint_complete_ms": "... when the text heard is a complete query",
    "endpoint_incomplete_ms": "... when it is not (a trailing 'the'/'de', no entity)",
    "speculate_ms": "silence that starts the final decode early (0: off)",
    "min_speech_ms": "shorter speech does not start an utterance",
    "pre_roll_ms": "audio kept before the speech onset",
    "speech_pad_ms": "audio kept after the last speech",
    "complete_confidence": "intent score at which a parsed query counts as complete",
    "partial_interval_s": "audio between partial decodes",
    "partials": "send finals only (saves CPU)",
    "max_utterance_s": "utterance length limit",
}
PIPELINE_HELP = {
    "nbest": "readings per final",
    "rescore": "first-pass order only",
    "cpu_threads": "CTranslate2 threads (0: min(4, cores))",
    "partial_beam": "beam of the partial decodes",
    "widen_beam": "re-decode with wider beams until every final has --nbest readings",
    "window_s": "Whisper encoder window in seconds, grown to fit long utterances",
    "phrases": "decode unbiased: no catalog phrases unless a client sends its own",
    "slot_bonus_nats": "a pack's joint n-best reading: nats per slot filled with a pack value "
    "(0: the rescored order)",
    "domain": DOMAIN_HELP,
}
ENGINE_HELP = {
    "engine": "local: one process holds every model; ray: the first pass as a Ray Serve "
    "deployment behind websocket front-end replicas (pip install '.[ray]'; docs/scale_out.md)",
    "ray_address": "ray: join this running cluster (auto, HOST:6379, ray://HOST:10001) instead "
    "of starting a local Ray",
    "ray_cpus": "ray, local cluster: logical CPUs it offers (default: the machine's)",
    "frontend_replicas": "ray: websocket front ends, with rescoring, NLU and answers in the "
    "colocated layout (they share --port on a host)",
    "frontend_cpus": "ray: CPUs reserved per front end",
    "first_pass_replicas": "ray: Whisper replicas",
    "first_pass_max_replicas": "ray: autoscale the first pass up to this many on queue length "
    "(0: fixed)",
    "first_pass_cpus": "ray: CPUs reserved per Whisper replica",
    "first_pass_gpus": "ray: GPUs per Whisper replica (default: 1 when the cluster has one)",
    "stage_layout": "ray: colocated: rescoring, NLU and answers in the front ends (one "
    "deployment call per final, the fastest on one machine); split: as the SecondPass and "
    "Understand deployments, scaled apart (docs/loadtest_layouts.md)",
    "second_pass_replicas": "ray, --stage-layout split: RescoreBERT replicas",
    "understand_replicas": "ray, --stage-layout split: NLU + answer replicas",
    "stage_cpus": "ray, --stage-layout split: CPUs reserved per second-pass and NLU/answer replica",
    "stage_retries": "ray: times a stage call is sent again when its replica died",
    "call_timeout_s": "ray: longest wait for a stage call of a final, retries included",
    "partial_timeout_s": "ray: longest wait for a partial decode",
    "deploy_timeout_s": "ray: longest wait for the replicas to load and listen",
}
DEVICES = ("auto", "cpu", "cuda")


def first_pass_flags() -> dict:
    """The options `serve` and `transcribe` spell alike (PipelineConfig fields)."""
    return {
        "asr_backend": Flag(
            "first-pass engine: CTranslate2, or PyTorch for CUDA 13 GPUs",
            choices=("auto", "ctranslate2", "torch"),
        ),
        "adapter": Flag(
            "first-pass adapter merged into Whisper base by `assistant models assemble` "
            "(asr/data/adapters/NAME), or none for Whisper base as published",
            metavar="NAME",
            to_arg=lambda value: value or "none",
            from_arg=lambda arg: None if arg == "none" else arg,
        ),
        **{
            name: Flag(f"where the {what} runs", choices=DEVICES)
            for name, what in (
                ("device", "first pass"),
                ("rescore_device", "rescorer"),
                ("nlu_device", "NLU student"),
            )
        },
    }


CONTINUOUS = {"auto": None, "on": True, "off": False}


def register(subparsers) -> None:
    from asr.streaming import StreamingConfig
    from assistant.engine import ENGINES, STAGE_LAYOUTS, EngineConfig
    from assistant.pipeline import PipelineConfig
    from assistant.server import ServerConfig
    from assistant.session import SessionLimits

    p = subparsers.add_parser(
        "serve",
        help="websocket server and demo page",
        description="Serve protocol v1 at ws://HOST:PORT/ws and the demo page at http://HOST:PORT/.",
    )
    server_flags = {
        **SERVER_HELP,
        "allowed_origins": Flag(SERVER_HELP["allowed_origins"], metavar="ORIGIN"),
        "token": Flag(SERVER_HELP["token"], from_arg=lambda arg: arg or None),
        "continuous_batching": Flag(
            SERVER_HELP["continuous_batching"],
            choices=tuple(CONTINUOUS),
            to_arg={v: k for k, v in CONTINUOUS.items()}.get,
            from_arg=CONTINUOUS.get,
        ),
        "default_store": Flag(
            SERVER_HELP["default_store"], option="--store", metavar="ID", from_arg=str
        ),
    }
    pipeline_fields = {f.name for f in dataclasses.fields(PipelineConfig)}
    pipeline_flags = {
        **PIPELINE_HELP,
        **{k: v for k, v in first_pass_flags().items() if k in pipeline_fields},
    }
    engine_flags = {
        **ENGINE_HELP,
        "engine": Flag(ENGINE_HELP["engine"], choices=ENGINES),
        "stage_layout": Flag(ENGINE_HELP["stage_layout"], choices=STAGE_LAYOUTS),
    }
    p.set_defaults(
        func=run,
        options=(
            ConfigOptions(
                p,
                ServerConfig,
                server_flags,
                skip=("limits", "streaming", "web_dir"),
                title="server",
            ),
            ConfigOptions(p, SessionLimits, LIMITS_HELP, title="session limits"),
            ConfigOptions(p, StreamingConfig, STREAMING_HELP, title="endpointing and partials"),
            ConfigOptions(
                p, PipelineConfig, pipeline_flags, skip=("database_url",), title="pipeline"
            ),
        ),
        engine_options=ConfigOptions(p, EngineConfig, engine_flags, title="engine"),
    )


def build_config(args: argparse.Namespace):
    """(ServerConfig, PipelineConfig) from the options; a bad value is a UserError."""
    from assistant.server import ServerConfig

    server, limits, streaming, pipeline = args.options

    options = {**server.options, **limits.options}
    config = build(
        ServerConfig,
        {**server.values(args), "limits": limits.build(args), "streaming": streaming.build(args)},
        options,
    )
    return config, pipeline.build(args)


def build_engine(args: argparse.Namespace):
    """EngineConfig from the options; a bad value is a UserError."""
    return args.engine_options.build(args)


def run(args: argparse.Namespace) -> int:
    from assistant.pipeline import load_pipeline
    from assistant.server import AssistantServer, wait_for_stop_signal

    config, pipeline_config = build_config(args)
    engine = build_engine(args)
    # A database URL that cannot be parsed would leave every session `unavailable`: say so now.
    # (A database that is down, or a file not there yet, is reported per answer instead.)
    from assistant.env import database_url
    from assistant.inventory.db import parse_url

    parse_url(database_url())
    # Fail before binding when Whisper is not assembled: a clear message beats a 503 forever.
    try:
        from asr.models import ModelError, resolve_model_dir

        resolve_model_dir(None, pipeline_config.adapter)
    except ModelError as error:
        raise UserError(f"{error}") from error
    # A server's progress (models loaded, shutting down) belongs in its log.
    for name in ("assistant", "asr", "rescoring", "nlu"):
        logging.getLogger(name).setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if engine.engine == "ray":
        return _run_ray(engine, config, pipeline_config)
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
        await wait_for_stop_signal()
        print("assistant: shutting down (finishing utterances in flight)", file=sys.stderr)
        await server.shutdown()

    asyncio.run(main())
    return 0


def _run_ray(engine, config, pipeline_config) -> int:
    """--engine ray: the same server code as front-end replicas over Ray Serve deployments."""
    try:
        from assistant import ray_engine
    except ImportError as error:
        raise UserError(
            f"--engine ray needs Ray Serve ({error}); install it with pip install '.[ray]'"
        ) from error
    try:
        ray_engine.serve_forever(engine, config, pipeline_config)
    except (RuntimeError, ConnectionError) as error:
        raise UserError(f"{error}") from error
    return 0
