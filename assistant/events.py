"""The wire format: the one module that builds every JSON shape the assistant sends.

Protocol v1 events (docs/protocol.md: ready, partial, final, error, end), with their error and
websocket close codes, and the CLI's JSON records of DESIGN.md (`transcribe --json`,
`ask --json`). The stages' own dataclasses give the parts (Hypothesis.to_dict,
NluResult.to_dict, Answer.to_dict); this module puts them together.
"""

from __future__ import annotations

import json
from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asr.nbest import NBest
    from asr.streaming import Endpoint
    from assistant.answer import Answer
    from assistant.pipeline import FinalResult
    from nlu.schema import NluResult

PROTOCOL_VERSION = 1


class ErrorCode(StrEnum):
    """`code` of an `error` event. FATAL ones are followed by a close (see CLOSE_FOR)."""

    BAD_JSON = "bad_json"  # a text frame that is not a JSON object
    UNKNOWN_TYPE = "unknown_type"  # a JSON object whose "type" is not start/stop
    BAD_MESSAGE = "bad_message"  # a known type with invalid fields (language, store, ...)
    BAD_SAMPLE_RATE = "bad_sample_rate"  # sample_rate not an integer in [8000, 48000]
    NOT_STARTED = "not_started"  # audio or stop before start
    ALREADY_STARTED = "already_started"  # start while a stream is running
    ODD_LENGTH = "odd_length"  # a binary frame with an odd number of bytes (not 16-bit PCM)
    UTTERANCE_TOO_LONG = "utterance_too_long"  # speech longer than the limit: cut, final sent
    DB_UNAVAILABLE = "db_unavailable"  # the inventory database could not be reached for this answer
    PIPELINE = "pipeline_error"  # a stage failed on this utterance; the session goes on
    # fatal: the server closes the connection after sending these
    FRAME_TOO_LARGE = "frame_too_large"  # a binary frame or a text frame over its maximum
    OVERLOADED = "overloaded"  # the client sends audio faster than it can be processed
    TOO_MANY_SESSIONS = "too_many_sessions"
    UNAUTHORIZED = "unauthorized"
    IDLE_TIMEOUT = "idle_timeout"
    START_TIMEOUT = "start_timeout"  # no start within start_timeout_s of connecting
    # The client stopped reading: an event waited send_timeout_s. No event is sent (it could
    # not be read); the connection is closed, then dropped.
    SLOW_CLIENT = "slow_client"
    UNAVAILABLE = "unavailable"  # models failed to load
    SHUTTING_DOWN = "shutting_down"


