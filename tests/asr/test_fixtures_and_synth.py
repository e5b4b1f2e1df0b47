"""The committed fixtures follow ANNOTATION.md; the synthesizer makes usable 16 kHz speech."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lab.tts.synth import (
    VOICES,
    SynthesisError,
    available_voices,
    degrade,
    engine_available,
    synthesize,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
INTENTS = {"find_product", "check_stock", "top_sellers", "associate_schedule", "out_of_scope"}
LABELS = {"BRAND", "PRODUCT", "SIZE", "COLOR", "DEPARTMENT", "DATE", "PERSON", "STORE"}


@pytest.fixture(scope="module")
def records() -> list[dict]:
    lines = (FIXTURES / "fixtures.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_fixture_set_shape(records):
    languages = Counter(r["language"] for r in records)
    assert len(records) >= 24 and languages["en"] == languages["es"]
    assert {r["intent"] for r in records} == INTENTS
    for lang in ("en", "es"):
        assert {r["intent"] for r in records if r["language"] == lang} == INTENTS
        assert len({r["voice"] for r in records if r["language"] == lang}) >= 2
    total = sum((FIXTURES / r["file"]).stat().st_size for r in records)
    assert total <= 3_000_000


def test_fixture_audio_is_16k_mono_wav(records):
    for r in records:
        info = sf.info(str(FIXTURES / r["file"]))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), r["file"]
        assert 0.8 < info.duration < 8.0
        assert VOICES[r["voice"]].language == r["language"]


def test_fixture_spans_match_text(records):
    for r in records:
        assert r["intent"] in INTENTS
        previous_end = 0
        for e in r["entities"]:
            assert e["label"] in LABELS
            assert r["text"][e["start"] : e["end"]] == e["text"], (r["file"], e)
            assert e["text"] == e["text"].strip() and e["start"] >= previous_end
            previous_end = e["end"]


def test_degrade_hits_the_requested_snr():
    rng = np.random.default_rng(1)
    clean = (np.sin(np.arange(16000) / 5) * 0.3).astype(np.float32)
    noisy = degrade(clean, snr_db=10.0, seed=3)
    noise = noisy - clean
    snr = 10 * np.log10(np.mean(clean**2) / np.mean(noise**2))
    assert abs(snr - 10.0) < 0.3
    assert np.array_equal(noisy, degrade(clean, snr_db=10.0, seed=3))  # reproducible
    wet = degrade(clean, reverb_rt60_s=0.4, seed=rng.integers(100))
    assert wet.shape == clean.shape and np.abs(wet).max() <= 1.0


def test_voice_registry_covers_both_languages():
    for lang in ("en", "es"):
        assert any(v.language == lang for v in VOICES.values())
        assert all(v.language == lang for v in available_voices(lang))


@pytest.mark.skipif(shutil.which("pico2wave") is None, reason="pico2wave not installed")
def test_synthesize_pico_spanish():
    audio = synthesize("¿Dónde está la leche Lala?", "pico-es-ES", rate=1.1, snr_db=30)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.8 < len(audio) / 16000 < 5.0 and 0.05 < np.abs(audio).max() <= 1.0


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_synthesize_espeak_rate_changes_length():
    slow = synthesize("where can I find Tide Pods", "espeak-en-us", rate=0.7, pad_s=0)
    fast = synthesize("where can I find Tide Pods", "espeak-en-us", rate=1.4, pad_s=0)
    assert len(slow) > 1.5 * len(fast)


def test_synthesize_rejects_empty_text():
    with pytest.raises(SynthesisError):
        synthesize("  ", "pico-en-US")


@pytest.mark.skipif(not engine_available("piper"), reason="piper-tts not installed (synth extra)")
def test_synthesize_piper():
    audio = synthesize("where can I find Tide Pods", "piper-en-US-joe")
    assert audio.dtype == np.float32 and 0.8 < len(audio) / 16000 < 5.0
