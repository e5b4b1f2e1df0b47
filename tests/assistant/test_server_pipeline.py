"""Pipeline wiring without Whisper: a stub first pass, the real parser and answerer."""

from __future__ import annotations

import numpy as np
import pytest

from asr.nbest import Hypothesis, NBest
from assistant import events
from assistant.pipeline import FinalRequest, Pipeline


class StubTranscriber:
    """nbest_batch returns fixed readings; records batch sizes."""

    def __init__(self, texts: list[str], language: str = "en") -> None:
        self.texts, self.language, self.batches = texts, language, []

    def nbest_batch(self, audios, languages, nbest=None):
        self.batches.append(len(audios))
        hyps = tuple(
            Hypothesis(t, asr_score=-0.1 * (i + 1), score=-0.1 * (i + 1))
            for i, t in enumerate(self.texts)
        )
        return [
            NBest(hyps, lang or self.language, 1.0, len(a) / 16000)
            for a, lang in zip(audios, languages, strict=True)
        ]

    def nbest(self, audio, language=None, nbest=None, options=None):
        return self.nbest_batch([audio], [language], nbest)[0]


class BrokenReranker:
    def rank(self, nbest):
        raise RuntimeError("onnx exploded")


def request(language=None):
    return FinalRequest(np.zeros(16000, np.float32), language, "1")


def test_finals_batch_and_shape():
    from nlu.baseline import BaselineParser

    stub = StubTranscriber(["where can I find tide pods", "where can I find tied pods"])
    pipeline = Pipeline(stub, BrokenReranker(), BaselineParser())
    results = pipeline.finals([request("en"), request("en"), request(None)])
    assert stub.batches == [3]  # one first-pass call for the whole batch
    body = events.final_fields(results[0])
    assert body["text"] == "where can I find tide pods"  # first-pass order kept (reranker failed)
    assert body["first_pass_text"] == body["text"]
    assert body["intent"]["name"] == "find_product"
    assert [h["text"] for h in body["nbest"]] == stub.texts
    assert body["answer"] is None and results[0].errors == ()
    assert set(results[0].timings_ms) == {"asr", "rescore", "nlu", "answer", "total"}
    assert set(body["timings_ms"]) == {"wait", "asr", "rescore", "nlu", "answer", "total"}
    assert pipeline.partial(np.zeros(8000, np.float32), None) == (
        "where can I find tide pods",
        "en",
    )


def test_database_down_is_reported_not_raised(tmp_path):
    pytest.importorskip("assistant.answer")
    from assistant.pipeline import build_assistant

    bundle = build_assistant(database_url=f"sqlite:///{tmp_path / 'missing' / 'inventory.sqlite'}")
    stub = StubTranscriber(["where can I find tide pods"])
    pipeline = Pipeline(stub, None, bundle.parser, bundle.answerer)
    (result,) = pipeline.finals([request("en")])
    assert [code for code, _ in result.errors] == ["db_unavailable"]
    assert result.answer is None and result.nlu.intent == "find_product"
    assert str(tmp_path) not in result.errors[0][1]  # no server paths to clients


def test_other_answer_failures_are_pipeline_errors():
    from nlu.baseline import BaselineParser

    class Exploding:
        def answer(self, nlu, store, nbest=None):
            raise KeyError("bug")

    pipeline = Pipeline(
        StubTranscriber(["where are the huggies"]), None, BaselineParser(), Exploding()
    )
    (result,) = pipeline.finals([request("en")])
    assert [code for code, _ in result.errors] == ["pipeline_error"]


def test_partials_wait_until_every_concurrent_final_is_done():
    """Continuous batching runs several final batches at once: a partial decode must stay
    skipped until the last of them ends, not the first."""
    import threading

    from nlu.baseline import BaselineParser

    release = {name: threading.Event() for name in ("a", "b")}
    entered = threading.Semaphore(0)

    class Gated(StubTranscriber):
        def nbest_batch(self, audios, languages, nbest=None):
            if len(audios) == 1 and audios[0].size == 16000:  # finals, not partials
                entered.release()
                release[languages[0]].wait(5)
            return super().nbest_batch(audios, languages, nbest)

    pipeline = Pipeline(Gated(["where can I find tide pods"]), None, BaselineParser())
    threads = [
        threading.Thread(target=pipeline.finals, args=([request(name)],)) for name in release
    ]
    for t in threads:
        t.start()
    for _ in threads:
        assert entered.acquire(timeout=5)  # both finals are inside the first pass
    partial_audio = np.zeros(8000, np.float32)
    assert pipeline.partial(partial_audio, "en") is None
    release["a"].set()
    threads[0].join(5)
    assert pipeline.partial(partial_audio, "en") is None  # final "b" still runs
    release["b"].set()
    threads[1].join(5)
    assert pipeline.partial(partial_audio, "en") == ("where can I find tide pods", "en")


