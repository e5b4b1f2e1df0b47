"""Voice plan of the n-best corpus: held-out voices never in train, every split speaks both
languages, plans are deterministic (no TTS run here)."""

from rescoring.nbest_corpus import plan_utterance
from rescoring.synth import CORPUS_VOICES, HELD_OUT, VOICES, voices_for


def test_held_out_voices_only_outside_train():
    assert {VOICES[n].language for n in HELD_OUT} == {"en", "es"}
    for lang in ("en", "es"):
        assert not {v.name for v in voices_for(lang, "train")} & HELD_OUT
        assert {v.name for v in voices_for(lang, "dev")} == {
            v.name for v in voices_for(lang, "train")
        }
        test = {v.name for v in voices_for(lang, "test")}
        assert {n for n in HELD_OUT if VOICES[n].language == lang} <= test
    assert all(name in VOICES for names in CORPUS_VOICES.values() for name in names)


def test_plan_is_deterministic_and_in_the_split_voices():
    row = {"text": "donde estan los panales", "language": "es"}
    a, b = plan_utterance(row, "train", 7), plan_utterance(row, "train", 7)
    assert a == b and a["id"] == "train-000007"
    voices = {v.name for v in voices_for("es", "train")}
    assert all(plan_utterance(row, "train", i)["voice"] in voices for i in range(200))
    assert 0.85 <= a["rate"] <= 1.2
