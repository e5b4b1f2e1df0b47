"""`assistant transcribe FILE...`: Whisper n-best (+ second-pass rescoring when a model exists).

JSON contract (DESIGN.md), one object per file and line:
{"file", "language", "text", "first_pass_text", "nbest": [{"text", "asr_score", "rescore_score", "score"}]}

What is decoded: the utterances a live session would cut from the file (asr.streaming.segment:
the same 16 kHz samples, the same VAD and endpointing, in stream time), each one exactly the
samples a websocket final of that utterance decodes. A file of one utterance gives the object
above; of several, their readings joined and "segments" (each utterance's own record with its
start_s / end_s, as for a long file); of none (only silence or noise: a stream sends no final),
empty readings and "segments": []. `--whole-file` decodes the whole file instead (in pieces of
at most 30 s, Whisper's window), as before segmentation was shared with the server.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from assistant import events
from assistant.errors import UserError
from assistant.options import ConfigOptions, Flag, build

if TYPE_CHECKING:
    import numpy as np

    from asr.streaming import StreamingConfig
    from asr.vad import VoiceActivity

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    from asr.transcriber import TranscriberConfig
    from assistant.commands.serve import DEVICES, PIPELINE_HELP, first_pass_flags
    from assistant.pipeline import PipelineConfig

    parser = subparsers.add_parser(
        "transcribe", help="transcribe audio files to an n-best list (Whisper + rescoring)"
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="WAV, FLAC, MP3, OGG or WebM")
    parser.add_argument(
        "--no-rescore", action="store_true", help="first pass only (rescore_score null)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per file and line")
    parser.add_argument(
        "--whole-file",
        action="store_true",
        help="decode the whole file (in pieces of at most 30 s) instead of the utterances a "
        "live session would cut from it",
    )
    phrases = parser.add_mutually_exclusive_group()
    phrases.add_argument(
        "--phrases",
        "--bias-file",
        dest="phrases",
        type=Path,
        default=None,
        metavar="FILE",
        help="phrases to bias the decoder toward, one per line (UTF-8); a long list is "
        "narrowed per clip to what a draft decode heard (default: the store's catalog)",
    )
    phrases.add_argument(
        "--no-phrases", action="store_true", help="decode unbiased (no catalog phrases)"
    )
    parser.add_argument(
        "--rescore-device",
        choices=DEVICES,
        default="auto",
        help="where the rescorer runs (default %(default)s)",
    )
    shared = first_pass_flags()
    # The first-pass settings the server has too take the server's defaults (PipelineConfig:
    # n-best 5, a 10 s window grown to fit, the served adapter); the rest are TranscriberConfig's.
    pipeline = ConfigOptions(
        parser,
        PipelineConfig,
        {
            "nbest": "distinct readings per file",
            "window_s": PIPELINE_HELP["window_s"] + " (30: Whisper's own)",
            "cpu_threads": PIPELINE_HELP["cpu_threads"],
            "asr_backend": shared["asr_backend"],
            "adapter": shared["adapter"],
            "domain": PIPELINE_HELP["domain"],
        },
        only=("nbest", "window_s", "asr_backend", "adapter", "cpu_threads", "domain"),
    )
    first_pass = ConfigOptions(
        parser,
        TranscriberConfig,
        {
            "model_dir": Flag(
                "any local CTranslate2 Whisper directory (default: the assembled Whisper base)",
                option="--asr-model",
                metavar="DIR",
                type=Path,
            ),
            "language": Flag(
                "language of the speech", choices=("auto", *TranscriberConfig().languages)
            ),
            "device": shared["device"],
            "beam_size": "beam width of the decoder, widened to 2 x --nbest",
            "compute_type": "CTranslate2 compute type (default: int8 on CPU, float16 on CUDA)",
        },
        only=("model_dir", "language", "beam_size", "device", "compute_type"),
    )
    parser.set_defaults(
        func=run, options=(pipeline, first_pass), segmentation=segmentation_flags(parser)
    )


# The StreamingConfig fields that decide which samples an utterance holds (`serve` has the
# same flags); endpoint verdicts, speculation and partials only decide when a final is sent.
SEGMENTATION = (
    "vad_threshold", "vad_neg_threshold", "endpoint_silence_ms", "min_speech_ms",
    "pre_roll_ms", "speech_pad_ms", "max_utterance_s",
)  # fmt: skip


def segmentation_flags(parser: argparse.ArgumentParser) -> ConfigOptions:
    from asr.streaming import StreamingConfig
    from assistant.commands.serve import STREAMING_HELP

    return ConfigOptions(
        parser, StreamingConfig, STREAMING_HELP, only=SEGMENTATION,
        title="segmentation (as `serve`; ignored with --whole-file)",
    )  # fmt: skip


def read_phrases_file(path: Path) -> tuple[str, ...]:
    """One phrase per line; blank lines and lines starting with # are skipped; the limits of
    assistant.phrases.check_phrases apply."""
    from assistant.phrases import PhraseError, check_phrases

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UserError(f"cannot read the phrases file {path}: {error.strerror}") from error
    except UnicodeDecodeError as error:
        raise UserError(f"the phrases file {path} is not UTF-8 text") from error
    kept = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    try:
        return check_phrases(kept)
    except PhraseError as error:
        raise UserError(f"{path}: {error}") from error


def load_phrases(args: argparse.Namespace, pack):
    """The phrase selector for every file: the --phrases list, none, or the domain's (the
    store's catalog for retail)."""
    from assistant.phrases import PhraseIndex
    from assistant.pipeline import domain_phrases

    if args.no_phrases:
        return None
    if args.phrases is not None:
        return PhraseIndex.from_lines(read_phrases_file(args.phrases))
    return domain_phrases(pack, None)