class PhraseRecorder(StubTranscriber):
    """Also records the phrase selectors each batch was given."""

    def nbest_batch(self, audios, languages, nbest=None, phrases=None):
        self.phrases = phrases
        return super().nbest_batch(audios, languages, nbest)


def test_finals_bias_toward_the_catalog_unless_the_client_gives_phrases():
    from assistant.phrases import PhraseIndex

    catalog = PhraseIndex({"en": ("Tide Pods",) * 1 + tuple(f"Brand {i}" for i in range(300))})
    stub = PhraseRecorder(["where can I find tide pods"])
    pipeline = Pipeline(stub, phrases=catalog)
    client = FinalRequest(np.zeros(16000, np.float32), "en", "1", ("Huggies", "Hanes"))
    unbiased = FinalRequest(np.zeros(16000, np.float32), "en", "1", ())
    pipeline.finals([request("en"), client, unbiased])
    default, listed, empty = stub.phrases
    assert default is catalog and default.needs_draft
    assert not listed.needs_draft and listed.select([], "en") == ("Huggies", "Hanes")
    assert not empty  # an empty list: no prompt
    assert catalog.select(["where can I find tight pods"], "en")[0] == "Tide Pods"

    plain = StubTranscriber(["where can I find tide pods"])  # knows nothing of phrases
    Pipeline(plain).finals([request("en")])
    assert plain.batches == [1]


def test_a_request_with_a_partial_reading_selects_from_it_without_a_draft():
    from assistant.phrases import HeardDraft, PhraseIndex

    catalog = PhraseIndex({"en": ("Tide Pods", *(f"Brand {i}" for i in range(300)))})
    stub = PhraseRecorder(["where can I find tide pods"])
    audio = np.zeros(16000, np.float32)
    heard = FinalRequest(audio, "en", "1", heard="where can I find tight pods")
    menu = FinalRequest(audio, "en", "1", ("Huggies", "Hanes"), heard="huggies")
    Pipeline(stub, phrases=catalog).finals([heard, menu])
    reused, listed = stub.phrases
    assert isinstance(reused, HeardDraft) and not reused.needs_draft
    assert reused.select([], "en")[0] == "Tide Pods"
    assert not isinstance(listed, HeardDraft)  # a whole list needs no draft to reuse


class CountingParser:
    """The baseline parser, counting the texts it parses."""

    def __init__(self) -> None:
        from nlu.baseline import BaselineParser

        self.inner, self.texts = BaselineParser(), []

    def parse(self, text, language=None):
        self.texts.append(text)
        return self.inner.parse(text, language)

    def parse_batch(self, texts, languages):
        self.texts.extend(texts)
        return self.inner.parse_batch(texts, languages)


class RecordingAnswerer:
    def __init__(self) -> None:
        self.calls = []

    def answer(self, nlu, store, nbest=None, nlus=None):
        self.calls.append(nlus)
        return None


def test_the_answer_stage_answers_from_the_batch_parses():
    """The server answers off the batch worker (answer=False, then AnswerStage): it hands the
    answerer the parses the batch made of every hypothesis, so none is parsed twice."""
    import asyncio

    from assistant.answer_stage import AnswerStage

    texts = ["where can I find tide pods", "where can I find tied pods", "where can I fine"]
    parser, answerer = CountingParser(), RecordingAnswerer()
    pipeline = Pipeline(StubTranscriber(texts), None, parser, answerer)
    (result,) = pipeline.finals([request("en")], answer=False)
    assert [n.text for n in result.nlus] == texts and result.nlu == result.nlus[0]
    assert answerer.calls == [] and parser.texts == texts
    asyncio.run(AnswerStage(answerer).complete(result, "1"))
    assert answerer.calls == [list(result.nlus)] and parser.texts == texts  # not parsed again

    (single,) = Pipeline(StubTranscriber(texts[:1]), None, parser).finals([request("en")])
    assert single.nlus is None  # one hypothesis: parsed alone, the answerer gets no list
