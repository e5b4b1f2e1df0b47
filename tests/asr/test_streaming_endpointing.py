"""Adaptive endpointing, speculative finals and pre-roll on the policy, with a scripted VAD:
every 32 ms window's speech probability is given, so each case is exact and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from asr.streaming import (
    FRAME_ALIGN,
    Endpoint,
    PartialJob,
    Speculation,
    StreamingConfig,
    StreamingPolicy,
    segment,
)
from asr.vad import WINDOW


class ScriptedVad:
    """Speech probability per window from a script: 1 for "#", 0 for "." (then silence)."""

    def __init__(self, script: str) -> None:
        self.probs = [1.0 if c == "#" else 0.0 for c in script]
        self.seen = 0

    def reset(self) -> None:
        self.seen = 0

    def speech_probs(self, windows: np.ndarray) -> np.ndarray:
        span = range(self.seen, self.seen + len(windows))
        out = [self.probs[i] if i < len(self.probs) else 0.0 for i in span]
        self.seen += len(windows)
        return np.asarray(out, dtype=np.float32)


def windows(script: str) -> np.ndarray:
    """Distinct audio per window (its index as the value), so slices can be checked."""
    return np.repeat(np.arange(len(script), dtype=np.float32) / 1000, WINDOW)


def drive(policy: StreamingPolicy, script: str, until: int | None = None) -> list:
    """Push the script's windows one by one (up to window `until`); all events."""
    audio, events = windows(script), []
    for i in range(until if until is not None else len(script)):
        policy.push(audio[i * WINDOW : (i + 1) * WINDOW])
        events += policy.take_events()
    return events


def of(kind, events):
    return [e for e in events if isinstance(e, kind)]


# 10 windows of silence, 20 of speech (640 ms), then silence; timing in 32 ms windows:
# speculate 160 ms = 5, complete 256 ms = 8, default 500 ms = 16, incomplete 1000 ms = 31.
QUERY = "." * 10 + "#" * 20 + "." * 60


def policy_for(script: str, **overrides) -> StreamingPolicy:
    return StreamingPolicy(StreamingConfig(partials=False, **overrides), vad=ScriptedVad(script))


def test_speculation_holds_exactly_the_audio_of_the_endpoint_that_follows():
    events = drive(policy_for(QUERY), QUERY)
    (spec,), (end,) = of(Speculation, events), of(Endpoint, events)
    assert events.index(spec) < events.index(end)
    assert (spec.utterance, spec.cut) == (end.utterance, end.cut)
    assert np.array_equal(spec.audio, end.audio)
    assert end.silence_ms == pytest.approx(16 * 32) and end.complete is None


def test_speech_after_a_speculation_voids_it():
    script = "." * 10 + "#" * 10 + "." * 7 + "#" * 10 + "." * 40  # a 224 ms pause inside
    events = drive(policy_for(script), script)
    specs, (end,) = of(Speculation, events), of(Endpoint, events)
    assert len(specs) == 2  # one per pause; the first one's audio stops at the pause
    assert specs[0].cut != end.cut and (specs[1].utterance, specs[1].cut) == (0, end.cut)
    assert len(specs[0].audio) < len(end.audio)


def test_complete_verdict_ends_the_utterance_at_once_when_its_silence_has_passed():
    policy = policy_for(QUERY)
    events = drive(policy, QUERY, until=30 + 9)  # 9 windows of silence: past 256 ms
    (spec,) = of(Speculation, events)
    assert of(Endpoint, events) == []
    policy.settle(spec.utterance, spec.cut, True)
    (end,) = of(Endpoint, policy.take_events())
    assert end.cut == spec.cut and end.complete is True and end.silence_ms == 9 * 32


def test_complete_verdict_before_its_silence_ends_the_utterance_then():
    policy = policy_for(QUERY)
    events = drive(policy, QUERY, until=30 + 5)
    (spec,) = of(Speculation, events)
    policy.settle(0, spec.cut, True)
    assert of(Endpoint, policy.take_events()) == []
    audio = windows(QUERY)
    ends = []
    for i in range(35, 40):
        policy.push(audio[i * WINDOW : (i + 1) * WINDOW])
        ends += of(Endpoint, policy.take_events())
    assert [e.silence_ms for e in ends] == [8 * 32]


