"""Synthetic speech for the n-best corpus: several TTS voices, speaking rates, pitch and noise.

Voices are Debian packages driven as subprocesses: SVOX Pico (`pico2wave`), MBROLA diphone
voices through espeak-ng (`apt-get install mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1`,
Debian contrib/non-free; the Spanish ones are probed but unusable) and plain espeak-ng
(robotic formant synthesis). Pico's Italian and French voices reading Spanish text stand in
for accented Spanish speakers. docs/rescoring_voices.json has each voice's first-pass WER. `sox` resamples to 16 kHz and changes
tempo and pitch; noise is added here at a chosen signal-to-noise ratio.

Some voices are HELD_OUT: the corpus builder never puts them in the training split, so the
test split measures how the rescorer does on a voice it never saw.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Voice:
    """One TTS voice. engine: "pico" or "espeak"; code: the engine's voice/language code."""

    name: str
    language: str  # "en" or "es"
    engine: str  # "pico", "espeak" or "mbrola" (espeak-ng front end, MBROLA diphones)
    code: str


VOICES: dict[str, Voice] = {
    v.name: v
    for v in (
        Voice("pico-en-US", "en", "pico", "en-US"),
        Voice("pico-en-GB", "en", "pico", "en-GB"),
        Voice("espeak-en-us", "en", "espeak", "en-us+m3"),
        Voice("mbrola-us1", "en", "mbrola", "mb-us1"),
        Voice("mbrola-us2", "en", "mbrola", "mb-us2"),
        Voice("mbrola-us3", "en", "mbrola", "mb-us3"),
        Voice("mbrola-en1", "en", "mbrola", "mb-en1"),
        Voice("pico-es-ES", "es", "pico", "es-ES"),
        Voice("mbrola-es1", "es", "mbrola", "mb-es1"),
        Voice("mbrola-es2", "es", "mbrola", "mb-es2"),
        Voice("mbrola-es3", "es", "mbrola", "mb-es3"),
        Voice("mbrola-es4", "es", "mbrola", "mb-es4"),
        Voice("mbrola-mx2", "es", "mbrola", "mb-mx2"),
        Voice("mbrola-vz1", "es", "mbrola", "mb-vz1"),
        # Pico's Italian voice reading Spanish text: a foreign accent (close phonology).
        Voice("pico-it-IT-es", "es", "pico", "it-IT"),
        Voice("pico-fr-FR-es", "es", "pico", "fr-FR"),
        Voice("espeak-es", "es", "espeak", "es+m1"),
        Voice("espeak-es-419", "es", "espeak", "es-419+f2"),
    )
}
# Never in the training split (two per language): generalization to unseen voices.
HELD_OUT: frozenset[str] = frozenset({"pico-en-GB", "mbrola-us3", "pico-fr-FR-es", "espeak-es-419"})
# Voices of the corpus (lab.rescoring.nbest_corpus) per split, chosen by the voice probe
# (docs/rescoring_voices.json, 10 clean clips each): MBROLA's Spanish voices give first-pass
# WER 87-178% (espeak-ng's Spanish phonemes map badly onto their diphones) and are left out.
# A voice listed twice is drawn twice as often. Dev (lambda tuning) has training voices only.
CORPUS_VOICES: dict[str, tuple[str, ...]] = {
    "train": (
        "pico-en-US",
        "pico-en-US",
        "espeak-en-us",
        "mbrola-us1",
        "mbrola-us2",
        "mbrola-en1",
        "pico-es-ES",
        "pico-es-ES",
        "pico-es-ES",
        "espeak-es",
        "espeak-es",
        "pico-it-IT-es",
    ),
}
CORPUS_VOICES["dev"] = CORPUS_VOICES["train"]
CORPUS_VOICES["test"] = CORPUS_VOICES["train"] + (
    "pico-en-GB",
    "pico-en-GB",
    "mbrola-us3",
    "pico-fr-FR-es",
    "espeak-es-419",
    "espeak-es-419",
)


def voices_for(language: str, split: str) -> list[Voice]:
    """Corpus voices for `language` in `split` (held-out voices never in "train"); a voice
    listed twice is drawn twice as often."""
    names = CORPUS_VOICES.get(split, tuple(VOICES))
    out = [VOICES[n] for n in names if VOICES[n].language == language]
    assert split != "train" or not any(v.name in HELD_OUT for v in out)
    return out


def _tts(voice: Voice, text: str, out_wav: Path, rate: float) -> None:
    if voice.engine == "pico":
        cmd = ["pico2wave", "-l", voice.code, "-w", str(out_wav), text]
    elif voice.engine in ("espeak", "mbrola"):
        # espeak's own speed in words per minute (175 is its default).
        cmd = ["espeak-ng", "-v", voice.code, "-s", str(int(165 * rate)), "-w", str(out_wav), text]
    else:
        raise ValueError(f"unknown TTS engine {voice.engine!r}")
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


def synthesize(
    text: str,
    voice: Voice,
    rate: float = 1.0,
    pitch_cents: int = 0,
    snr_db: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Speak `text`; float32 mono samples at 16 kHz, peak-normalized to 0.7 before noise.

    rate: tempo factor (1.0 = the voice's own), pitch_cents: pitch shift, snr_db: white+pink
    noise at this signal-to-noise ratio (None = clean).
    """
    if shutil.which("sox") is None:
        raise RuntimeError("sox is missing: apt-get install sox")
    with tempfile.TemporaryDirectory(prefix="synth-") as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "out.wav"
        _tts(voice, text, raw, rate)
        effects = ["rate", "-h", str(SAMPLE_RATE)]
        if voice.engine == "pico" and abs(rate - 1.0) > 1e-3:
            effects += ["tempo", "-s", f"{rate:.3f}"]
        if pitch_cents:
            effects += ["pitch", str(pitch_cents)]
        subprocess.run(
            ["sox", str(raw), "-c", "1", "-b", "16", str(out), *effects],
            check=True,
            capture_output=True,
            timeout=60,
        )
        audio, sr = sf.read(out, dtype="float32")
    assert sr == SAMPLE_RATE
    peak = float(np.max(np.abs(audio))) or 1.0
    audio = 0.7 * audio / peak
    # Pad with a little silence: real queries do not start on the first sample.
    rng = np.random.default_rng(seed)
    pad = np.zeros(int(0.2 * SAMPLE_RATE), dtype=np.float32)
    audio = np.concatenate([pad, audio, pad])
    if snr_db is not None:
        white = rng.standard_normal(audio.shape[0])
        pink = np.cumsum(rng.standard_normal(audio.shape[0]))
        # Remove the random walk's drift: subtract a 25 ms moving average (cumsum, O(n)).
        c = np.concatenate([[0.0], np.cumsum(pink)])
        w = 400
        avg = (c[w:] - c[:-w]) / w
        pink -= np.pad(avg, (w // 2, pink.shape[0] - avg.shape[0] - w // 2), mode="edge")
        noise = white / white.std() + pink / (pink.std() or 1.0)
        signal_power = float(np.mean(audio**2))
        noise *= np.sqrt(signal_power / (10 ** (snr_db / 10)) / float(np.mean(noise**2)))
        audio = audio + noise.astype(np.float32)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def write_opus(path: Path, audio: np.ndarray, bit_rate: int = 24_000) -> None:
    """Store a clip compactly: OGG/Opus at 24 kbit/s, about 9 KB for a 3 s query.

    PyAV's libopus is used rather than libsndfile's, which is ~8x slower to encode.
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=SAMPLE_RATE)
        stream.bit_rate = bit_rate
        stream.layout = "mono"
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
