"""Protocol v1 over the streaming policy, against the instant fake pipeline (no models):
input rates other than 16 kHz, a query with an internal pause (one final), speculative finals
and adaptive endpointing as the client sees them (the `final` event's added fields), and
segmentation parity: a final decodes the samples `assistant transcribe` decodes of the file."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
from websockets.sync.client import connect
from ws_harness import FakePipeline, fake_server, recv_json, recv_until, silence_pcm, tone_pcm

from asr.nbest import Hypothesis, NBest


def stream(url: str, pcm: bytes, rate: int, chunk_s: float = 0.1) -> list[dict]:
    """start at `rate`, the PCM in 100 ms frames (4x real time), stop -> events up to end."""
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate": rate}))
        assert recv_json(ws)["sample_rate"] == rate
        step = int(chunk_s * rate) * 2
        for i in range(0, len(pcm), step):
            ws.send(pcm[i : i + step])
            time.sleep(chunk_s / 4)
        ws.send(json.dumps({"type": "stop"}))
        return recv_until(ws, "end")


def paused_query(rate: int, pause_s: float = 0.3) -> bytes:
    """1.2 s of speech, a pause inside the query, 0.8 s more, then 1 s of silence."""
    return (
        tone_pcm(1.2, rate)
        + silence_pcm(pause_s, rate)
        + tone_pcm(0.8, rate)
        + silence_pcm(1.0, rate)
    )


@pytest.fixture(scope="module")
def fake():
    with fake_server() as st:
        yield st


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_a_query_with_an_internal_pause_is_one_final_at_every_rate(fake, rate):
    got = stream(fake.url, paused_query(rate), rate)
    finals = [e for e in got if e["type"] == "final"]
    assert [f["utterance"] for f in finals] == [0] and got[-1]["type"] == "end"
    (final,) = finals
    # stream time is 16 kHz time whatever the input rate: the speech spans 2.3 s
    assert final["end_s"] - final["start_s"] == pytest.approx(2.3, abs=0.15)
    assert final["reason"] == "silence" and final["silence_ms"] == pytest.approx(500, abs=20)
    # the speculation started in the pause was dropped; the one after the speech was used
    assert final["speculative"] is True and final["complete"] is None
    assert {"speculative", "complete", "silence_ms"} <= set(final)


def test_speculation_off_decodes_at_the_endpoint():
    from asr.streaming import StreamingConfig

    with fake_server(streaming=StreamingConfig(speculate_ms=0)) as st:
        got = stream(st.url, paused_query(16000), 16000)
    (final,) = [e for e in got if e["type"] == "final"]
    assert final["speculative"] is False and st.pipeline.batches == [1]


class JudgedPipeline(FakePipeline):
    """The fake with a parser, so sessions judge turns; `text` is every final's reading."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.parser = object()  # present: the session builds a TurnJudge (of_result needs no parse)
        self.text = text

    def finals(self, requests, answer: bool = True):
        out = []
        for result in super().finals(requests, answer):
            nbest = dataclasses.replace(
                result.nbest, hypotheses=(Hypothesis(self.text, -0.1, score=-0.1),)
            )
            out.append(
                dataclasses.replace(
                    result, nbest=nbest, nlu=dataclasses.replace(result.nlu, text=self.text)
                )
            )
        return out


@pytest.mark.parametrize(
    ("text", "complete", "silence_ms"),
    [("where is tide", True, 256), ("where is the", False, 1000)],
)
def test_adaptive_endpoint_follows_the_speculative_final(text, complete, silence_ms):
    pcm = tone_pcm(1.2, 16000) + silence_pcm(1.5, 16000)
    with fake_server(JudgedPipeline(text)) as st:
        got = stream(st.url, pcm, 16000)
    (final,) = [e for e in got if e["type"] == "final"]
    assert final["complete"] is complete and final["speculative"] is True
    assert final["silence_ms"] == pytest.approx(silence_ms, abs=40)
    assert st.pipeline.batches == [1]  # the endpoint took the speculation's result


class RecordingPipeline(FakePipeline):
    """The fake that keeps the audio of every final request; request k reads "where is tide"
    and k + 1 x's (then `tail`), so a final's text says which audio it decoded. judged: with a
    parser, so the session judges turns (the fake's parse is a find_product with a brand:
    complete, unless `tail` is a trailing function word)."""

    def __init__(self, judged: bool = False, tail: str = "") -> None:
        super().__init__()
        self.audio: list = []
        self.tail = tail
        if judged:
            self.parser = object()  # present: the session builds a TurnJudge

    def finals(self, requests, answer: bool = True):
        out = []
        for request, result in zip(requests, super().finals(requests, answer), strict=True):
            self.audio.append(request.audio)
            text = f"where is tide {'x' * len(self.audio)}{self.tail}"
            nbest = NBest((Hypothesis(text, -0.1, score=-0.1),), "en", 1.0, 1.0)
            nlu = dataclasses.replace(result.nlu, text=text)
            out.append(dataclasses.replace(result, nbest=nbest, nlu=nlu))
        return out

    def decoded(self, final: dict):
        return self.audio[final["text"].split()[3].count("x") - 1]


def wav_file(path, pcm: bytes, rate: int):
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return path


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize(
    ("judged", "tail", "pause_s", "complete"),
    [(False, "", 0.3, None), (True, "", 0.2, True), (True, " the", 0.3, False)],
)
def test_a_final_decodes_the_samples_transcribe_decodes(
    tmp_path, rate, judged, tail, pause_s, complete
):
    """Whatever the input rate and the turn verdict, the streamed final of a query with an
    internal pause decodes exactly the samples `assistant transcribe` decodes of the file the
    client would have recorded (assistant.commands.transcribe.pieces: the same resampling,
    VAD and utterance bounds)."""
    from asr.audio import decode_audio
    from asr.streaming import StreamingConfig
    from asr.vad import EnergyVad
    from assistant.commands.transcribe import pieces

    pcm = silence_pcm(0.5, rate) + paused_query(rate, pause_s)
    pipeline = RecordingPipeline(judged, tail)
    with fake_server(pipeline) as st:
        got = stream(st.url, pcm, rate)
    (final,) = [e for e in got if e["type"] == "final"]
    assert final["complete"] is complete
    (piece,) = pieces(
        decode_audio(wav_file(tmp_path / "q.wav", pcm, rate)), StreamingConfig(), EnergyVad()
    )
    samples, start_s, end_s = piece
    assert np.array_equal(pipeline.decoded(final), samples)
    assert (final["start_s"], final["end_s"]) == (start_s, end_s)