def test_incomplete_verdict_waits_longer_and_survives_a_long_pause():
    # a 700 ms pause (22 windows): the default 500 ms would split this query in two
    script = "." * 10 + "#" * 20 + "." * 22 + "#" * 10 + "." * 40
    assert len(of(Endpoint, drive(policy_for(script), script))) == 2
    policy = policy_for(script)
    events = drive(policy, script, until=30 + 6)
    (spec,) = of(Speculation, events)
    policy.settle(0, spec.cut, False)  # "where are the": more is coming
    events = drive_rest(policy, script, 36)
    (end,) = of(Endpoint, events)
    assert end.complete is None  # the verdict was on the audio before the pause
    assert end.silence_ms == 16 * 32


def drive_rest(policy, script, start):
    audio, events = windows(script), []
    for i in range(start, len(script)):
        policy.push(audio[i * WINDOW : (i + 1) * WINDOW])
        events += policy.take_events()
    return events


def test_incomplete_verdict_ends_after_endpoint_incomplete_ms():
    policy = policy_for(QUERY)
    (spec,) = of(Speculation, drive(policy, QUERY, until=36))
    policy.settle(0, spec.cut, False)
    (end,) = of(Endpoint, drive_rest(policy, QUERY, 36))
    assert end.complete is False and end.silence_ms == 31 * 32


def test_stale_verdicts_are_ignored():
    policy = policy_for(QUERY)
    (spec,) = of(Speculation, drive(policy, QUERY, until=36))
    policy.settle(0, spec.cut - 1, True)  # about other audio
    policy.settle(1, spec.cut, True)  # about another utterance
    (end,) = of(Endpoint, drive_rest(policy, QUERY, 36))
    assert end.complete is None and end.silence_ms == 16 * 32


def test_partial_text_is_a_verdict_through_the_judge():
    heard = []

    def judge(text, language):
        heard.append(text)
        return True

    policy = StreamingPolicy(
        StreamingConfig(partial_interval_s=0.3), vad=ScriptedVad(QUERY), judge=judge
    )
    drive(policy, QUERY, until=30)  # the speech, no silence yet
    job = policy.partial_job()
    assert isinstance(job, PartialJob) and job.cut == policy._last_speech
    policy.apply_partial(job, "where are the tide pods", "en")
    (end,) = of(Endpoint, drive_rest(policy, QUERY, 30))
    assert heard == ["where are the tide pods"] and end.complete is True
    assert end.silence_ms == 8 * 32


def test_no_partial_decode_starts_in_a_pause_when_speculating():
    policy = StreamingPolicy(StreamingConfig(partial_interval_s=0.1), vad=ScriptedVad(QUERY))
    drive(policy, QUERY, until=32)  # two windows into the silence
    assert policy.partial_job() is None


def test_pre_roll_starts_before_the_onset_on_the_frame_grid_and_skips_earlier_speech():
    script = "." * 40 + "#" * 20 + "." * 20 + "#" * 20 + "." * 40
    ends = of(Endpoint, drive(policy_for(script, pre_roll_ms=608), script))
    assert len(ends) == 2
    # utterance 0: 19 windows of pre-roll before the 5-window onset run: from window 21 on,
    # less the samples that put its first sample on the 320-sample grid of stream time
    audio = ends[0].audio
    assert audio[0] * 1000 == pytest.approx(21)
    dropped = WINDOW - int(np.sum(np.isclose(audio * 1000, 21)))
    assert (21 * WINDOW + dropped) % FRAME_ALIGN == 0 and 0 <= dropped < FRAME_ALIGN
    # utterance 1's pre-roll holds only the silence after utterance 0's last speech
    assert ends[1].audio[0] * 1000 >= 60


def test_config_checks_the_new_bounds():
    StreamingConfig(speculate_ms=0)  # off
    for bad in (
        {"endpoint_complete_ms": 600},  # above endpoint_silence_ms
        {"endpoint_incomplete_ms": 400},  # below it
        {"speculate_ms": 300},  # not before the earliest endpoint
        {"speculate_ms": 100, "speech_pad_ms": 160},  # its audio would lack the pad
        {"pre_roll_ms": -1},
        {"complete_confidence": 0.0},
    ):
        with pytest.raises(ValueError):
            StreamingConfig(**bad)


