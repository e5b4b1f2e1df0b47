"""Whisper n-best on the fixtures. Whisper on 2 cores costs ~1-2 s a clip: few decodes here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asr.audio import decode_audio
from asr.nbest import NBest
from asr.transcriber import TranscriberConfig, reading_key
from lab.wer import oracle, wer

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REAL_SPEECH = Path(__file__).resolve().parents[3] / "shared" / "real-speech"


def fixture(name: str) -> dict:
    for line in (FIXTURES / "fixtures.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if Path(record["file"]).stem == name:
            return {**record, "audio": decode_audio(FIXTURES / record["file"])}
    raise KeyError(name)


@pytest.fixture(scope="module")
def en_es_batch(whisper_transcriber):
    """One batched decode of an English and a Spanish clip, language detected."""
    clips = [fixture("en_01_tide_pods"), fixture("es_02_leche_lala")]
    return clips, whisper_transcriber.nbest_batch([c["audio"] for c in clips], ["auto", "auto"])


def test_reading_key_merges_spellings_of_one_reading():
    assert reading_key("Where can I find Tide Pods?") == reading_key("where can i find tide pods")
    assert reading_key("¿Dónde?") == reading_key("dónde")
    assert reading_key("tidepods") != reading_key("tide pods")  # another reading
    # accents and number form are spellings of one reading, given the language
    assert reading_key("dónde", "es") == reading_key("donde", "es") == reading_key("donde")
    assert reading_key("pañales u 10", "es") == reading_key("pañales U diez", "es")
    assert reading_key("size 4", "en") == reading_key("size four", "en")
    assert reading_key("talla 10", "es") != reading_key("talla once", "es")


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown language"):
        TranscriberConfig(language="fr")
    with pytest.raises(ValueError):
        TranscriberConfig(nbest=0)
    with pytest.raises(ValueError):
        TranscriberConfig(device="tpu")
    with pytest.raises(ValueError, match="window_s"):
        TranscriberConfig(window_s=45)


def test_nbest_shape_order_distinct(en_es_batch):
    _, results = en_es_batch
    for nbest in results:
        assert isinstance(nbest, NBest)
        hyps = nbest.hypotheses
        assert len(hyps) == 5
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert len({reading_key(h.text) for h in hyps}) == 5
        for h in hyps:
            assert h.text == h.text.strip() and h.text
            assert h.token_ids and h.rescore_score is None and h.score == h.asr_score
            assert h.logprob_sum < 0 and h.asr_score < 0
            # asr_score is the length-normalized sum (length_penalty 1).
            assert h.asr_score == pytest.approx(h.logprob_sum / len(h.token_ids), rel=1e-4)
        assert nbest.first_pass_best == hyps[0]
        assert 1.0 < nbest.duration_s < 6.0


def test_languages_detected(en_es_batch):
    _, (en, es) = en_es_batch
    assert en.language == "en" and en.language_prob > 0.8
    assert es.language == "es" and es.language_prob > 0.8


def test_transcripts_are_close(en_es_batch):
    clips, results = en_es_batch
    for clip, nbest in zip(clips, results, strict=True):
        assert wer([clip["text"]], [nbest.text], clip["language"]) <= 0.5
        # The words carrying the answer are somewhere in the list.
        _, best = oracle(clip["text"], [h.text for h in nbest.hypotheses], clip["language"])
        assert best.rate <= 0.34


def test_single_spanish_decode_with_language_given(whisper_transcriber, en_es_batch):
    clips, results = en_es_batch
    nbest = whisper_transcriber.nbest(clips[1]["audio"], language="es", nbest=3)
    assert nbest.language == "es" and nbest.language_prob == 1.0
    assert len(nbest.hypotheses) == 3
    # Batched and single decoding agree on the reading: the single best is one of the batch's
    # readings up to a word (the batch pads to its longest clip, so int8 numerics differ).
    _, nearest = oracle(nbest.text, [h.text for h in results[1].hypotheses], "es")
    assert nearest.errors <= 1, (nbest.text, [h.text for h in results[1].hypotheses])


def test_unknown_language_and_empty_audio_rejected(whisper_transcriber):
    import numpy as np

    with pytest.raises(ValueError, match="unknown language"):
        whisper_transcriber.nbest(np.zeros(16000, dtype=np.float32), language="fr")
    with pytest.raises(ValueError, match="empty"):
        whisper_transcriber.nbest(np.zeros(0, dtype=np.float32))


@pytest.mark.skipif(not (REAL_SPEECH / "jfk.flac").is_file(), reason="../shared/real-speech absent")
def test_real_speech_jfk(whisper_transcriber):
    nbest = whisper_transcriber.nbest(decode_audio(REAL_SPEECH / "jfk.flac"), nbest=2)
    reference = (
        "And so my fellow Americans, ask not what your country can do for you, "
        "ask what you can do for your country."
    )
    assert nbest.language == "en"
    assert wer([reference], [nbest.text], "en") <= 0.1


def test_readings_merge_keeps_best_variant(whisper_transcriber):
    """Merging on a hand-made generate() result: exact, no decoding."""
    from types import SimpleNamespace

    tok = whisper_transcriber._tokenizer("en")
    texts = [" Tide pods?", " tide pods", " Tide Pods.", " tied pods"]
    result = SimpleNamespace(
        sequences_ids=[tok.encode(t) for t in texts], scores=[-0.2, -0.3, -0.25, -0.4]
    )
    hyps = whisper_transcriber._readings(result, "en")
    assert [h.text for h in hyps] == ["Tide pods?", "tied pods"]
    assert hyps[0].asr_score == -0.2
    assert hyps[0].logprob_sum == pytest.approx(-0.2 * len(hyps[0].token_ids))


def test_wider_beam_fills_the_list(whisper_transcriber):
    """Eight distinct readings of a short clip need more than the first 16-wide beam."""
    nbest = whisper_transcriber.nbest(fixture("es_13_chiste")["audio"], language="es", nbest=8)
    assert len({reading_key(h.text) for h in nbest.hypotheses}) == len(nbest.hypotheses) == 8


class FixedPhrases:
    """A selector whose list fits the prompt: no draft."""

    needs_draft = False

    def select(self, drafts, language):
        return ("Tide Pods", "Huggies")


class DraftedPhrases(FixedPhrases):
    """A selector that wants a draft; records what it was shown."""

    needs_draft = True

    def __init__(self):
        self.seen = []

    def select(self, drafts, language):
        self.seen.append((list(drafts), language))
        return super().select(drafts, language)


def test_phrases_prompt_the_decoder_per_utterance(whisper_transcriber):
    en, es = fixture("en_01_tide_pods")["audio"], fixture("es_02_leche_lala")["audio"]
    drafted = DraftedPhrases()
    fixed, unbiased, with_draft = whisper_transcriber.nbest_batch(
        [en, es, en], ["en", "es", "en"], nbest=5, phrases=[FixedPhrases(), None, drafted]
    )
    assert fixed.extra["prompt_tokens"] > 0 and not fixed.extra["draft"]
    assert unbiased.extra["prompt_tokens"] == 0 and not unbiased.extra["draft"]
    assert with_draft.extra["draft"] and with_draft.extra["prompt_tokens"] > 0
    assert len(drafted.seen) == 1 and drafted.seen[0][1] == "en" and drafted.seen[0][0][0]
    for nbest in (fixed, unbiased, with_draft):
        keys = [reading_key(h.text, nbest.language) for h in nbest.hypotheses]
        assert 1 <= len(keys) <= 5 and len(set(keys)) == len(keys)
        scores = [h.score for h in nbest.hypotheses]
        assert scores == sorted(scores, reverse=True)
    # bias_terms given for the call win over the selectors
    plain = whisper_transcriber.nbest(en, "en", bias_terms=(), phrases=FixedPhrases())
    assert plain.extra["prompt_tokens"] == 0


def test_unsure_language_is_decoded_both_ways(whisper_transcriber, monkeypatch):
    """Detection below LID_CONFIDENT: both languages decoded, the better-scored one kept."""
    import copy
    import dataclasses

    from asr.transcriber import LID_CONFIDENT

    audio = fixture("es_02_leche_lala")["audio"]
    whisper_transcriber = copy.copy(whisper_transcriber)  # the rule is off by default
    whisper_transcriber.config = dataclasses.replace(
        whisper_transcriber.config, lid_confident=LID_CONFIDENT
    )
    sure = whisper_transcriber.nbest(audio)
    assert sure.extra["languages_decoded"] == [sure.language]
    monkeypatch.setattr(
        whisper_transcriber, "_detect", lambda encoded: [("en", LID_CONFIDENT - 0.2)]
    )
    unsure = whisper_transcriber.nbest(audio)
    assert unsure.extra["languages_decoded"] == ["en", "es"]
    want_prob = LID_CONFIDENT - 0.2 if unsure.language == "en" else 1 - (LID_CONFIDENT - 0.2)
    assert unsure.language_prob == pytest.approx(want_prob)
    given = whisper_transcriber.nbest(audio, "es")  # a given language is never second-guessed
    assert given.extra["languages_decoded"] == ["es"]


def test_looped_readings_are_recognized():
    from asr.transcriber import looks_looped

    assert looks_looped("Ah, " * 30)
    assert looks_looped("Ritz, Holanda, " * 8)
    assert not looks_looped("Where can I find Tide pods in aisle four or five today, please?")
    assert not looks_looped("ah ah ah")  # too short to judge
