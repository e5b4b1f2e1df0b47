"""Whisper first pass in PyTorch: the CUDA backend (CTranslate2's PyPI wheels need CUDA 12).

Same weights as the CTranslate2 model (converted by `python -m asr.torch_convert`), same
n-best contract: `TorchTranscriber.nbest(audio, language) -> NBest` and
`nbest_batch(audios, languages) -> list[NBest]`, where a batch is decoded as one tensor
batch (encoder and beam search), which is how concurrent streams share one GPU.

Needs only torch, transformers and tokenizers where it runs (no faster-whisper, no
CTranslate2): log-mel features are computed here in torch, on the model's device.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.nbest import Hypothesis, NBest
from asr.torch_beam import BeamOptions, beam_search

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms window
HOP = 160  # 10 ms hop -> 100 frames/s
WINDOW_S = 30  # Whisper's encoder always sees a 30 s window (3000 frames)
LANGUAGES = ("en", "es")  # language detection is restricted to the two store languages


@dataclass(frozen=True)
class TorchTranscriberConfig:
    """model_dir: converted folder (default: <cache home>/whisper-base-torch).
    device: "auto" (cuda when available, else cpu), "cuda", "cuda:N" or "cpu".
    dtype: "auto" (float16 on CUDA, float32 on CPU), "float16", "bfloat16" or "float32".
    beam_size / nbest: beams searched / distinct readings returned.
    batch_size: utterances per tensor batch in nbest_batch (bounded by GPU memory).
    length_penalty, max_new_tokens: see asr.torch_beam.BeamOptions.
    """

    model_dir: Path | None = None
    device: str = "auto"
    dtype: str = "auto"
    beam_size: int = 8
    nbest: int = 8
    batch_size: int = 32
    length_penalty: float = 1.0
    max_new_tokens: int = 96

    def __post_init__(self) -> None:
        if self.nbest < 1 or self.beam_size < 1 or self.batch_size < 1:
            raise ValueError("beam_size, nbest and batch_size must be >= 1")
        if self.dtype not in ("auto", "float16", "bfloat16", "float32"):
            raise ValueError(f"dtype {self.dtype!r}: use auto, float16, bfloat16 or float32")


def _normalize_text(text: str) -> str:
    """Key used to merge readings that differ only in case, punctuation or spacing."""
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


class TorchTranscriber:
    """Whisper n-best on PyTorch. One verb: `nbest` (and its batched form)."""

    def __init__(self, config: TorchTranscriberConfig | None = None) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import WhisperForConditionalGeneration

        from asr.torch_convert import CT2_CONFIG_NAME, default_torch_dir

        self.config = config = config or TorchTranscriberConfig()
        model_dir = Path(config.model_dir or default_torch_dir()).expanduser()
        if not (model_dir / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"no converted PyTorch Whisper in {model_dir}; run: python -m asr.torch_convert"
            )
        device = config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = config.dtype
        if dtype == "auto":
            dtype = "float16" if device.startswith("cuda") else "float32"
        if device == "cpu" and dtype != "float32":
            log.warning("%s on CPU is slow or unsupported; using float32", dtype)
            dtype = "float32"
        self.device, self.dtype = torch.device(device), getattr(torch, dtype)
        self.model = (
            WhisperForConditionalGeneration.from_pretrained(model_dir, dtype=self.dtype)
            .to(self.device)
            .eval()
        )
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        ct2_config = json.loads((model_dir / CT2_CONFIG_NAME).read_text())
        eot = self._token("<|endoftext|>")
        # Suppress Whisper's non-speech symbols and every special token (start, language,
        # task, timestamps): a transcript without timestamps never needs them.
        specials = range(eot + 1, self.model.config.vocab_size)
        self.options = BeamOptions(
            beam_size=max(config.beam_size, config.nbest),
            num_hypotheses=config.beam_size,
            max_new_tokens=config.max_new_tokens,
            length_penalty=config.length_penalty,
            suppress_ids=tuple(sorted(set(ct2_config.get("suppress_ids", [])) | set(specials))),
            suppress_begin_ids=tuple(ct2_config.get("suppress_ids_begin", [220, eot])),
            eot_id=eot,
        )
        self._sot = self._token("<|startoftranscript|>")
        self._task = (self._token("<|transcribe|>"), self._token("<|notimestamps|>"))
        self._lang_ids = {lang: self._token(f"<|{lang}|>") for lang in LANGUAGES}
        from transformers.audio_utils import mel_filter_bank

        filters = mel_filter_bank(
            num_frequency_bins=1 + N_FFT // 2,
            num_mel_filters=self.model.config.num_mel_bins,
            min_frequency=0.0,
            max_frequency=SAMPLE_RATE / 2,
            sampling_rate=SAMPLE_RATE,
            norm="slaney",
            mel_scale="slaney",
        )
        self._mel = torch.as_tensor(filters.T, dtype=torch.float32, device=self.device)
        self._window = torch.hann_window(N_FFT, device=self.device)
        log.info("PyTorch Whisper on %s (%s) from %s", self.device, dtype, model_dir)

    def _token(self, text: str) -> int:
        token = self.tokenizer.token_to_id(text)
        if token is None:
            raise ValueError(f"token {text} missing from the Whisper tokenizer")
        return token

    def features(self, audios: Sequence[np.ndarray]):
        """Log-mel features [B, n_mels, 3000] (float32, on the model's device).

        Like faster-whisper: each clip's spectrogram (center STFT, the last frame dropped),
        clamped 8 log10 units below its own maximum, scaled, then zero-padded to 3000 frames.
        """
        import torch

        frames = WINDOW_S * SAMPLE_RATE // HOP
        out = torch.zeros((len(audios), self._mel.shape[0], frames), device=self.device)
        for i, audio in enumerate(audios):
            wave = torch.as_tensor(np.asarray(audio, dtype=np.float32), device=self.device)
            wave = torch.nn.functional.pad(wave[: WINDOW_S * SAMPLE_RATE], (0, HOP))
            stft = torch.stft(wave, N_FFT, HOP, window=self._window, return_complex=True)
            power = stft[..., :-1].abs() ** 2
            logmel = torch.clamp(self._mel @ power, min=1e-10).log10()
            logmel = torch.maximum(logmel, logmel.max() - 8.0)
            logmel = (logmel + 4.0) / 4.0
            n = min(frames, logmel.shape[1])
            out[i, :, :n] = logmel[:, :n]
        return out

    def _detect(self, encoder_out) -> list[tuple[str, float]]:
        """Most likely of LANGUAGES per utterance, with its probability among them."""
        import torch

        prompt = torch.full((encoder_out.shape[0], 1), self._sot, device=self.device)
        hidden = self.model.model.decoder(
            input_ids=prompt, encoder_hidden_states=encoder_out
        ).last_hidden_state[:, -1]
        logits = self.model.proj_out(hidden).float()[:, list(self._lang_ids.values())]
        probs = torch.softmax(logits, dim=-1).cpu().numpy()
        return [(LANGUAGES[int(p.argmax())], float(p.max())) for p in probs]

    def nbest(self, audio: np.ndarray, language: str | None = None) -> NBest:
        """N-best of one utterance: float32 mono 16 kHz samples in [-1, 1]; language "en",
        "es", or None/"auto" to detect among them."""
        return self.nbest_batch([audio], [language])[0]

    def nbest_batch(
        self, audios: Sequence[np.ndarray], languages: Sequence[str | None] | None = None
    ) -> list[NBest]:
        """N-best of many utterances, decoded `config.batch_size` at a time."""
        languages = list(languages) if languages is not None else [None] * len(audios)
        if len(languages) != len(audios):
            raise ValueError("one language (or None) per audio")
        results: list[NBest] = []
        step = self.config.batch_size
        for start in range(0, len(audios), step):
            results.extend(
                self._decode(audios[start : start + step], languages[start : start + step])
            )
        return results

    def _decode(self, audios: Sequence[np.ndarray], languages: Sequence[str | None]) -> list[NBest]:
        import torch

        for language in languages:
            if language not in (None, "auto", *LANGUAGES):
                raise ValueError(f"language {language!r}: use one of {LANGUAGES} or auto")
        started = time.perf_counter()
        with torch.inference_mode():
            feats = self.features(audios).to(self.dtype)
            encoder_out = self.model.model.encoder(feats).last_hidden_state
            todo = [i for i, lang in enumerate(languages) if lang in (None, "auto")]
            chosen = {i: (lang, 1.0) for i, lang in enumerate(languages) if i not in todo}
            if todo:
                chosen.update(zip(todo, self._detect(encoder_out[todo]), strict=True))
            prompts = np.array(
                [[self._sot, self._lang_ids[chosen[i][0]], *self._task] for i in range(len(audios))]
            )
            beams = beam_search(self.model, encoder_out, prompts, self.options)
        elapsed = time.perf_counter() - started
        return [
            self._to_nbest(results, *chosen[i], len(audio) / SAMPLE_RATE, elapsed)
            for i, (results, audio) in enumerate(zip(beams, audios, strict=True))
        ]

    def _to_nbest(
        self, results, language: str, prob: float, duration: float, elapsed: float
    ) -> NBest:
        hypotheses, seen = [], set()
        for result in results:
            text = self.tokenizer.decode(list(result.token_ids)).strip()
            key = _normalize_text(text)
            if not text or key in seen:
                continue
            seen.add(key)
            hypotheses.append(
                Hypothesis(
                    text=text,
                    token_ids=result.token_ids,
                    logprob_sum=result.logprob_sum,
                    asr_score=result.score,
                    score=result.score,
                )
            )
            if len(hypotheses) == self.config.nbest:
                break
        return NBest(
            tuple(hypotheses),
            language=language,
            language_prob=prob,
            duration_s=duration,
            extra={"backend": "torch", "batch_decode_s": elapsed},
        )
