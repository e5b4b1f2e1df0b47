"""Streaming policy: endpointing and local-agreement partials on synthetic audio."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from asr.streaming import (
    Endpoint,
    Partial,
    Speculation,
    StreamingConfig,
    StreamingPolicy,
    agreed_prefix,
)
from asr.vad import SAMPLE_RATE, EnergyVad

SR = SAMPLE_RATE


def tone(seconds: float, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), dtype=np.float32)


def run(policy: StreamingPolicy, audio: np.ndarray, chunk: int = 1600) -> list:
    events = []
    for i in range(0, len(audio), chunk):
        policy.push(audio[i : i + chunk])
        events += policy.poll()
    return events + policy.finish()


def endpoints(events: list) -> list[Endpoint]:
    return [e for e in events if isinstance(e, Endpoint)]


def test_one_utterance_ends_after_configured_silence():
    policy = StreamingPolicy(StreamingConfig(endpoint_silence_ms=500), vad=EnergyVad())
    audio = np.concatenate([silence(0.5), tone(1.5), silence(0.4)])
    events = []
    for i in range(0, len(audio), 1600):
        policy.push(audio[i : i + 1600])
        events += policy.poll()
    assert endpoints(events) == []  # 400 ms of silence is not yet an endpoint
    policy.push(silence(0.2))
    (end,) = endpoints(policy.poll())
    assert end.reason == "silence" and end.utterance == 0
    assert end.start_s == pytest.approx(0.5, abs=0.1) and end.end_s == pytest.approx(2.0, abs=0.1)
    # the lead-in (all 0.5 s of it: less than the 1 s pre-roll), the speech, 160 ms after it
    assert len(end.audio) / SR == pytest.approx(0.5 + 1.5 + 0.16, abs=0.1)
    assert policy.finish() == []


def test_many_utterances_short_pauses_do_not_split():
    policy = StreamingPolicy(StreamingConfig(), vad=EnergyVad())
    audio = np.concatenate(
        [tone(0.8), silence(0.2), tone(0.6), silence(1.0), tone(1.0), silence(1.0), tone(0.5)]
    )
    ends = endpoints(run(policy, audio))
    assert [e.utterance for e in ends] == [0, 1, 2]
    assert [e.reason for e in ends] == ["silence", "silence", "stop"]
    assert len(ends[0].audio) / SR == pytest.approx(1.6 + 0.2, abs=0.1)  # no pre-roll at t=0


def test_clicks_do_not_start_an_utterance():
    policy = StreamingPolicy(StreamingConfig(min_speech_ms=160), vad=EnergyVad())
    audio = np.concatenate([silence(0.3), tone(0.064), silence(1.0), tone(0.05), silence(0.5)])
    assert run(policy, audio) == []


def test_max_utterance_length_cuts_and_goes_on():
    policy = StreamingPolicy(StreamingConfig(max_utterance_s=2.0), vad=EnergyVad())
    ends = endpoints(run(policy, np.concatenate([tone(5.0), silence(1.0)])))
    assert [e.reason for e in ends[:2]] == ["max_length", "max_length"]
    assert all(len(e.audio) / SR <= 2.0 + 1e-6 for e in ends)
    assert sum(len(e.audio) for e in ends) / SR == pytest.approx(5.0, abs=0.4)


def test_chunking_does_not_change_the_result():
    audio = np.concatenate([silence(0.3), tone(1.0), silence(0.8), tone(0.7), silence(0.7)])
    results = []
    for chunk in (37, 512, 4000, len(audio)):
        ends = endpoints(run(StreamingPolicy(vad=EnergyVad()), audio, chunk))
        results.append([(e.utterance, e.reason, e.start_s, e.end_s, len(e.audio)) for e in ends])
    assert all(r == results[0] for r in results) and len(results[0]) == 2


class ScriptedDecoder:
    """Returns the next scripted text per call; records the languages it was asked for."""

    def __init__(self, texts: list[str], language: str = "en") -> None:
        self.texts, self.language, self.calls = list(texts), language, []

    def __call__(self, audio: np.ndarray, language: str | None) -> tuple[str, str]:
        self.calls.append((len(audio), language))
        text = self.texts[min(len(self.calls), len(self.texts)) - 1]
        return text, language or self.language


def test_partials_commit_only_what_two_decodes_agree_on_and_never_shrink():
    decoder = ScriptedDecoder(
        [
            "where",
            "where can eye",
            "Where can I find",
            "where can I find tied",
            "where can I find tide pods",
        ]
    )
    config = StreamingConfig(partial_interval_s=0.5, speculate_ms=0)  # partials in pauses too
    policy = StreamingPolicy(config, EnergyVad(), decoder)
    events = run(policy, np.concatenate([tone(3.0), silence(0.8)]))
    partials = [e.text for e in events if isinstance(e, Partial)]
    assert partials == ["where", "where can", "where can I find", "where can I find tide pods"]
    for a, b in zip(partials, partials[1:], strict=False):
        assert b.startswith(a)
    # about one decode every 0.5 s of speech, never more than one per poll
    assert 4 <= len(decoder.calls) <= 7
    assert all(n2 > n1 for (n1, _), (n2, _) in zip(decoder.calls, decoder.calls[1:], strict=False))


def test_partial_language_settles_after_enough_audio_and_final_detects_again():
    decoder = ScriptedDecoder(["dónde", "dónde están"], language="es")
    policy = StreamingPolicy(vad=EnergyVad(), partial_decoder=decoder)
    (end,) = endpoints(run(policy, np.concatenate([tone(2.6), silence(0.8)])))
    langs = [lang for n, lang in decoder.calls]
    settled = [i for i, (n, _) in enumerate(decoder.calls) if n >= 1.5 * SR]
    assert langs[: settled[0] + 1] == [None] * (settled[0] + 1)  # detect until 1.5 s seen
    assert all(lang == "es" for lang in langs[settled[0] + 1 :]) and len(langs) > settled[0] + 1
    assert end.language is None  # the final detects on the whole utterance
    # a client-given language is passed through untouched
    policy = StreamingPolicy(vad=EnergyVad(), partial_decoder=decoder, language="en")
    (end,) = endpoints(run(policy, np.concatenate([tone(1.6), silence(0.8)])))
    assert end.language == "en" and decoder.calls[-1][1] == "en"


def test_partials_off_and_failing_decoder_keep_finals():
    def broken(audio, language):
        raise RuntimeError("boom")

    for policy in (
        StreamingPolicy(StreamingConfig(partials=False), EnergyVad(), ScriptedDecoder(["x"])),
        StreamingPolicy(StreamingConfig(), EnergyVad(), broken),
        StreamingPolicy(StreamingConfig(), EnergyVad(), lambda audio, language: None),  # skipped
    ):
        events = run(policy, np.concatenate([tone(1.5), silence(0.8)]))
        assert [type(e) for e in events] == [Speculation, Endpoint]


def test_agreed_prefix_ignores_case_and_punctuation():
    assert agreed_prefix(["where", "can", "I"], ["Where", "can", "I", "find"]) == [
        "Where",
        "can",
        "I",
    ]
    assert agreed_prefix(["tide", "pods?"], ["tide", "pods"]) == ["tide", "pods"]
    assert agreed_prefix([], ["a"]) == [] and agreed_prefix(["a"], ["b"]) == []


def test_config_rejects_bad_combinations():
    with pytest.raises(ValueError):
        StreamingConfig(vad_threshold=0.3, vad_neg_threshold=0.5)
    with pytest.raises(ValueError):
        StreamingConfig(endpoint_silence_ms=0)


@pytest.mark.skipif(shutil.which("pico2wave") is None, reason="pico2wave not installed")
def test_silero_endpoints_two_spoken_queries(tmp_path):
    from faster_whisper.audio import decode_audio

    from asr.vad import SileroVad

    clips = []
    for i, (lang, text) in enumerate(
        [("en-US", "where can I find tide pods"), ("es-ES", "dónde están los pañales")]
    ):
        path = tmp_path / f"{i}.wav"
        subprocess.run(["pico2wave", "-l", lang, "-w", str(path), text], check=True)
        clips.append(decode_audio(str(path)))
    audio = np.concatenate([silence(0.5), clips[0], silence(1.0), clips[1], silence(1.0)])
    ends = endpoints(run(StreamingPolicy(vad=SileroVad()), audio))
    assert [e.reason for e in ends] == ["silence", "silence"]
    for end, clip in zip(ends, clips, strict=True):
        # the clip (with its own lead-in and tail) and up to 1 s of pre-roll
        assert -0.6 < (len(end.audio) - len(clip)) / SR < 1.2
