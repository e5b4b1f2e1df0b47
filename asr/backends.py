"""Pick the Whisper first-pass backend: CTranslate2 (CPU, CUDA 12) or PyTorch (CUDA 13).

`load_transcriber(config, backend="auto")` returns an object with
`nbest(audio, language) -> NBest` and `nbest_batch(audios, languages) -> list[NBest]`.

auto: CTranslate2 when no CUDA GPU is visible (its int8 CPU path is the fastest there) or
when CTranslate2 itself can use the GPU; PyTorch when torch sees a CUDA GPU that
CTranslate2 cannot use (the PyPI CTranslate2 wheels need CUDA 12 libraries).
"""

from __future__ import annotations

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


def load_transcriber(config=None, backend: str = "auto", torch_model_dir: Path | None = None):
    """A first-pass transcriber for `config` (asr.transcriber.TranscriberConfig or None).

    The PyTorch backend takes the decoding fields it shares with TranscriberConfig (beam,
    n-best, languages, bias terms, widening, length penalty, token budget, device); `torch_model_dir` points at the
    converted weights (default: <cache home>/whisper-base-torch).
    """
    device = getattr(config, "device", "auto") or "auto"
    chosen = choose_backend(backend, device)
    log.info("ASR backend: %s (asked: %s, device: %s)", chosen, backend, device)
    if chosen == "ctranslate2":
        from asr.transcriber import Transcriber, TranscriberConfig

        return Transcriber(config or TranscriberConfig())

    from asr.torch_backend import TorchTranscriber, TorchTranscriberConfig

    if getattr(config, "adapter", None):
        log.warning(
            "the %s adapter is merged for CTranslate2 only; the PyTorch backend runs %s",
            config.adapter,
            torch_model_dir or "Whisper base",
        )

    fields = {
        name: getattr(config, name)
        for name in (
            "beam_size",
            "nbest",
            "language",
            "languages",
            "bias_terms",
            "widen_beam",
            "length_penalty",
            "max_new_tokens",
        )
        if getattr(config, name, None) is not None
    }
    fields["bias_terms"] = tuple(fields.get("bias_terms", ()))
    return TorchTranscriber(
        TorchTranscriberConfig(model_dir=torch_model_dir, device=device, **fields)
    )
