"""Whisper first pass in PyTorch: the CUDA backend (CTranslate2's PyPI wheels need CUDA 12).

Same weights as the CTranslate2 model (converted by `python -m asr.torch_convert`), same
n-best contract (asr.contract): `TorchTranscriber.nbest(audio, language) -> NBest` and
`nbest_batch(audios, languages) -> list[NBest]`, where a batch is decoded as one tensor
batch (encoder and beam search), which is how concurrent streams share one GPU. What is
here is PyTorch's own: features, encoder, language detection, prompts and the beam search
(asr.torch_beam) behind them.

Needs only torch, transformers and tokenizers where it runs (no faster-whisper, no
CTranslate2): log-mel features are computed here in torch, on the model's device.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from asr.contract import (
    SAMPLE_RATE,
    SUPPORTED_LANGUAGES,
    WINDOW_S,
    Backend,
    DecodeOptions,
    DecodingConfig,
    PhraseSelector,
    check_language,
    decode_with_phrases,
    distinct_readings,
    encode_bias,
    prompt_ids,
)
from asr.nbest import Hypothesis, NBest, reading_key  # noqa: F401 - reading_key re-exported
from asr.torch_beam import BeamOptions, BeamResult, beam_search

log = logging.getLogger(__name__)

N_FFT = 400  # 25 ms window
HOP = 160  # 10 ms hop -> 100 frames/s


@dataclass(frozen=True)
class TorchTranscriberConfig(DecodingConfig):
    """How the PyTorch first pass runs: the decoding fields every backend shares
    (asr.contract.DecodingConfig, meaning the same as in asr.transcriber.TranscriberConfig;
    asr.backends.load_transcriber carries them from one to the other) and these.

    window_s (shared) is not used here: transformers' Whisper encoder takes 30 s windows only.

    model_dir: converted folder (default: <cache home>/whisper-base-torch).
    device: "auto" (cuda when available, else cpu), "cuda", "cuda:N" or "cpu".
    dtype: "auto" (float16 on CUDA, float32 on CPU), "float16", "bfloat16" or "float32".
    batch_size: utterances per tensor batch in nbest_batch (bounded by GPU memory).
    """

    model_dir: Path | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.dtype not in ("auto", "float16", "bfloat16", "float32"):
            raise ValueError(f"dtype {self.dtype!r}: use auto, float16, bfloat16 or float32")


class TorchTranscriber(Backend):
    """Whisper n-best on PyTorch (an asr.contract.Transcriber). One verb: `nbest` (and its
    batched form)."""

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
        # Beam width, length penalty and token budget are read from self.config on every call
        # (a shallow copy with another config, like the server's greedy partials view,
        # shares the weights); only the vocabulary facts are fixed here.
        self._base_options = BeamOptions(
            suppress_ids=tuple(sorted(set(ct2_config.get("suppress_ids", [])) | set(specials))),
            suppress_begin_ids=tuple(ct2_config.get("suppress_ids_begin", [220, eot])),
            eot_id=eot,
        )
        self._sot = self._token("<|startoftranscript|>")
        self._sot_prev = self._token("<|startofprev|>")
        self._bias = encode_bias(self.tokenizer, config.bias_terms)
        self._task = (self._token("<|transcribe|>"), self._token("<|notimestamps|>"))
        self._lang_ids = {lang: self._token(f"<|{lang}|>") for lang in SUPPORTED_LANGUAGES}
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
        if config.window_s < WINDOW_S:
            log.info(
                "window_s %g applies to CTranslate2 only; PyTorch encodes 30 s", config.window_s
            )

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
        """Most likely of the configured languages per utterance, with its probability among
        them (softmax over their logits = probabilities renormalized over that set)."""
        import torch

        prompt = torch.full((encoder_out.shape[0], 1), self._sot, device=self.device)
        hidden = self.model.model.decoder(
            input_ids=prompt, encoder_hidden_states=encoder_out
        ).last_hidden_state[:, -1]
        langs = self.config.languages
        logits = self.model.proj_out(hidden).float()[:, [self._lang_ids[lang] for lang in langs]]
        probs = torch.softmax(logits, dim=-1).cpu().numpy()
        return [(langs[int(p.argmax())], float(p.max())) for p in probs]

    def decode_batch(
        self,
        audios: Sequence[np.ndarray],
        languages: list[str | None],
        selectors: list[PhraseSelector | None],
        options: DecodeOptions,
    ) -> list[NBest]:
        """`nbest_batch` (asr.contract.Backend), its arguments checked: `config.batch_size`
        utterances at a time as one tensor batch each (encoder, language detection, beam
        search). One NBest per input, in order. With phrase selectors (and no bias terms
        given): asr.contract.decode_with_phrases."""
        if options.bias_terms is None and any(selectors):
            return decode_with_phrases(self, audios, languages, selectors, options)
        wanted = [check_language(lang, self.config) for lang in languages]
        bias = self.bias_ids(options.bias_terms)
        results: list[NBest] = []
        step = self.config.batch_size
        for start in range(0, len(audios), step):
            chunk = slice(start, start + step)
            results.extend(self._decode(audios[chunk], wanted[chunk], options, bias))
        return results

    def bias_ids(self, bias_terms: Sequence[str] | None) -> list[int]:
        """Prompt ids of the domain terms: the config's when None, none for ()."""
        return self._bias if bias_terms is None else encode_bias(self.tokenizer, bias_terms)

    def encode(self, audios: Sequence[np.ndarray], wanted: Sequence[str]):
        """Encoder outputs and languages of a batch of clips (call under torch.inference_mode).

        audios: float32 16 kHz clips (the first 30 s of each are used); wanted: "en", "es"
        or "auto" per clip. Returns (encoder_out [B, 1500, d_model] in the model's dtype,
        [(language, probability)] per clip, seconds spent).
        """
        import torch

        for audio in audios:
            if np.asarray(audio).size == 0:
                raise ValueError("empty audio: nothing to transcribe")
        started = time.perf_counter()
        feats = self.features(audios).to(self.dtype)
        encoder_out = self.model.model.encoder(feats).last_hidden_state
        todo = [i for i, lang in enumerate(wanted) if lang == "auto"]
        chosen = {i: (lang, 1.0) for i, lang in enumerate(wanted) if lang != "auto"}
        if todo:
            chosen.update(zip(todo, self._detect(encoder_out[todo]), strict=True))
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return encoder_out, [chosen[i] for i in range(len(audios))], time.perf_counter() - started

    def prompt(self, language: str, bias: Sequence[int]) -> list[int]:
        """Decoder prompt ids: [previous-text marker, bias ids,] start, language, task."""
        return prompt_ids(self._sot_prev, bias, [self._sot, self._lang_ids[language], *self._task])

    def beam_options(self, beam: int) -> BeamOptions:
        """Search options for a beam width (every finished beam kept: readings merge later)."""
        return replace(
            self._base_options,
            beam_size=beam,
            num_hypotheses=beam,
            max_new_tokens=self.config.max_new_tokens,
            length_penalty=self.config.length_penalty,
        )

    def _decode(
        self,
        audios: Sequence[np.ndarray],
        wanted: list[str],
        options: DecodeOptions,
        bias: list[int],
    ) -> list[NBest]:
        import torch

        n = options.nbest
        started = time.perf_counter()
        with torch.inference_mode():
            encoder_out, chosen, encode_s = self.encode(audios, wanted)
            prompts = np.array([self.prompt(lang, bias) for lang, _ in chosen])
            beam = options.first_beam
            searched = beam_search(self.model, encoder_out, prompts, self.beam_options(beam))
            readings = [
                self.readings(r, lang) for r, (lang, _) in zip(searched, chosen, strict=True)
            ]
            # Merging variants may leave fewer than n readings: decode those utterances
            # again with a wider beam, as the CTranslate2 path does.
            while (wider := options.wider(beam)) is not None:
                short = [i for i, r in enumerate(readings) if len(r) < n]
                if not short:
                    break
                beam = wider
                again = beam_search(
                    self.model, encoder_out[short], prompts[short], self.beam_options(beam)
                )
                for i, result in zip(short, again, strict=True):
                    readings[i] = self.readings(result, chosen[i][0])
        total_s = time.perf_counter() - started
        extra = {"backend": "torch", "encode_s": encode_s, "asr_s": total_s, "batch": len(audios)}
        return [
            self.to_nbest(hyps, n, lang, len(audio) / SAMPLE_RATE, {**extra, "beam": beam})
            for hyps, lang, audio in zip(readings, chosen, audios, strict=True)
        ]

    @staticmethod
    def to_nbest(
        readings: Sequence[Hypothesis],
        n: int,
        language: tuple[str, float],
        duration_s: float,
        extra: dict,
    ) -> NBest:
        """The NBest of one clip from its readings (best first) and its (language, prob)."""
        return NBest(
            tuple(readings[:n]),
            language=language[0],
            language_prob=language[1],
            duration_s=duration_s,
            extra=extra,
        )

    def readings(self, results: Sequence[BeamResult], language: str) -> list[Hypothesis]:
        """Distinct readings of one utterance's finished beams, best score first."""
        return distinct_readings(
            (
                Hypothesis(
                    text=self.tokenizer.decode(list(result.token_ids)).strip(),
                    token_ids=result.token_ids,
                    logprob_sum=result.logprob_sum,
                    asr_score=result.score,
                    score=result.score,
                )
                for result in results
            ),
            language,
        )
