"""Pick the Whisper first-pass backend: CTranslate2 (CPU, CUDA 12) or PyTorch (CUDA 13).

`load_transcriber(config, backend="auto")` returns an asr.contract.Transcriber:
`nbest(audio, language) -> NBest` and `nbest_batch(audios, languages) -> list[NBest]`.

auto: CTranslate2 when no CUDA GPU is visible (its int8 CPU path is the fastest there) or
when CTranslate2 itself can use the GPU; PyTorch when torch sees a CUDA GPU that
CTranslate2 cannot use (the PyPI CTranslate2 wheels need CUDA 12 libraries).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

log = logging.getLogger(__name__)

BACKENDS = ("auto", "ctranslate2", "torch")


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _ct2_cuda() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # noqa: BLE001 - a CUDA 12 wheel on a CUDA 13 host raises at load time
        return False


def choose_backend(backend: str = "auto", device: str = "auto") -> str:
    """Resolve "auto" to "ctranslate2" or "torch" (see module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f"ASR backend {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if device == "cpu" or not _torch_cuda():
        return "ctranslate2"
    return "ctranslate2" if _ct2_cuda() else "torch"


# Fields both configs have by name but not by meaning: the CTranslate2 model directory is not
# the converted PyTorch folder (that one is `torch_model_dir`).
NOT_CARRIED = frozenset({"model_dir"})


def torch_config(config=None, torch_model_dir: Path | None = None):
    """The PyTorch backend's config for a CTranslate2 `config` (TranscriberConfig or None):
    every field the two configs share (asr.contract.DecodingConfig's, and device) carried over
    as it is, whatever fields they come to hold; `torch_model_dir`: the converted weights
    (default: <cache home>/whisper-base-torch). The fields that are CTranslate2's own
    (adapter, compute_type, cpu_threads, merge_draft, lid_confident, lid_prior) stay behind."""
    from asr.torch_backend import TorchTranscriberConfig

    if config is None:
        return TorchTranscriberConfig(model_dir=torch_model_dir)
    names = {f.name for f in dataclasses.fields(config)}
    shared = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(TorchTranscriberConfig)
        if f.name in names and f.name not in NOT_CARRIED
    }
    return TorchTranscriberConfig(model_dir=torch_model_dir, **shared)


def load_transcriber(config=None, backend: str = "auto", torch_model_dir: Path | None = None):
    """A first-pass transcriber (asr.contract.Transcriber) for `config`
    (asr.transcriber.TranscriberConfig or None).

    The PyTorch backend takes every field it shares with TranscriberConfig (`torch_config`);
    `torch_model_dir` points at the converted weights (default: <cache home>/whisper-base-torch).
    """
    device = getattr(config, "device", "auto") or "auto"
    chosen = choose_backend(backend, device)
    log.info("ASR backend: %s (asked: %s, device: %s)", chosen, backend, device)
    if chosen == "ctranslate2":
        from asr.transcriber import Transcriber, TranscriberConfig

        return Transcriber(config or TranscriberConfig())

    from asr.torch_backend import TorchTranscriber

    if getattr(config, "adapter", None):
        log.warning(
            "the %s adapter is merged for CTranslate2 only; the PyTorch backend runs %s",
            config.adapter,
            torch_model_dir or "Whisper base",
        )
    return TorchTranscriber(torch_config(config, torch_model_dir))
