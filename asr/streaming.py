"""Streaming policy: voice activity, endpointing and stable partial text, with no I/O.

Push audio in, poll events out, as ufal/whisper_streaming does:

    policy = StreamingPolicy(StreamingConfig(), vad=SileroVad(), partial_decoder=decode)
    policy.push(pcm_float32_16k)      # any length; cheap (VAD only)
    for event in policy.poll():       # may run one partial decode (blocking, ~0.3-1 s on CPU)
        ...                           # Partial(...) or Endpoint(...)
    policy.finish()                   # end of stream: the utterance in progress, if any

A server does not want VAD to wait for a decode: it calls push() + take_events() for the
endpoints, and runs the partial decodes itself in the background with partial_job() and
apply_partial(), which apply the same policy.

An utterance starts when the VAD says speech for `min_speech_ms` and ends after
`endpoint_silence_ms` of silence (or at `max_utterance_s`, or at `finish`). Its audio,
padded with `speech_pad_ms` either side, comes out in an `Endpoint` for the final decode,
which the caller runs (the server batches the finals of concurrent streams).

Partial text follows the local-agreement policy: every `partial_interval_s` of new audio
the utterance so far is decoded, and only the longest common word prefix of two
consecutive decodes is committed. Committed text never shrinks, so it does not flicker.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from asr.vad import SAMPLE_RATE, WINDOW, VoiceActivity

log = logging.getLogger(__name__)

# (audio float32 [n] at 16 kHz, language or None) -> (text, language it was decoded in),
# or None when the decoder skipped this one (busy with finals).
PartialDecoder = Callable[[np.ndarray, str | None], tuple[str, str] | None]
SETTLE_LANGUAGE_S = 1.5  # partial audio long enough for a language decision to stick


@dataclass(frozen=True)
class StreamingConfig:
    """Endpointing and partial-result settings; times in milliseconds or seconds as named."""

    vad_threshold: float = 0.5  # a window is speech at or above this probability
    vad_neg_threshold: float = 0.35  # ... and silence below this one (hysteresis between)
    endpoint_silence_ms: int = 500  # silence after speech that ends an utterance
    min_speech_ms: int = 160  # speech shorter than this does not start an utterance (clicks)
    speech_pad_ms: int = 200  # audio kept before the onset and after the last speech
    partial_interval_s: float = 0.5  # new audio between two partial decodes
    partials: bool = True  # False: finals only (saves CPU)
    max_utterance_s: float = 15.0  # an utterance is cut here (Endpoint reason "max_length")

    def __post_init__(self) -> None:
        if not 0 < self.vad_neg_threshold <= self.vad_threshold < 1:
            raise ValueError("need 0 < vad_neg_threshold <= vad_threshold < 1")
        if self.endpoint_silence_ms < 32 or self.max_utterance_s <= 1:
            raise ValueError("endpoint_silence_ms must be >= 32 and max_utterance_s > 1")
        if self.partial_interval_s <= 0:
            raise ValueError("partial_interval_s must be positive")


@dataclass(frozen=True)
class Partial:
    """Stable text of the utterance in progress (grows only)."""

    utterance: int
    text: str


@dataclass(frozen=True)
class PartialJob:
    """A partial decode to run: the utterance so far (float32 [n], 16 kHz)."""

    utterance: int
    audio: np.ndarray = field(repr=False)
    language: str | None


@dataclass(frozen=True)
class Endpoint:
    """An utterance ended; `audio` (float32 [n], 16 kHz) goes to the final decode.

    reason: "silence" (endpoint), "max_length" (cut at max_utterance_s) or "stop" (finish()).
    start_s / end_s: speech onset and end in stream time (seconds from the first sample).
    language: the client's fixed language, or None: the final detects it on the whole
        utterance (detection on the first half-second of a partial is often wrong).
    """

    utterance: int
    audio: np.ndarray = field(repr=False)
    reason: str
    start_s: float
    end_s: float
    language: str | None = None


_WORD = re.compile(r"[\w']+", re.UNICODE)


def _norm(word: str) -> str:
    """Case- and punctuation-blind form for agreement ('Pods?' agrees with 'pods')."""
    return "".join(_WORD.findall(word.lower()))


def agreed_prefix(previous: list[str], current: list[str]) -> list[str]:
    """Longest common word prefix of two decodes, in the current decode's spelling."""
    n = 0
    for a, b in zip(previous, current, strict=False):
        if _norm(a) != _norm(b):
            break
        n += 1
    return current[:n]


