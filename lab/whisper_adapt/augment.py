"""Training-time degradations of clean 16 kHz speech (float32, shape (samples,)).

The kinds here are the training kinds only: white/pink noise and babble of training voices at
0-20 dB SNR, synthetic room reverberation with RT60 0.2-0.6 s, a telephone band (8 kHz,
300-3400 Hz) and speed 0.9-1.1. The evaluation uses other kinds (brown noise, babble of
held-out voices, RT60 0.7-1.0 s, mu-law telephone), so a gain measured there is not a gain
on the exact noise trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from asr.audio import SAMPLE_RATE, resample
from lab.tts.synth import room_impulse_response

TELEPHONE_RATE = 8_000
TELEPHONE_BAND_HZ = (300.0, 3400.0)


@dataclass(frozen=True)
class Condition:
    """One draw of degradations, recorded in the manifest. None/1.0 means not applied."""

    noise: str | None = None  # "white", "pink", "babble"
    snr_db: float | None = None
    rt60_s: float | None = None
    telephone: bool = False
    speed: float = 1.0

    @property
    def label(self) -> str:
        parts = []
        if self.speed != 1.0:
            parts.append(f"speed{self.speed:.2f}")
        if self.rt60_s:
            parts.append(f"reverb{self.rt60_s:.1f}")
        if self.telephone:
            parts.append("telephone")
        if self.noise:
            parts.append(f"{self.noise}{self.snr_db:.0f}dB")
        return "+".join(parts) or "clean"


def draw_condition(rng: np.random.Generator, clean_share: float = 0.2) -> Condition:
    """A random condition: `clean_share` untouched, the rest a mix of the degradations."""
    if rng.random() < clean_share:
        return Condition()
    speed = float(np.round(rng.uniform(0.9, 1.1), 2)) if rng.random() < 0.35 else 1.0
    rt60 = float(np.round(rng.uniform(0.2, 0.6), 2)) if rng.random() < 0.35 else None
    telephone = bool(rng.random() < 0.3)
    noise = snr = None
    if rng.random() < 0.7 or (rt60 is None and not telephone and speed == 1.0):
        noise = str(rng.choice(["white", "pink", "babble"], p=[0.3, 0.35, 0.35]))
        snr = float(np.round(rng.uniform(0.0, 20.0), 1))
    return Condition(noise=noise, snr_db=snr, rt60_s=rt60, telephone=telephone, speed=speed)


def change_speed(audio: np.ndarray, speed: float) -> np.ndarray:
    """Play `speed` times faster (tempo and pitch both, as a tape would)."""
    if speed == 1.0:
        return audio
    return resample(audio, int(round(SAMPLE_RATE * speed)), SAMPLE_RATE)


def reverberate(audio: np.ndarray, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    ir = room_impulse_response(rt60_s, rng)
    size = len(audio) + len(ir) - 1
    nfft = 1 << (size - 1).bit_length()
    wet = np.fft.irfft(np.fft.rfft(audio, nfft) * np.fft.rfft(ir, nfft), nfft)[: len(audio)]
    return wet.astype(np.float32)


def telephone_band(audio: np.ndarray) -> np.ndarray:
    """Down to 8 kHz, a 300-3400 Hz band-pass (FFT mask with 50 Hz cosine edges), back to 16 kHz."""
    narrow = resample(audio, SAMPLE_RATE, TELEPHONE_RATE)
    spectrum = np.fft.rfft(narrow)
    freqs = np.fft.rfftfreq(len(narrow), 1.0 / TELEPHONE_RATE)
    low, high = TELEPHONE_BAND_HZ
    edge = 50.0
    gain = np.clip((freqs - (low - edge)) / edge, 0, 1) * np.clip(
        ((high + edge) - freqs) / edge, 0, 1
    )
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)
    band = np.fft.irfft(spectrum * gain, len(narrow)).astype(np.float32)
    return resample(band, TELEPHONE_RATE, SAMPLE_RATE)[: len(audio)]


def colored_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-power white or pink (1/f power) noise, shape (n,)."""
    white = rng.standard_normal(n)
    if kind == "pink":
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
        spectrum /= np.sqrt(np.maximum(freqs, 20.0))
        white = np.fft.irfft(spectrum, n)
    return (white / (np.std(white) + 1e-12)).astype(np.float32)


def babble(
    n: int, bank: list[np.ndarray], rng: np.random.Generator, talkers: int = 4
) -> np.ndarray:
    """Unit-power sum of `talkers` random clips of the bank (training voices), each looped and
    offset at random to length n."""
    out = np.zeros(n, dtype=np.float32)
    for index in rng.choice(len(bank), size=min(talkers, len(bank)), replace=False):
        clip = bank[index]
        clip = np.tile(clip, n // len(clip) + 2)
        start = int(rng.integers(0, len(bank[index])))
        piece = clip[start : start + n]
        out += piece / (np.std(piece) + 1e-9)
    return out / (np.std(out) + 1e-12)


def apply(
    audio: np.ndarray, condition: Condition, rng: np.random.Generator, bank: list[np.ndarray]
) -> np.ndarray:
    """Speed, then room, then telephone channel, then additive noise (the noise at the
    listener's microphone is added after the channel); rescaled to peak 0.9 when it clips."""
    out = change_speed(np.asarray(audio, np.float32), condition.speed)
    if condition.rt60_s:
        out = reverberate(out, condition.rt60_s, rng)
    if condition.telephone:
        out = telephone_band(out)
    if condition.noise:
        noise = (
            babble(len(out), bank, rng)
            if condition.noise == "babble"
            else colored_noise(len(out), condition.noise, rng)
        )
        power = float(np.mean(out**2)) or 1e-10
        out = out + noise * np.sqrt(power / 10 ** (condition.snr_db / 10))
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 1.0:
        out = out * (0.9 / peak)
    return out.astype(np.float32)
