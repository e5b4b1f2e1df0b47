"""Streaming policy: voice activity, endpointing, speculative finals and stable partial
text, with no I/O.

Push audio in, poll events out, as ufal/whisper_streaming does:

    policy = StreamingPolicy(StreamingConfig(), vad=SileroVad(), partial_decoder=decode)
    policy.push(pcm_float32_16k)      # any length; cheap (VAD only)
    for event in policy.poll():       # may run one partial decode (blocking, ~0.3-1 s on CPU)
        ...                           # Partial, Speculation or Endpoint
    policy.finish()                   # end of stream: the utterance in progress, if any

A server does not want VAD to wait for a decode: it calls push() + take_events() for the
endpoints, and runs the partial decodes itself in the background with partial_job() and
apply_partial(), which apply the same policy.

Onset: the VAD says speech (hysteresis: at least `vad_neg_threshold`, the newest window at
least `vad_threshold`) for `min_speech_ms`; the utterance's audio starts `pre_roll_ms` before
that run, so that a soft or band-limited first syllable the VAD hears late is still decoded.

Endpoint: after the last speech window, silence of a length that depends on what has been
heard (adaptive endpointing). A `TurnJudge` (injected: the policy knows no NLU) says of the
text so far whether it is a complete query: True ends the utterance after
`endpoint_complete_ms`, False (a trailing "the"/"de", an intent without its entity) after
`endpoint_incomplete_ms`, None (or no verdict yet) after `endpoint_silence_ms`. A verdict
holds for the audio it was made on: the next speech window voids it. Utterances also end at
`max_utterance_s` and at finish().

Speculation: after `speculate_ms` of silence the policy emits a `Speculation` holding exactly
the audio the endpoint will carry if no speech follows (the utterance up to its last speech
window plus `speech_pad_ms`). The caller may start the final decode on it; `Endpoint.cut`
equals `Speculation.cut` only when the audio is the same, so a caller uses a speculative
result for that endpoint and drops it otherwise. The caller reports a verdict on the
speculation's text with settle(), which may end the utterance at once.

Draft reuse (`partial_draft_ms` >= 0): a final's first pass chooses catalog phrases from a
greedy draft of its audio. When the last partial decode, a greedy decode of the same speech
but its last stretch, missed at most `partial_draft_ms` of it, Speculation.heard and
Endpoint.heard carry its reading so that the final can choose from it instead.

Files: `segment(audio)` cuts a whole recording into the utterances a live session would cut
from it (the same policy in stream time, with no partials and no verdicts), so that a file
transcription decodes the very samples a stream's finals decode.

Partial text follows the local-agreement policy: every `partial_interval_s` of new audio
the utterance so far is decoded, and only the longest common word prefix of two
consecutive decodes is committed. Committed text never shrinks, so it does not flicker.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from asr.vad import SAMPLE_RATE, WINDOW, VoiceActivity

log = logging.getLogger(__name__)

# (audio float32 [n] at 16 kHz, language or None) -> (text, language it was decoded in),
# or None when the decoder skipped this one (busy with finals).
PartialDecoder = Callable[[np.ndarray, str | None], tuple[str, str] | None]
# (text so far, language) -> True: a complete query; False: more is coming; None: cannot tell.
TurnJudge = Callable[[str, str], bool | None]
SETTLE_LANGUAGE_S = 1.5  # partial audio long enough for a language decision to stick
WINDOW_MS = 1000 * WINDOW / SAMPLE_RATE  # 32 ms per VAD decision
# Whisper's encoder frame: 320 samples (two 10 ms mel hops). An utterance starts on this grid
# of stream time, so that its decode sees the very STFT frames a transcription of the whole
# recording sees; off the grid (a 32 ms VAD window is 3.2 hops) the reading of Whisper base
# changes on 70% of held-out clips, on it on 30% (docs/stream_parity.md).
FRAME_ALIGN = 320


@dataclass(frozen=True)
class StreamingConfig:
    """Endpointing, speculation and partial-result settings; times in ms or s as named."""

    vad_threshold: float = 0.5  # a window is speech at or above this probability
    vad_neg_threshold: float = 0.35  # ... and silence below this one (hysteresis between)
    # Silence after the last speech that ends an utterance: no verdict on its text (or "cannot
    # tell"), a complete query, an incomplete one. Equal values turn adaptation off.
    endpoint_silence_ms: int = 500
    endpoint_complete_ms: int = 256
    endpoint_incomplete_ms: int = 1000
    # Silence that starts a speculative final decode (Speculation); 0: none. Each 32 ms
    # earlier is 32 ms off every final; it needs speech_pad_ms <= speculate_ms. 128 (from 160)
    # kept WER, entity words and answers on the held-out clips (docs/latency.md).
    speculate_ms: int = 128
    min_speech_ms: int = 160  # speech shorter than this does not start an utterance (clicks)
    pre_roll_ms: int = 1000  # audio kept before the speech onset (Whisper hears the lead-in)
    speech_pad_ms: int = 128  # audio kept after the last speech window
    partial_interval_s: float = 0.5  # new audio between two partial decodes
    # A final may take its phrase-selection draft from the last partial decode when that
    # decode saw all of the utterance's speech but at most this much (ms): the first pass
    # then skips its own draft decode. -1: never (every final drafts). Off: on the dev clips a
    # partial's reading misses the last word, which the phrases are for (docs/latency.md).
    partial_draft_ms: int = -1
    partials: bool = True  # False: finals only (saves CPU)
    max_utterance_s: float = 15.0  # an utterance is cut here (Endpoint reason "max_length")
    # A judged query counts as complete when its intent scores at least this (assistant.turn).
    complete_confidence: float = 0.8

    def __post_init__(self) -> None:
        if not 0 < self.vad_neg_threshold <= self.vad_threshold < 1:
            raise ValueError("need 0 < vad_neg_threshold <= vad_threshold < 1")
        if self.endpoint_silence_ms < 32 or self.max_utterance_s <= 1:
            raise ValueError("endpoint_silence_ms must be >= 32 and max_utterance_s > 1")
        if not 32 <= self.endpoint_complete_ms <= self.endpoint_silence_ms:
            raise ValueError("need 32 <= endpoint_complete_ms <= endpoint_silence_ms")
        if self.endpoint_incomplete_ms < self.endpoint_silence_ms:
            raise ValueError("endpoint_incomplete_ms must be >= endpoint_silence_ms")
        if self.speculate_ms and not (
            self.speech_pad_ms <= self.speculate_ms < self.endpoint_complete_ms
        ):
            raise ValueError(
                "speculate_ms must be 0 (off) or from speech_pad_ms to below endpoint_complete_ms"
            )
        if not 0 <= self.speech_pad_ms <= self.endpoint_complete_ms:
            raise ValueError("speech_pad_ms must be from 0 to endpoint_complete_ms")
        if self.pre_roll_ms < 0 or self.min_speech_ms < 0:
            raise ValueError("pre_roll_ms and min_speech_ms must be >= 0")
        if self.partial_interval_s <= 0:
            raise ValueError("partial_interval_s must be positive")
        if self.partial_draft_ms < -1:
            raise ValueError("partial_draft_ms must be -1 (off) or >= 0")
        if not 0 < self.complete_confidence <= 1:
            raise ValueError("complete_confidence must be in (0, 1]")


@dataclass(frozen=True)
class Partial:
    """Stable text of the utterance in progress (grows only)."""

    utterance: int
    text: str


@dataclass(frozen=True)
class PartialJob:
    """A partial decode to run: the utterance so far (float32 [n], 16 kHz).

    cut: the utterance's last speech window when the job was made (a verdict on its text
    holds while no speech follows)."""

    utterance: int
    audio: np.ndarray = field(repr=False)
    language: str | None
    cut: int = 0


@dataclass(frozen=True)
class Speculation:
    """A short silence: the audio (float32 [n], 16 kHz) the Endpoint will carry if no speech
    follows, for a final decode started early. `cut`: its number of VAD windows up to the last
    speech; an Endpoint with the same utterance and cut has this very audio. `heard`: the
    last partial decode's reading, when it saw all but `partial_draft_ms` of that speech."""

    utterance: int
    audio: np.ndarray = field(repr=False)
    cut: int
    language: str | None = None
    heard: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """An utterance ended; `audio` (float32 [n], 16 kHz) goes to the final decode.

    reason: "silence" (endpoint), "max_length" (cut at max_utterance_s) or "stop" (finish()).
    start_s / end_s: speech onset and end in stream time (seconds from the first sample).
    language: the client's fixed language, or None: the final detects it on the whole
        utterance (detection on the first half-second of a partial is often wrong).
    cut: as Speculation.cut when the audio was trimmed after the last speech; None when it
        was not (max_length, stop in speech): no speculation has this audio.
    silence_ms: the silence that ended it (reason "silence"), and `complete` the verdict that
        chose that silence (None: no verdict held).
    heard: as Speculation.heard.
    """

    utterance: int
    audio: np.ndarray = field(repr=False)
    reason: str
    start_s: float
    end_s: float
    language: str | None = None
    cut: int | None = None
    silence_ms: float = 0.0
    complete: bool | None = None
    heard: str | None = None


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