class StreamingPolicy:
    """One stream's VAD state machine and partial-text policy.

    push/poll/finish belong to one caller; partial_job/apply_partial may run on another thread
    (a server decodes partials in the background so endpointing never waits for them).
    """

    def __init__(
        self,
        config: StreamingConfig | None = None,
        vad: VoiceActivity | None = None,
        partial_decoder: PartialDecoder | None = None,
        language: str | None = None,
    ) -> None:
        if vad is None:
            from asr.vad import SileroVad

            vad = SileroVad()
        self.config = config or StreamingConfig()
        self.vad = vad
        self.partial_decoder = partial_decoder
        self.language = language  # fixed by the client, or None for detection
        self._win_s = WINDOW / SAMPLE_RATE
        self._pending = np.zeros(0, dtype=np.float32)  # < one window, not yet seen by the VAD
        self._samples_seen = 0  # samples passed through the VAD (stream clock)
        self._pad_windows = max(1, round(self.config.speech_pad_ms / 1000 / self._win_s))
        self._silence_windows = max(1, round(self.config.endpoint_silence_ms / 1000 / self._win_s))
        self._onset_windows = max(1, round(self.config.min_speech_ms / 1000 / self._win_s))
        self._max_windows = int(self.config.max_utterance_s / self._win_s)
        self._history: list[np.ndarray] = []  # recent windows while idle (pre-roll + onset)
        self._events: list[Partial | Endpoint] = []
        self._onset_run = 0  # consecutive speech-ish windows while idle
        # push() may run in a worker thread while apply_partial() runs on an event loop.
        self._lock = threading.RLock()
        self.utterance = 0  # index of the next/current utterance
        self._reset_utterance()
        self._in_speech = False

    # -- public verbs -------------------------------------------------------------------

    def push(self, pcm: np.ndarray) -> None:
        """Add float32 mono 16 kHz samples in [-1, 1] (any length)."""
        pcm = np.asarray(pcm, dtype=np.float32).reshape(-1)
        if len(pcm) == 0:
            return
        buf = np.concatenate([self._pending, pcm]) if len(self._pending) else pcm
        n = len(buf) // WINDOW * WINDOW
        self._pending = buf[n:].copy()
        if n == 0:
            return
        windows = buf[:n].reshape(-1, WINDOW)
        probs = self.vad.speech_probs(windows)
        with self._lock:
            for window, prob in zip(windows, probs, strict=True):
                self._step(window, float(prob))

    def poll(self) -> list[Partial | Endpoint]:
        """Events since the last poll; runs at most one partial decode when one is due
        (synchronously, with `partial_decoder`; see partial_job() for the async way)."""
        if self.partial_decoder is not None:
            self._decode_partial()
        return self.take_events()

    def take_events(self) -> list[Partial | Endpoint]:
        """Events since the last call, without decoding anything."""
        with self._lock:
            events, self._events = self._events, []
        return events

    def finish(self) -> list[Partial | Endpoint]:
        """End of stream: flush the utterance in progress (reason "stop") and return events."""
        if len(self._pending):
            tail = np.zeros(WINDOW, dtype=np.float32)
            tail[: len(self._pending)] = self._pending
            self._pending = np.zeros(0, dtype=np.float32)
            self.push(tail)
        with self._lock:
            if self._in_speech:
                self._end_utterance("stop", trim=False)
        return self.take_events()

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def stream_time_s(self) -> float:
        return self._samples_seen / SAMPLE_RATE

    # -- state machine --------------------------------------------------------------------

    def _reset_utterance(self) -> None:
        self._audio: list[np.ndarray] = []
        self._silence_run = 0  # consecutive non-speech windows inside the utterance
        self._last_speech = 0  # windows in self._audio up to the last speech window
        self._start_s = 0.0  # speech onset, stream time
        self._audio_start_s = 0.0  # first sample of self._audio (onset minus pre-roll)
        self._decoded_at = 0  # len(self._audio) at the last partial decode
        self._previous_words: list[str] = []
        self._committed: list[str] = []
        self._utt_language = self.language

    def _step(self, window: np.ndarray, prob: float) -> None:
        self._samples_seen += WINDOW
        cfg = self.config
        if not self._in_speech:
            self._history.append(window)
            keep = self._pad_windows + self._onset_windows
            if len(self._history) > keep:
                del self._history[: len(self._history) - keep]
            # Onset: the last `onset` windows all speech-ish (above the low threshold) and
            # the newest above the high one; short clicks do not start an utterance.
            self._onset_run = self._onset_run + 1 if prob >= cfg.vad_neg_threshold else 0
            if prob >= cfg.vad_threshold and self._onset_run >= self._onset_windows:
                self._in_speech = True
                self._audio = list(self._history)
                self._history = []
                self._last_speech = len(self._audio)
                self._start_s = self.stream_time_s - self._onset_windows * self._win_s
                self._audio_start_s = self.stream_time_s - len(self._audio) * self._win_s
            return
        self._audio.append(window)
        if prob >= cfg.vad_threshold or (prob >= cfg.vad_neg_threshold and self._silence_run == 0):
            self._silence_run = 0
            self._last_speech = len(self._audio)
        else:
            self._silence_run += 1
        if self._silence_run >= self._silence_windows:
            self._end_utterance("silence", trim=True)
        elif len(self._audio) >= self._max_windows:
            self._end_utterance("max_length", trim=False)

    def _end_utterance(self, reason: str, trim: bool) -> None:
        keep = min(len(self._audio), self._last_speech + self._pad_windows) if trim else None
        audio = np.concatenate(self._audio[:keep]) if self._audio else np.zeros(0, np.float32)
        end_s = self._audio_start_s + self._last_speech * self._win_s
        self._events.append(
            Endpoint(
                self.utterance,
                audio,
                reason,
                round(self._start_s, 3),
                round(end_s, 3),
                self.language,
            )
        )
        log.debug(
            "utterance %d ended (%s), %.2f s", self.utterance, reason, len(audio) / SAMPLE_RATE
        )
        self.utterance += 1
        self._in_speech = False
        self._onset_run = 0
        # Trailing silence becomes the pre-roll of the next utterance.
        self._history = self._audio[-self._pad_windows :] if trim else []
        self._reset_utterance()

    # -- partial text -------------------------------------------------------------------

    def _partial_due(self) -> bool:
        if not (self.config.partials and self._in_speech):
            return False
        new_s = (len(self._audio) - self._decoded_at) * self._win_s
        return new_s >= self.config.partial_interval_s

    def partial_job(self) -> PartialJob | None:
        """The audio to decode for a partial, when one is due (for callers that decode
        asynchronously, so that VAD and endpointing never wait for a decode)."""
        with self._lock:
            if not self._partial_due():
                return None
            self._decoded_at = len(self._audio)
            return PartialJob(self.utterance, np.concatenate(self._audio), self._utt_language)

    def apply_partial(self, job: PartialJob, text: str, language: str) -> Partial | None:
        """Local agreement on a finished decode of `job`; the new stable text, if it grew.
        A decode that comes back after its utterance ended is dropped."""
        with self._lock:
            if job.utterance != self.utterance or not self._in_speech:
                return None
            # Settle the partials' language once a decode has seen enough audio to detect it
            # reliably: later partials skip detection and do not switch language mid-utterance.
            if self._utt_language is None and len(job.audio) >= SETTLE_LANGUAGE_S * SAMPLE_RATE:
                self._utt_language = language
            words = text.split()
            agreed = agreed_prefix(self._previous_words, words)
            self._previous_words = words
            # Committed words are final for the client: extend them only when the new
            # agreement starts with them, never rewrite them.
            n = len(self._committed)
            if len(agreed) > n and agreed_prefix(self._committed, agreed[:n]) == agreed[:n]:
                self._committed = self._committed + agreed[n:]
                return Partial(self.utterance, " ".join(self._committed))
            return None

    def _decode_partial(self) -> None:
        job = self.partial_job()
        if job is None:
            return
        try:
            decoded = self.partial_decoder(job.audio, job.language)
        except Exception:  # a failed partial must not end the stream; the final decides
            log.exception("partial decode failed")
            return
        if decoded is not None:
            event = self.apply_partial(job, *decoded)
            if event is not None:
                self._events.append(event)
