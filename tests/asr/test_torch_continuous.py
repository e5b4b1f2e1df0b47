"""ContinuousDecoder (asr.torch_continuous) over a TorchTranscriber with tiny random weights.

Same NBest as `TorchTranscriber.nbest` for every clip, however clips join; the widen-beam
retry runs as a second submission; failures reach the callers' futures.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from tiny_whisper import torch_threads, write_tiny_whisper_dir

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from asr.torch_backend import TorchTranscriber, TorchTranscriberConfig  # noqa: E402
from asr.torch_beam import ContinuousBeamSearch  # noqa: E402
from asr.torch_continuous import ContinuousDecoder  # noqa: E402

LANGS = ["en", "es", "auto", "en", "es", "auto"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def transcriber(tmp_path_factory):
    folder = write_tiny_whisper_dir(tmp_path_factory.mktemp("tiny-whisper"))
    config = TorchTranscriberConfig(
        model_dir=folder, device="cpu", nbest=3, beam_size=4, max_new_tokens=12
    )
    return TorchTranscriber(config)


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(0)
    shapes = [(0.5, 0.1), (1.0, 0.3), (1.7, 0.01), (2.2, 1.0), (0.8, 0.05), (3.0, 0.2)]
    return [(scale * rng.standard_normal(int(16000 * s))).astype(np.float32) for s, scale in shapes]


def assert_same_nbest(got, want):
    assert [h.text for h in got.hypotheses] == [h.text for h in want.hypotheses]
    assert [h.token_ids for h in got.hypotheses] == [h.token_ids for h in want.hypotheses]
    for a, b in zip(got.hypotheses, want.hypotheses, strict=True):
        assert a.asr_score == pytest.approx(b.asr_score, abs=1e-3)
    assert got.language == want.language
    assert got.language_prob == pytest.approx(want.language_prob, abs=1e-3)
    assert got.duration_s == want.duration_s


def test_same_nbest_as_the_transcriber(transcriber, clips):
    want = [transcriber.nbest(clip, lang) for clip, lang in zip(clips, LANGS, strict=True)]
    with ContinuousDecoder(transcriber) as decoder:
        got = decoder.nbest_batch(clips, LANGS)
        single = decoder.nbest(clips[3], "en", nbest=2)
    for a, b in zip(got, want, strict=True):
        assert_same_nbest(a, b)
        assert a.extra["continuous"] and a.extra["backend"] == "torch"
    assert_same_nbest(single, transcriber.nbest(clips[3], "en", nbest=2))


def test_clips_joining_a_running_search_one_per_step(transcriber, clips):
    """max_encode_batch=1: each queued clip joins the running batch one step after the
    previous one, and clips submitted from several threads still decode as alone."""
    want = [transcriber.nbest(clip, "en") for clip in clips]
    with ContinuousDecoder(transcriber, max_encode_batch=1) as decoder:
        futures: list = [None] * len(clips)
        start = threading.Barrier(3)

        def submit(indices):
            start.wait()
            for i in indices:
                futures[i] = decoder.submit(clips[i], "en")

        threads = [threading.Thread(target=submit, args=(range(j, 6, 3),)) for j in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        got = [f.result(timeout=60) for f in futures]
        stats = decoder.stats
    for a, b in zip(got, want, strict=True):
        assert_same_nbest(a, b)
    assert stats.max_batch >= 2 and stats.encoder_batches == len(clips)


def test_widen_beam_runs_as_a_second_submission(transcriber, clips, monkeypatch):
    """An utterance left with fewer than n readings is decoded again with a wider beam, as
    `nbest_batch` does: same final beam and readings on both paths."""
    readings = transcriber.readings
    # The first beam (6 = 2 x nbest) "merges" into one reading, so every clip needs a retry.
    monkeypatch.setattr(
        transcriber,
        "readings",
        lambda results, language: readings(results, language)[: 1 if len(results) <= 6 else None],
    )
    want = [transcriber.nbest(clip, "en") for clip in clips[:3]]
    with ContinuousDecoder(transcriber) as decoder:
        got = decoder.nbest_batch(clips[:3], ["en"] * 3)
        assert decoder.stats.widened >= 3
    for a, b in zip(got, want, strict=True):
        assert_same_nbest(a, b)
        assert a.extra["beam"] == b.extra["beam"] >= 12
        assert len(a.hypotheses) == 3


def test_bad_requests_raise_at_submit(transcriber, clips):
    with ContinuousDecoder(transcriber) as decoder:
        with pytest.raises(ValueError):
            decoder.submit(np.zeros(0, dtype=np.float32), "en")
        with pytest.raises(ValueError):
            decoder.submit(clips[0], "fr")
        with pytest.raises(ValueError):
            decoder.submit(clips[0], "en", nbest=33)
        with pytest.raises(ValueError):
            decoder.nbest_batch(clips[:2], ["en"])
    with pytest.raises(RuntimeError, match="closed"):
        decoder.submit(clips[0], "en")


def test_a_failing_step_fails_its_clips_and_the_decoder_goes_on(transcriber, clips, monkeypatch):
    step = ContinuousBeamSearch.step
    calls = {"n": 0}

    def flaky(self):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return step(self)

    monkeypatch.setattr(ContinuousBeamSearch, "step", flaky)
    with ContinuousDecoder(transcriber) as decoder:
        with pytest.raises(RuntimeError, match="simulated"):
            decoder.nbest(clips[0], "en")
        assert_same_nbest(decoder.nbest(clips[1], "en"), transcriber.nbest(clips[1], "en"))


def test_wraps_only_the_torch_transcriber(transcriber):
    assert ContinuousDecoder.supports(transcriber)
    assert not ContinuousDecoder.supports(object())
    decoder = ContinuousDecoder(transcriber)
    assert decoder.device == transcriber.device and decoder.config is transcriber.config
    decoder.close()


def test_streams_benchmark_serves_the_same_finals_both_ways(transcriber, clips):
    from lab.bench.first_pass import simulate_streams

    rows = [{"audio": clip[:4800], "language": "en"} for clip in clips]  # 0.3 s each
    runs = {
        mode: simulate_streams(transcriber, rows, 6, 1.5, 1.0, 8, seed=0, batching=mode)
        for mode in ("static", "continuous")
    }
    assert runs["static"]["finals"] == runs["continuous"]["finals"] >= 1
    assert runs["continuous"]["batch_unit"] == "utterances per decoder step"
    assert runs["continuous"]["decoder_steps"] >= 1
    for run in runs.values():
        assert run["final_p50_ms"] > 0 and run["kept_up"]


def test_phrases_on_the_torch_backends(transcriber, clips):
    """Both PyTorch paths take phrase selectors: a draft, then a prompted decode, merged."""

    class Drafted:
        needs_draft = True

        def __init__(self):
            self.seen = []

        def select(self, drafts, language):
            self.seen.append(language)
            return ("where",)

    for decoder in (transcriber, ContinuousDecoder(transcriber)):
        selector = Drafted()
        try:
            got = decoder.nbest_batch(clips[:2], ["en", "en"], nbest=2, phrases=[selector, None])
            single = decoder.nbest(clips[0], "en", nbest=2, phrases=selector)
        finally:
            if isinstance(decoder, ContinuousDecoder):
                decoder.close()
        assert selector.seen == ["en", "en"]
        assert len(got) == 2 and all(1 <= len(nb.hypotheses) <= 2 for nb in got)
        assert [h.text for h in single.hypotheses] == [h.text for h in got[0].hypotheses]