class CloseCode(IntEnum):
    """Websocket close codes the server uses (RFC 6455 section 7.4, 4000-4999 private)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutting down (after in-flight utterances are answered)
    INVALID_DATA = 1007  # text frame that is not UTF-8 (sent by the websockets library)
    POLICY_VIOLATION = 1008  # missing or wrong access token
    MESSAGE_TOO_BIG = 1009  # frame over the maximum
    INTERNAL_ERROR = 1011  # models unavailable
    TRY_AGAIN_LATER = 1013  # too many sessions, or audio arriving faster than processed
    IDLE_TIMEOUT = 4408  # nothing received for idle_timeout_s, or no start in start_timeout_s
    SLOW_CLIENT = 4429  # the client does not read its events (send_timeout_s)


CLOSE_FOR: dict[ErrorCode, CloseCode] = {
    ErrorCode.FRAME_TOO_LARGE: CloseCode.MESSAGE_TOO_BIG,
    ErrorCode.OVERLOADED: CloseCode.TRY_AGAIN_LATER,
    ErrorCode.TOO_MANY_SESSIONS: CloseCode.TRY_AGAIN_LATER,
    ErrorCode.UNAUTHORIZED: CloseCode.POLICY_VIOLATION,
    ErrorCode.IDLE_TIMEOUT: CloseCode.IDLE_TIMEOUT,
    ErrorCode.START_TIMEOUT: CloseCode.IDLE_TIMEOUT,
    ErrorCode.SLOW_CLIENT: CloseCode.SLOW_CLIENT,
    ErrorCode.UNAVAILABLE: CloseCode.INTERNAL_ERROR,
    ErrorCode.SHUTTING_DOWN: CloseCode.GOING_AWAY,
}


def _dump(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def ready(session: str, sample_rate: int, language: str, store: str) -> str:
    return _dump(
        {
            "type": "ready",
            "session": session,
            "sample_rate": sample_rate,
            "language": language,
            "store": store,
            "protocol": PROTOCOL_VERSION,
        }
    )


def partial(utterance: int, text: str) -> str:
    return _dump({"type": "partial", "utterance": utterance, "text": text})


def final_timings(result: FinalResult, wait_ms: float = 0.0) -> dict[str, float]:
    """`timings_ms` of a final (ms, one decimal): wait for the batch, each stage, total."""
    timings = {"wait": wait_ms, **result.timings_ms}
    timings["total"] = timings.get("total", 0.0) + wait_ms
    return {k: round(v, 1) for k, v in timings.items()}


def reading(nbest: NBest) -> dict[str, Any]:
    """What was heard: text (the best reading after rescoring), first_pass_text, language and
    the n-best list."""
    first = nbest.first_pass_best
    return {
        "text": nbest.text,
        "first_pass_text": first.text if first else "",
        "language": nbest.language,
        "nbest": [h.to_dict() for h in nbest.hypotheses],
    }


def final_fields(result: FinalResult, wait_ms: float = 0.0) -> dict[str, Any]:
    """What a `final` says about the utterance: text, first_pass_text, language, nbest,
    intent, entities, answer, timings_ms."""
    nlu = result.nlu.to_dict() if result.nlu is not None else None
    return {
        **reading(result.nbest),
        "intent": nlu["intent"] if nlu else None,
        "entities": nlu["entities"] if nlu else [],
        "answer": result.answer.to_dict() if result.answer is not None else None,
        "timings_ms": final_timings(result, wait_ms),
    }


def final(
    utterance: int,
    result: FinalResult,
    endpoint: Endpoint,
    wait_ms: float = 0.0,
    speculative: bool = False,
) -> str:
    """The `final` event of an utterance: its result, why and where it ended (seconds of the
    stream), the silence that ended it (ms) and the turn verdict that chose that silence, and
    whether the result was decoded speculatively (before the endpoint)."""
    return _dump(
        {
            "type": "final",
            "utterance": utterance,
            **final_fields(result, wait_ms),
            "reason": endpoint.reason,
            "start_s": endpoint.start_s,
            "end_s": endpoint.end_s,
            "silence_ms": endpoint.silence_ms,
            "complete": endpoint.complete,
            "speculative": speculative,
        }
    )


def error(code: ErrorCode, message: str, utterance: int | None = None) -> str:
    """message: what was wrong and what to do; never a traceback or a server path."""
    event: dict[str, Any] = {"type": "error", "code": str(code), "message": message}
    if code in CLOSE_FOR:
        event["fatal"] = True
    if utterance is not None:
        event["utterance"] = utterance
    return _dump(event)


def end() -> str:
    return _dump({"type": "end"})


# -- CLI records (DESIGN.md) ------------------------------------------------------------------


def transcription(file: str, nbest: NBest) -> dict[str, Any]:
    """`assistant transcribe --json`: the DESIGN.md object for one file."""
    heard = reading(nbest)
    return {"file": file, "language": heard.pop("language"), **heard}


def no_speech(file: str, language: str | None) -> dict[str, Any]:
    """The DESIGN.md object for a file in which the VAD found no utterance (what a live
    session sends no final for): empty readings, language the one asked for or null."""
    return {
        "file": file, "language": language, "text": "", "first_pass_text": "", "nbest": [],
        "segments": [],
    }  # fmt: skip


def joined_transcription(
    file: str, nbests: list[NBest], spans: list[tuple[float, float]]
) -> dict[str, Any]:
    """The DESIGN.md object for a file decoded as several pieces: the utterances a live
    session would cut from it, or (--whole-file) consecutive pieces of at most 30 s.

    text / first_pass_text: the pieces' readings joined; nbest: the k-th readings of every
    piece joined (a piece with fewer gives its last), scores summed; language: that of the
    longest piece's; plus "segments": each piece's own record with start_s, end_s (spans:
    each piece's bounds in seconds of the file: speech onset and end of an utterance, as in
    the websocket `final`, or the piece's own bounds)."""
    segments = []
    for nbest, (start_s, end_s) in zip(nbests, spans, strict=True):
        seg = transcription(file, nbest)
        del seg["file"]
        seg["start_s"], seg["end_s"] = start_s, end_s
        segments.append(seg)
    depth = max(len(seg["nbest"]) for seg in segments)
    joined = []
    for k in range(depth):
        parts = [seg["nbest"][min(k, len(seg["nbest"]) - 1)] for seg in segments if seg["nbest"]]
        rescored = [p["rescore_score"] for p in parts]
        joined.append(
            {
                "text": " ".join(p["text"].strip() for p in parts if p["text"].strip()),
                "asr_score": sum(p["asr_score"] for p in parts),
                "rescore_score": None if None in rescored else sum(rescored),
                "score": sum(p["score"] for p in parts),
            }
        )
    joined.sort(key=lambda h: h["score"], reverse=True)
    longest = max(segments, key=lambda seg: seg["end_s"] - seg["start_s"])
    return {
        "file": file,
        "language": longest["language"],
        "text": " ".join(seg["text"].strip() for seg in segments if seg["text"].strip()),
        "first_pass_text": " ".join(
            seg["first_pass_text"].strip() for seg in segments if seg["first_pass_text"].strip()
        ),
        "nbest": joined,
        "segments": segments,
    }


def asked(text: str, nlu: NluResult, answer: Answer) -> dict[str, Any]:
    """`assistant ask --json`: {"text", "language", "intent", "entities", "answer"}."""
    return {
        "text": text,
        "language": nlu.language,
        "intent": {"name": nlu.intent, "score": round(nlu.intent_score, 4)},
        "entities": [e.to_dict() for e in nlu.entities],
        "answer": answer.to_dict(),
    }