def load_reranker(no_rescore: bool, device: str = "auto", pack=None):
    """The second pass (a Reranker whose .rank(nbest) fills rescore_score and score), or None:
    asked for none, or no rescorer model installed (first pass only). Its catalog bonus reads
    the domain's words (pack; default retail: the gazetteer of the default inventory, the
    curated lists when the database is down)."""
    if no_rescore:
        return None
    from assistant.domain import load_domain
    from assistant.inventory import Inventory
    from assistant.pipeline import domain_gazetteer
    from rescoring.runtime import load_default_reranker

    pack = pack or load_domain()
    if not pack.second_pass:  # the pack measured the shipped rescorer to hurt its domain
        return None
    inventory = Inventory() if pack.is_retail else None
    return load_default_reranker(device=device, gazetteer=domain_gazetteer(pack, inventory))


SEGMENT_SAMPLES = 30 * 16_000  # Whisper's window: 30 s of 16 kHz audio


def pieces(
    audio: np.ndarray, streaming: StreamingConfig | None = None, vad: VoiceActivity | None = None
) -> list[tuple[np.ndarray, float, float]]:
    """What `assistant transcribe` decodes of a file's audio (float32 [n], 16 kHz), as
    [(samples, start_s, end_s)] in file order.

    streaming: an asr.streaming.StreamingConfig: the utterances a live session with those
    settings cuts (asr.streaming.segment; vad: its detector, default Silero), each with its
    speech onset and end; none when the file holds no speech. None (--whole-file): the whole
    file in equal consecutive pieces of at most 30 s (so that none is a fraction of a second
    Whisper would make words of), each with its own bounds."""
    if streaming is not None:
        from asr.streaming import segment

        return [(e.audio, e.start_s, e.end_s) for e in segment(audio, streaming, vad)]
    size = -(-len(audio) // -(-len(audio) // SEGMENT_SAMPLES)) if len(audio) else 1
    return [
        (audio[start : start + size], start / 16_000, min(start + size, len(audio)) / 16_000)
        for start in range(0, max(len(audio), 1), size)
    ]


def run(args: argparse.Namespace) -> int:
    from asr.audio import AudioError, decode_audio
    from asr.backends import load_transcriber
    from asr.models import ModelError
    from asr.transcriber import TranscriberConfig
    from assistant.domain import load_domain

    pipeline, first_pass = args.options
    shared = pipeline.values(args)
    backend = shared.pop("asr_backend")
    pack = load_domain(shared.pop("domain"))
    if args.model_dir:
        shared["adapter"] = None  # a directory of one's own is decoded as it is
    config = build(
        TranscriberConfig,
        {**first_pass.values(args), **shared},
        {**pipeline.options, **first_pass.options},
    )
    streaming = None if args.whole_file else args.segmentation.build(args)
    phrases = load_phrases(args, pack)
    # Decode every file before loading Whisper: a bad file is reported at once, and the
    # good ones are still transcribed.
    audios: list[tuple[str, object]] = []
    failed = 0
    for file in args.files:
        if not Path(file).is_file():  # said, and the other files still transcribed
            print(
                f"assistant transcribe: error: no such file: {file}; check the path",
                file=sys.stderr,
            )
            failed += 1
            continue
        try:
            audios.append((file, decode_audio(file)))
        except AudioError as error:
            print(f"assistant transcribe: error: {error}", file=sys.stderr)
            failed += 1
    if not audios:
        return 2
    try:
        transcriber = load_transcriber(config, backend=backend)
    except ModelError as error:
        raise UserError(str(error)) from error
    except RuntimeError as error:  # e.g. --device cuda without a usable GPU
        raise UserError(f"{error}; try --device cpu") from error
    reranker = load_reranker(args.no_rescore, args.rescore_device, pack)

    for file, audio in audios:
        nbests, spans = [], []
        for samples, start_s, end_s in pieces(audio, streaming):
            nbest = transcriber.nbest(
                samples, language=config.language, nbest=config.nbest, phrases=phrases
            )
            nbests.append(reranker.rank(nbest) if reranker is not None else nbest)
            spans.append((start_s, end_s))
        if not nbests:
            print(
                f"assistant transcribe: {file}: no speech found (a stream would send no final); "
                "--whole-file decodes the whole file",
                file=sys.stderr,
            )
            language = None if config.language == "auto" else config.language
            record = events.no_speech(file, language)
        elif len(nbests) == 1:
            record = events.transcription(file, nbests[0])
        else:
            record = events.joined_transcription(file, nbests, spans)
        if args.json:
            print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            print(f"{file} [{record['language']}]: {record['text']}")
            for rank, hyp in enumerate(record["nbest"], 1):
                rescore = (
                    "" if hyp["rescore_score"] is None else f" rescore {hyp['rescore_score']:.3f}"
                )
                print(
                    f"  {rank}. {hyp['score']:8.3f}  (asr {hyp['asr_score']:.3f}{rescore})  {hyp['text']}"
                )
    return 2 if failed else 0
