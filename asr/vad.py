"""Frame-by-frame voice activity detection with the Silero VAD bundled with faster-whisper.

faster-whisper ships `silero_vad_v6.onnx` as package data and runs it over whole files
(`faster_whisper.vad.get_speech_timestamps`). A stream needs the same model one 32 ms
window at a time, carrying the recurrent state (h, c) and the 64-sample context between
calls, so that the probabilities match what the offline pass computes on the same audio.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Protocol

import numpy as np

from asr.contract import SAMPLE_RATE  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

WINDOW = 512  # samples per VAD decision at 16 kHz (32 ms), fixed by the Silero model
CONTEXT = 64  # samples of the previous window the model sees in front of each window


class VoiceActivity(Protocol):
    """Speech probability per 512-sample window of 16 kHz audio, stateful across calls."""

    def speech_probs(self, windows: np.ndarray) -> np.ndarray:
        """windows: float32 [n, 512] consecutive windows -> float32 [n] probabilities in [0, 1]."""
        ...

    def reset(self) -> None: ...


@functools.lru_cache(maxsize=1)
def _session():
    """One ONNX Runtime session for the whole process: sessions are thread-safe for `run`,
    and each stream keeps its own recurrent state, so every stream shares this model."""
    import onnxruntime
    from faster_whisper.utils import get_assets_path

    path = os.path.join(get_assets_path(), "silero_vad_v6.onnx")
    opts = onnxruntime.SessionOptions()
    # One thread: a window costs well under a millisecond; more threads only contend
    # with Whisper for the cores.
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    log.info("loading Silero VAD from %s", path)
    return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"], sess_options=opts)


class SileroVad:
    """Streaming Silero VAD: feed consecutive windows, get one speech probability each.

    State (LSTM h/c and the last 64 samples) belongs to the instance, the model to the
    process; create one instance per stream.
    """

    def __init__(self) -> None:
        self._session = _session()
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)

    def speech_probs(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float32).reshape(-1, WINDOW)
        if len(windows) == 0:
            return np.zeros(0, dtype=np.float32)
        # Each row is [last 64 samples of the previous window | this window], as in
        # faster_whisper.vad.SileroVADModel, with the previous call's tail in front.
        previous = np.vstack([self._context[None, :], windows[:-1, -CONTEXT:]])
        batch = np.concatenate([previous, windows], axis=1)
        probs, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        self._context = windows[-1, -CONTEXT:].copy()
        return np.asarray(probs, dtype=np.float32).reshape(-1)


class EnergyVad:
    """A deterministic stand-in for tests and for machines without the model:
    probability 1 where the window's RMS exceeds `threshold`, else 0."""

    def __init__(self, threshold: float = 0.01) -> None:
        self.threshold = threshold

    def reset(self) -> None:
        pass

    def speech_probs(self, windows: np.ndarray) -> np.ndarray:
        windows = np.asarray(windows, dtype=np.float32).reshape(-1, WINDOW)
        rms = np.sqrt(np.mean(windows**2, axis=1)) if len(windows) else np.zeros(0)
        return (rms > self.threshold).astype(np.float32)
