"""Audio in: decode files (WAV/FLAC/MP3/OGG/WebM, anything FFmpeg reads) and raw PCM to the
16 kHz mono float32 that Whisper wants.

Decoding goes through PyAV, which bundles the FFmpeg libraries (it comes with faster-whisper),
so no ffmpeg binary is needed. Arrays are float32 in [-1, 1], shape (samples,), 16 kHz.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np

from asr.contract import SAMPLE_RATE  # 16 kHz, what Whisper expects

log = logging.getLogger(__name__)

INT16_SCALE = 32768.0  # int16 full scale -> float32 [-1, 1)


class AudioError(Exception):
    """Audio that cannot be used: missing, undecodable, or empty. The message says which."""


def decode_audio(
    source: str | Path | bytes | BinaryIO, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Decode a file (path, bytes or file object) to mono float32 at `sample_rate`.

    Returns shape (samples,), values in [-1, 1]. Raises AudioError when the file is missing,
    is not audio FFmpeg can decode, or holds no samples.
    """
    from faster_whisper.audio import decode_audio as _fw_decode

    name = str(source) if isinstance(source, (str, Path)) else "<audio bytes>"
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise AudioError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise AudioError(f"{path}: the file is empty")
        source = str(path)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioError("the audio data is empty")
        source = io.BytesIO(bytes(source))
    try:
        audio = _fw_decode(source, sampling_rate=sample_rate)
    except (av.error.FFmpegError, ValueError, IndexError, StopIteration) as error:
        # IndexError/StopIteration: a container FFmpeg opens but that has no audio stream.
        raise AudioError(
            f"{name}: cannot decode audio ({error}); give a WAV, FLAC, MP3, OGG or WebM file"
        ) from error
    if audio.size == 0:
        raise AudioError(f"{name}: the file holds no audio samples")
    return np.ascontiguousarray(audio, dtype=np.float32)


def _resample_int16(samples: np.ndarray, rate: int, resampler: av.AudioResampler) -> np.ndarray:
    """Push int16 mono samples through a PyAV resampler; returns int16 at the resampler's rate."""
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)


def _as_int16(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(data, np.ndarray):
        if data.dtype != np.int16:
            raise AudioError(f"expected int16 PCM samples, got {data.dtype}")
        return data.reshape(-1)
    raw = bytes(data)
    if len(raw) % 2:
        raise AudioError("PCM16 data must hold an even number of bytes (2 per sample)")
    return np.frombuffer(raw, dtype="<i2")


def pcm16_to_float32(
    data: bytes | bytearray | memoryview | np.ndarray, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Little-endian signed 16-bit mono PCM at `sample_rate` -> float32 at 16 kHz, shape (n,).

    One-shot: each call resamples independently. For a stream cut into chunks use
    `StreamResampler`, which keeps the filter state between chunks (no clicks at the seams).
    """
    samples = _as_int16(data)
    if sample_rate <= 0:
        raise AudioError(f"sample rate must be positive, got {sample_rate}")
    if sample_rate != SAMPLE_RATE and samples.size:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        samples = np.concatenate(
            [
                _resample_int16(samples, sample_rate, resampler),
                np.concatenate(
                    [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
                    or [np.zeros(0, dtype=np.int16)]
                ),
            ]
        )
    return samples.astype(np.float32) / INT16_SCALE


def float32_to_pcm16(audio: np.ndarray) -> bytes:
    """float32 [-1, 1] -> little-endian int16 bytes (clipped), e.g. to stream a file as a client."""
    clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 32767 / INT16_SCALE)
    return (clipped * INT16_SCALE).astype("<i2").tobytes()


class StreamResampler:
    """Resample a PCM16 stream chunk by chunk to 16 kHz float32, keeping state across chunks.

    push(chunk) -> float32 array of what is ready (may be a few samples short of the exact
    ratio; the remainder comes out of later pushes or flush()).
    """

    def __init__(self, sample_rate: int) -> None:
        if sample_rate <= 0:
            raise AudioError(f"sample rate must be positive, got {sample_rate}")
        self.sample_rate = sample_rate
        self._resampler = (
            None
            if sample_rate == SAMPLE_RATE
            else av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        )

    def push(self, data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
        samples = _as_int16(data)
        if self._resampler is not None and samples.size:
            samples = _resample_int16(samples, self.sample_rate, self._resampler)
        return samples.astype(np.float32) / INT16_SCALE

    def flush(self) -> np.ndarray:
        """What the filter still holds at the end of the stream."""
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(None)]
        samples = np.concatenate(out) if out else np.zeros(0, dtype=np.int16)
        return samples.astype(np.float32) / INT16_SCALE


def resample(audio: np.ndarray, sample_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """float32 mono at `sample_rate` -> float32 mono at `target_rate` (PyAV/FFmpeg swresample)."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if sample_rate == target_rate or audio.size == 0:
        return audio
    resampler = av.AudioResampler(format="flt", layout="mono", rate=target_rate)
    frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="flt", layout="mono")
    frame.sample_rate = sample_rate
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros(0, dtype=np.float32)


def duration_s(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    return float(len(audio)) / sample_rate
