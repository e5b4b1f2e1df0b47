"""Voice plan of the n-best corpus: held-out voices never in train, every split speaks both
languages, plans are deterministic (no TTS run here)."""

import json

from lab.rescoring.nbest_corpus import plan_utterance, sample_queries
from lab.rescoring.synth import CORPUS_VOICES, HELD_OUT, VOICES, voices_for


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


def test_sample_queries_is_prefix_stable(tmp_path):
    rows = [
        {"text": f"{lang} query {i}", "language": lang} for lang in ("en", "es") for i in range(40)
    ] + [{"text": "en query 3", "language": "en"}, {"text": "noisy", "language": "en", "noisy": 1}]
    (tmp_path / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    small = sample_queries("dev", 20, corpus_dir=tmp_path)
    large = sample_queries("dev", 60, corpus_dir=tmp_path)
    assert [r["text"] for r in large[:20]] == [r["text"] for r in small]
    assert len({r["text"] for r in large}) == 60
    assert sum(r["language"] == "es" for r in large) == 30
    assert "noisy" not in {r["text"] for r in large}
