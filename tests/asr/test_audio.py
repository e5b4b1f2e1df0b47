"""Audio decoding: every container the assistant accepts, broken and empty files, PCM helpers."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from asr.audio import (
    SAMPLE_RATE,
    AudioError,
    StreamResampler,
    decode_audio,
    float32_to_pcm16,
    pcm16_to_float32,
    resample,
)

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "audio" / "en_01_tide_pods.wav"

# container -> (codec, sample rate, layout it is written with): rates other than 16 kHz check
# resampling, stereo checks the down-mix (FFmpeg's native Vorbis encoder only writes stereo;
# PyAV bundles no libvorbis).
FORMATS = {
    "wav": ("pcm_s16le", 16000, "mono"),
    "flac": ("flac", 22050, "mono"),
    "mp3": ("libmp3lame", 44100, "mono"),
    "ogg": ("vorbis", 44100, "stereo"),
    "opus.ogg": ("libopus", 48000, "mono"),
    "m4a": ("aac", 44100, "mono"),
    "webm": ("libopus", 48000, "stereo"),
}


def encode(audio: np.ndarray, path: Path, codec: str, rate: int, layout: str) -> None:
    """Write mono float audio (16 kHz) to `path` with PyAV, resampled to `rate`, as `layout`."""
    samples = resample(audio, SAMPLE_RATE, rate)
    channels = 2 if layout == "stereo" else 1
    planes = np.ascontiguousarray(np.repeat(samples.reshape(1, -1), channels, axis=0))
    with av.open(str(path), mode="w") as container:
        # "experimental": FFmpeg's native Vorbis encoder is flagged so.
        stream = container.add_stream(codec, rate=rate, options={"strict": "experimental"})
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.fixture(scope="module")
def fixture_audio() -> np.ndarray:
    return decode_audio(FIXTURE)


def test_fixture_is_16k_mono_float(fixture_audio):
    assert fixture_audio.dtype == np.float32 and fixture_audio.ndim == 1
    assert 1.0 < len(fixture_audio) / SAMPLE_RATE < 5.0
    assert 0.05 < np.abs(fixture_audio).max() <= 1.0


@pytest.mark.parametrize("ext", sorted(FORMATS))
def test_every_format_decodes_to_16k(ext, fixture_audio, tmp_path):
    codec, rate, layout = FORMATS[ext]
    path = tmp_path / f"clip.{ext}"
    encode(fixture_audio, path, codec, rate, layout)
    audio = decode_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    # Lossy codecs add priming/padding samples: the length agrees within 0.1 s.
    assert abs(len(audio) - len(fixture_audio)) < 0.1 * SAMPLE_RATE
    # The waveform survives: same loudness within a few dB.
    rms_in = np.sqrt(np.mean(fixture_audio**2))
    rms_out = np.sqrt(np.mean(audio**2))
    assert 0.7 < rms_out / rms_in < 1.4


def test_bytes_input(fixture_audio):
    audio = decode_audio(FIXTURE.read_bytes())
    np.testing.assert_array_equal(audio, fixture_audio)


def test_missing_file_raises(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        decode_audio(tmp_path / "nope.wav")


def test_empty_file_raises(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match="empty"):
        decode_audio(path)


@pytest.mark.parametrize("payload", [b"RIFF\x00\x00garbage" * 20, b"just some text\n" * 40])
def test_broken_file_raises(tmp_path, payload):
    path = tmp_path / "broken.wav"
    path.write_bytes(payload)
    with pytest.raises(AudioError, match="cannot decode"):
        decode_audio(path)


def test_wav_header_without_samples_raises(tmp_path):
    import soundfile as sf

    path = tmp_path / "silent.wav"
    sf.write(str(path), np.zeros(0, dtype=np.float32), SAMPLE_RATE, subtype="PCM_16")
    with pytest.raises(AudioError):
        decode_audio(path)


def test_pcm16_roundtrip_at_16k():
    audio = (np.sin(np.arange(1600) / 16) * 0.5).astype(np.float32)
    back = pcm16_to_float32(float32_to_pcm16(audio))
    assert back.shape == audio.shape
    assert np.max(np.abs(back - audio)) < 1 / 16384


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_pcm16_resamples_any_rate(rate):
    tone = (np.sin(2 * np.pi * 440 * np.arange(rate) / rate) * 0.5).astype(np.float32)
    out = pcm16_to_float32(float32_to_pcm16(tone), sample_rate=rate)
    assert abs(len(out) - SAMPLE_RATE) <= 2  # one second in, one second out
    assert 0.3 < np.abs(out[100:-100]).max() < 0.6


def test_pcm16_rejects_odd_bytes():
    with pytest.raises(AudioError, match="even number"):
        pcm16_to_float32(b"\x00\x01\x02")


def test_stream_resampler_keeps_length_across_chunks():
    resampler = StreamResampler(44100)
    chunk = np.zeros(441, dtype=np.int16)  # 10 ms
    total = sum(len(resampler.push(chunk)) for _ in range(100)) + len(resampler.flush())
    assert total == SAMPLE_RATE


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
def test_stream_resampler_gives_the_samples_of_decoding_the_file(tmp_path, rate):
    """A session's resampling (StreamResampler, any chunking) and `assistant transcribe`'s
    (decode_audio of the PCM16 WAV the client would have recorded) give the same samples, bit
    for bit: the two paths segment and decode the same audio."""
    import wave

    rng = np.random.default_rng(rate)
    pcm = float32_to_pcm16((rng.standard_normal(int(2.5 * rate)) * 0.1).astype(np.float32))
    path = tmp_path / "client.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    offline = decode_audio(path)
    for chunk_s in (0.1, 0.02, 0.37, None):
        resampler = StreamResampler(rate)
        step = 2 * int(chunk_s * rate) if chunk_s else len(pcm)
        streamed = np.concatenate(
            [resampler.push(pcm[i : i + step]) for i in range(0, len(pcm), step)]
            + [resampler.flush()]
        )
        assert np.array_equal(streamed, offline), chunk_s