def test_stop_trims_trailing_silence_so_a_speculation_still_matches():
    policy = policy_for(QUERY)
    events = drive(policy, QUERY, until=30 + 7)
    (spec,) = of(Speculation, events)
    (end,) = of(Endpoint, policy.finish())
    assert end.reason == "stop" and end.cut == spec.cut and np.array_equal(end.audio, spec.audio)


# A query with a 224 ms pause inside (7 windows: past the 160 ms speculation, short of the
# 256 ms complete endpoint), then a second query after a long pause.
TWO = "." * 10 + "#" * 12 + "." * 7 + "#" * 10 + "." * 40 + "#" * 15 + "." * 40


def live(script: str, verdict, **overrides) -> list[Endpoint]:
    """The endpoints of a live stream whose every speculation gets `verdict` at once (a
    judge with no latency); "none": no judge at all."""
    policy, audio, ends = policy_for(script, **overrides), windows(script), []
    for i in range(len(script)):
        policy.push(audio[i * WINDOW : (i + 1) * WINDOW])
        for event in policy.take_events():
            if isinstance(event, Speculation) and verdict != "none":
                policy.settle(event.utterance, event.cut, verdict)
            elif isinstance(event, Endpoint):
                ends.append(event)
        ends += of(Endpoint, policy.take_events())
    return ends + of(Endpoint, policy.finish())


@pytest.mark.parametrize("verdict", ["none", None, True, False])
def test_segment_cuts_the_samples_a_live_stream_decodes_whatever_the_verdicts(verdict):
    """Verdicts change when an utterance ends, never which samples its final decodes."""
    offline = segment(windows(TWO), StreamingConfig(), ScriptedVad(TWO))
    assert len(offline) == 2 and [e.reason for e in offline] == ["silence", "silence"]
    streamed = live(TWO, verdict)
    assert [(e.utterance, e.start_s, e.end_s) for e in streamed] == [
        (e.utterance, e.start_s, e.end_s) for e in offline
    ]
    for a, b in zip(streamed, offline, strict=True):
        assert np.array_equal(a.audio, b.audio)
    if verdict is not None and verdict != "none":
        assert {e.complete for e in streamed} == {verdict}


def test_segment_of_silence_and_clicks_is_nothing_and_stop_trims_as_live():
    quiet = "." * 50 + "##" + "." * 50  # 64 ms: shorter than min_speech_ms
    assert segment(windows(quiet), StreamingConfig(), ScriptedVad(quiet)) == []
    cut_short = "." * 10 + "#" * 20 + "." * 3  # the file ends 96 ms after the speech
    (end,) = segment(windows(cut_short), StreamingConfig(), ScriptedVad(cut_short))
    (streamed,) = live(cut_short, "none")
    assert end.reason == streamed.reason == "stop" and np.array_equal(end.audio, streamed.audio)


@pytest.mark.parametrize(
    ("partial_draft_ms", "job_at", "reused"),
    [(-1, 30, False), (0, 30, True), (0, 25, False), (200, 25, True), (100, 25, False)],
)
def test_a_final_reuses_the_last_partial_reading_only_when_it_saw_the_speech(
    partial_draft_ms, job_at, reused
):
    """QUERY's speech ends at window 30; a partial taken at window 25 missed 5 windows (160 ms)."""
    policy = StreamingPolicy(
        StreamingConfig(partial_interval_s=0.1, partial_draft_ms=partial_draft_ms),
        vad=ScriptedVad(QUERY),
    )
    drive(policy, QUERY, until=job_at)
    job = policy.partial_job()
    policy.apply_partial(job, "where are the tide", "en")
    events = drive_rest(policy, QUERY, job_at)
    (spec,), (end,) = of(Speculation, events), of(Endpoint, events)
    expected = "where are the tide" if reused else None
    assert spec.heard == end.heard == expected


def test_partial_draft_ms_is_checked():
    with pytest.raises(ValueError, match="partial_draft_ms"):
        StreamingConfig(partial_draft_ms=-2)
