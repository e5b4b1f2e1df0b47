"""Options generated from the config dataclasses (assistant.options): the defaults are the
dataclasses' own, every option `serve` and `transcribe` had still parses, a bad value is a
UserError naming the option."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from assistant.errors import UserError
from assistant.options import ConfigOptions, Flag


def _parse(command: str, *argv: str) -> argparse.Namespace:
    from assistant.cli import build_parser

    args = [command, *argv]
    return build_parser(args).parse_args(args)


def test_serve_without_options_builds_the_dataclass_defaults():
    from asr.streaming import StreamingConfig
    from assistant.commands.serve import build_config
    from assistant.pipeline import PipelineConfig
    from assistant.server import ServerConfig
    from assistant.session import SessionLimits

    server, pipeline = build_config(_parse("serve"))
    assert server == ServerConfig(limits=SessionLimits(), streaming=StreamingConfig())
    assert pipeline == PipelineConfig()


SERVE_FLAGS = [
    "--host", "0.0.0.0", "--port", "0", "--token", "t", "--allowed-origins", "https://a.b",
    "--max-sessions", "2", "--max-frame-bytes", "4096", "--max-utterance-s", "9",
    "--idle-timeout-s", "5", "--start-timeout-s", "5", "--auth-timeout-s", "2",
    "--send-timeout-s", "3", "--answer-timeout-s", "1", "--db-retry-s", "4",
    "--endpoint-silence-ms", "400", "--partial-interval-s", "0.4", "--no-partials",
    "--batch-wait-ms", "2", "--max-batch", "4", "--continuous-batching", "off", "--nbest", "3",
    "--no-rescore", "--no-phrases", "--adapter", "none", "--asr-backend", "ctranslate2",
    "--window-s", "12", "--store", "7",
]  # fmt: skip


def test_every_serve_option_of_before_still_means_the_same():
    from assistant.commands.serve import build_config

    server, pipeline = build_config(_parse("serve", *SERVE_FLAGS))
    assert (server.host, server.port, server.token) == ("0.0.0.0", 0, "t")
    assert server.allowed_origins == ("https://a.b",) and server.max_sessions == 2
    assert server.limits.max_frame_bytes == 4096 and server.limits.idle_timeout_s == 5
    assert (server.limits.start_timeout_s, server.limits.auth_timeout_s) == (5, 2)
    assert server.limits.send_timeout_s == 3
    assert (server.answer_timeout_s, server.db_retry_s) == (1, 4)
    assert server.streaming.max_utterance_s == 9 and server.streaming.endpoint_silence_ms == 400
    assert server.streaming.partial_interval_s == 0.4 and not server.streaming.partials
    assert (server.batch_wait_ms, server.max_batch) == (2, 4)
    assert server.continuous_batching is False and server.default_store == "7"
    assert (pipeline.nbest, pipeline.rescore, pipeline.phrases) == (3, False, False)
    assert (pipeline.adapter, pipeline.asr_backend, pipeline.window_s) == (None, "ctranslate2", 12)
    on = build_config(_parse("serve", "--continuous-batching", "on", "--token", ""))[0]
    assert on.continuous_batching is True and on.token is None


def test_transcribe_takes_the_servers_first_pass_defaults():
    from assistant.pipeline import PipelineConfig

    args = _parse("transcribe", "a.wav")
    pipeline, first_pass = args.options
    defaults = PipelineConfig()
    assert pipeline.values(args) == {
        "nbest": defaults.nbest,
        "window_s": defaults.window_s,  # 10 s, grown to fit: one default for both commands
        "asr_backend": defaults.asr_backend,
        "adapter": defaults.adapter,
        "cpu_threads": defaults.cpu_threads,
        "domain": defaults.domain,  # the pack whose phrase list biases the first pass
    }
    assert first_pass.values(args) == {
        "model_dir": None,
        "language": "auto",
        "beam_size": 8,
        "device": "auto",
        "compute_type": "default",
    }
    args = _parse(
        "transcribe", "a.wav", "--nbest", "4", "--language", "es", "--asr-model", "/m",
        "--beam-size", "3", "--device", "cpu", "--compute-type", "int8", "--cpu-threads", "2",
        "--window-s", "30", "--asr-backend", "torch", "--adapter", "store-v1",
        "--rescore-device", "cpu", "--bias-file", "p.txt", "--json", "--no-rescore",
    )  # fmt: skip
    pipeline, first_pass = args.options
    assert (
        pipeline.values(args)["window_s"] == 30 and pipeline.values(args)["adapter"] == "store-v1"
    )
    assert first_pass.values(args)["model_dir"] == Path("/m") and args.rescore_device == "cpu"
    assert args.phrases == Path("p.txt") and args.json and args.no_rescore


@dataclass(frozen=True)
class Toy:
    size: int = 3
    ratio: float = 0.5
    loud: bool = True
    quiet: bool = False
    name: str | None = None
    tags: tuple[str, ...] = ()
    mode: bool | None = None

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("size must be >= 1")


def test_the_rule_and_its_exceptions():
    parser = argparse.ArgumentParser()
    modes = {"auto": None, "on": True, "off": False}
    options = ConfigOptions(
        parser,
        Toy,
        {
            "size": "how many",
            "mode": Flag(choices=tuple(modes), to_arg={None: "auto"}.get, from_arg=modes.get),
        },
    )
    assert options.build(parser.parse_args([])) == Toy()
    built = options.build(
        parser.parse_args(
            [
                "--size",
                "5",
                "--ratio",
                "2",
                "--no-loud",
                "--quiet",
                "--name",
                "x",
                "--tags",
                "a",
                "b",
                "--mode",
                "on",
            ]
        )  # fmt: skip
    )
    assert built == Toy(5, 2.0, False, True, "x", ("a", "b"), True)
    with pytest.raises(UserError, match="--size must be >= 1"):
        options.build(parser.parse_args(["--size", "0"]))
    with pytest.raises(TypeError, match="no field"):
        ConfigOptions(argparse.ArgumentParser(), Toy, only=("colour",))