def _windows(ms: float) -> int:
    return max(1, round(ms / WINDOW_MS))


class StreamingPolicy:
    """One stream's VAD state machine, endpointing and partial-text policy.

    push/poll/finish belong to one caller; partial_job/apply_partial/settle may run on another
    thread (a server decodes in the background so endpointing never waits for a decode).
    """

    def __init__(
        self,
        config: StreamingConfig | None = None,
        vad: VoiceActivity | None = None,
        partial_decoder: PartialDecoder | None = None,
        language: str | None = None,
        judge: TurnJudge | None = None,
    ) -> None:
        if vad is None:
            from asr.vad import SileroVad

            vad = SileroVad()
        self.config = cfg = config or StreamingConfig()
        self.vad = vad
        self.partial_decoder = partial_decoder
        self.judge = judge  # verdicts on partial text; None: partials give none
        self.language = language  # fixed by the client, or None for detection
        self._win_s = WINDOW / SAMPLE_RATE
        self._pending = np.zeros(0, dtype=np.float32)  # < one window, not yet seen by the VAD
        self._samples_seen = 0  # samples passed through the VAD (stream clock)
        self._pre_windows = round(cfg.pre_roll_ms / WINDOW_MS)
        self._pad_windows = round(cfg.speech_pad_ms / WINDOW_MS)
        self._onset_windows = _windows(cfg.min_speech_ms)
        self._speculate_windows = _windows(cfg.speculate_ms) if cfg.speculate_ms else 0
        # silence windows that end an utterance, by verdict (None: no verdict / cannot tell)
        self._endpoint_windows = {
            None: _windows(cfg.endpoint_silence_ms),
            True: _windows(cfg.endpoint_complete_ms),
            False: _windows(cfg.endpoint_incomplete_ms),
        }
        self._max_windows = int(cfg.max_utterance_s / self._win_s)
        self._history: list[np.ndarray] = []  # recent windows while idle (pre-roll + onset)
        self._events: list[Partial | Speculation | Endpoint] = []
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

    def poll(self) -> list[Partial | Speculation | Endpoint]:
        """Events since the last poll; runs at most one partial decode when one is due
        (synchronously, with `partial_decoder`; see partial_job() for the async way)."""
        if self.partial_decoder is not None:
            self._decode_partial()
        return self.take_events()

    def take_events(self) -> list[Partial | Speculation | Endpoint]:
        """Events since the last call, without decoding anything."""
        with self._lock:
            events, self._events = self._events, []
        return events

    def finish(self) -> list[Partial | Speculation | Endpoint]:
        """End of stream: flush the utterance in progress (reason "stop") and return events.
        Trailing silence of at least `speech_pad_ms` is trimmed as an endpoint trims it."""
        if len(self._pending):
            tail = np.zeros(WINDOW, dtype=np.float32)
            tail[: len(self._pending)] = self._pending
            self._pending = np.zeros(0, dtype=np.float32)
            self.push(tail)
        with self._lock:
            if self._in_speech:
                self._end_utterance("stop", trim=self._silence_run >= self._pad_windows)
        return self.take_events()

    def settle(self, utterance: int, cut: int, complete: bool | None) -> None:
        """A verdict on the text of the audio up to `cut` (a Speculation's or a partial's):
        it sets the silence that ends this utterance while no speech follows, and ends the
        utterance now (an Endpoint in the next take_events) when that silence has passed."""
        with self._lock:
            if utterance != self.utterance or not self._in_speech or cut != self._last_speech:
                return  # another utterance, or speech came after that audio: void
            self._verdict = complete
            if self._silence_run >= self._endpoint_windows[complete]:
                self._end_utterance("silence", trim=True)

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
        self._verdict: bool | None = None  # on the text up to _last_speech (settle)
        self._start_s = 0.0  # speech onset, stream time
        self._audio_start_s = 0.0  # first sample of self._audio (onset minus pre-roll)
        self._decoded_at = 0  # len(self._audio) at the last partial decode
        self._heard: tuple[int, str] | None = None  # (its windows, reading) once it is back
        self._previous_words: list[str] = []
        self._committed: list[str] = []
        self._utt_language = self.language

    def _step(self, window: np.ndarray, prob: float) -> None:
        self._samples_seen += WINDOW
        cfg = self.config
        if not self._in_speech:
            self._history.append(window)
            keep = self._pre_windows + self._onset_windows
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
            self._verdict = None  # it was about shorter audio
        else:
            self._silence_run += 1
        if self._speculate_windows and self._silence_run == self._speculate_windows:
            keep = self._last_speech + self._pad_windows
            self._events.append(
                Speculation(
                    self.utterance, self._aligned(self._audio[:keep]), self._last_speech,
                    self.language, self._heard_text(),
                )
            )  # fmt: skip
        if self._silence_run >= self._endpoint_windows[self._verdict]:
            self._end_utterance("silence", trim=True)
        elif len(self._audio) >= self._max_windows:
            self._end_utterance("max_length", trim=False)

    def _heard_text(self) -> str | None:
        """The last partial decode's reading, when it missed at most `partial_draft_ms` of
        the speech up to the last speech window (the draft a final may reuse)."""
        if self.config.partial_draft_ms < 0 or self._heard is None:
            return None
        windows, text = self._heard
        missed_ms = max(0, self._last_speech - windows) * WINDOW_MS
        return text if text.strip() and missed_ms <= self.config.partial_draft_ms else None

    def _aligned(self, windows: list[np.ndarray]) -> np.ndarray:
        """The utterance's audio from its first sample on the FRAME_ALIGN grid of stream time."""
        if not windows:
            return np.zeros(0, np.float32)
        start = round(self._audio_start_s * SAMPLE_RATE)
        return np.concatenate(windows)[-start % FRAME_ALIGN :]

    def _end_utterance(self, reason: str, trim: bool) -> None:
        keep = min(len(self._audio), self._last_speech + self._pad_windows) if trim else None
        audio = self._aligned(self._audio[:keep])
        end_s = self._audio_start_s + self._last_speech * self._win_s
        self._events.append(
            Endpoint(
                self.utterance,
                audio,
                reason,
                round(self._start_s, 3),
                round(end_s, 3),
                self.language,
                cut=self._last_speech if trim else None,
                silence_ms=round(self._silence_run * WINDOW_MS, 1) if reason == "silence" else 0.0,
                complete=self._verdict,
                heard=self._heard_text() if trim else None,
            )
        )
        log.debug(
            "utterance %d ended (%s), %.2f s", self.utterance, reason, len(audio) / SAMPLE_RATE
        )
        self.utterance += 1
        self._in_speech = False
        self._onset_run = 0
        # Trailing silence (never this utterance's speech) becomes the next one's pre-roll.
        after = self._audio[self._last_speech :] if trim and self._pre_windows else []
        self._history = after[-self._pre_windows :] if after else []
        self._reset_utterance()

    # -- partial text -------------------------------------------------------------------

    def _partial_due(self) -> bool:
        if not (self.config.partials and self._in_speech):
            return False
        if self._speculate_windows and self._silence_run:
            return False  # a pause: the speculative final is about to take the cores
        new_s = (len(self._audio) - self._decoded_at) * self._win_s
        return new_s >= self.config.partial_interval_s

    def partial_job(self) -> PartialJob | None:
        """The audio to decode for a partial, when one is due (for callers that decode
        asynchronously, so that VAD and endpointing never wait for a decode)."""
        with self._lock:
            if not self._partial_due():
                return None
            self._decoded_at = len(self._audio)
            return PartialJob(
                self.utterance, np.concatenate(self._audio), self._utt_language, self._last_speech
            )

    def apply_partial(self, job: PartialJob, text: str, language: str) -> Partial | None:
        """Local agreement on a finished decode of `job`; the new stable text, if it grew.
        A decode that comes back after its utterance ended is dropped. With a judge, the
        decode's text is also a verdict on its audio (settle)."""
        with self._lock:
            if job.utterance != self.utterance or not self._in_speech:
                return None
            if self.judge is not None and job.cut == self._last_speech:
                self.settle(job.utterance, job.cut, self.judge(text, language))
                if job.utterance != self.utterance:
                    return None  # that verdict ended the utterance
            # Settle the partials' language once a decode has seen enough audio to detect it
            # reliably: later partials skip detection and do not switch language mid-utterance.
            if self._utt_language is None and len(job.audio) >= SETTLE_LANGUAGE_S * SAMPLE_RATE:
                self._utt_language = language
            self._heard = (len(job.audio) // WINDOW, text)
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


def segment(
    audio: np.ndarray,
    config: StreamingConfig | None = None,
    vad: VoiceActivity | None = None,
    language: str | None = None,
) -> list[Endpoint]:
    """The utterances a live session cuts from `audio` (float32 [n], 16 kHz, the whole stream).

    The policy a session runs, fed the whole recording at once (VAD and endpointing do not
    depend on how the audio is chunked) and finished at its end, with no partials and no
    turn verdicts: every utterance ends after `endpoint_silence_ms`. A live session cuts the
    same utterances with the same samples, [onset - pre-roll, last speech + pad] on the frame
    grid, unless a verdict moved an endpoint across a pause (a complete query ends after
    `endpoint_complete_ms`, an incomplete one waits `endpoint_incomplete_ms`), which decides
    when an utterance ends but not where its audio is cut. vad: a fresh detector (default
    Silero); it is used from its reset state.
    """
    config = replace(config or StreamingConfig(), partials=False)
    if vad is not None:
        vad.reset()
    policy = StreamingPolicy(config, vad=vad, language=language)
    policy.push(audio)
    return [e for e in policy.finish() if isinstance(e, Endpoint)]
