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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from asr.nbest import Hypothesis, NBest, languages_per_audio, reading_key
from asr.torch_beam import BeamOptions, BeamResult, beam_search

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms window
HOP = 160  # 10 ms hop -> 100 frames/s
WINDOW_S = 30  # Whisper's encoder always sees a 30 s window (3000 frames)
LANGUAGES = ("en", "es")  # language detection is restricted to the two store languages
MAX_BEAM = 32  # widest beam tried when merging case/punctuation variants leaves < N readings
MAX_PROMPT_TOKENS = 223  # half of Whisper's 448-token context, as in openai/whisper


@dataclass(frozen=True)
class TorchTranscriberConfig:
    """How the PyTorch first pass runs; the fields shared with asr.transcriber.TranscriberConfig
    mean the same (asr.backends.load_transcriber maps one onto the other).

    model_dir: converted folder (default: <cache home>/whisper-base-torch).
    device: "auto" (cuda when available, else cpu), "cuda", "cuda:N" or "cpu".
    dtype: "auto" (float16 on CUDA, float32 on CPU), "float16", "bfloat16" or "float32".
    beam_size: beam width, widened to 2 * nbest when that is larger.
    nbest: distinct readings returned per utterance.
    language: "auto" (detect among `languages`) or a language code.
    bias_terms: domain terms given to the decoder as previous text.
    widen_beam: re-decode utterances left with < nbest readings with wider beams (up to 32).
    batch_size: utterances per tensor batch in nbest_batch (bounded by GPU memory).
    length_penalty, max_new_tokens: see asr.torch_beam.BeamOptions.
    """

    model_dir: Path | None = None
    device: str = "auto"
    dtype: str = "auto"
    beam_size: int = 8
    nbest: int = 5
    language: str = "auto"
    languages: tuple[str, ...] = LANGUAGES
    bias_terms: tuple[str, ...] = ()
    widen_beam: bool = True
    batch_size: int = 32
    length_penalty: float = 1.0
    max_new_tokens: int = 128

    def __post_init__(self) -> None:
        if self.nbest < 1 or self.beam_size < 1 or self.batch_size < 1:
            raise ValueError("beam_size, nbest and batch_size must be >= 1")
        if self.nbest > MAX_BEAM:
            raise ValueError(f"nbest must be at most {MAX_BEAM}")
        if self.dtype not in ("auto", "float16", "bfloat16", "float32"):
            raise ValueError(f"dtype {self.dtype!r}: use auto, float16, bfloat16 or float32")
        if not self.languages or any(lang not in LANGUAGES for lang in self.languages):
            raise ValueError(f"languages must be among {LANGUAGES}, got {self.languages}")
        if self.language != "auto" and self.language not in self.languages:
            raise ValueError(f"unknown language {self.language!r}: use auto or {self.languages}")


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
        self._bias = self._encode_bias(config.bias_terms)
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

    def _encode_bias(self, terms: Sequence[str]) -> list[int]:
        text = ", ".join(t.strip() for t in terms if t.strip())
        if not text:
            return []
        ids = self.tokenizer.encode(" " + text, add_special_tokens=False).ids
        return ids[:MAX_PROMPT_TOKENS]

    def nbest(
        self,
        audio: np.ndarray,
        language: str | None = None,
        nbest: int | None = None,
        bias_terms: Sequence[str] | None = None,
        phrases=None,
    ) -> NBest:
        """Distinct readings of one utterance, best first.

        audio: float32 mono 16 kHz samples, shape (samples,); only the first 30 s are decoded.
        language: "en", "es", "auto" or None (the config's language).
        bias_terms: overrides the config's domain terms for this call (() for none).
        """
        if phrases is not None:
            return self.nbest_batch([audio], [language], nbest, phrases=[phrases])[0]
        return self.nbest_batch([audio], [language], nbest=nbest, bias_terms=bias_terms)[0]

    def nbest_batch(
        self,
        audios: Sequence[np.ndarray],
        languages: Sequence[str | None] | None = None,
        nbest: int | None = None,
        bias_terms: Sequence[str] | None = None,
        phrases=None,
    ) -> list[NBest]:
        """`nbest` for many utterances, decoded `config.batch_size` at a time as one tensor
        batch each (encoder, language detection, beam search). One NBest per input, in order."""
        if phrases is not None and any(phrases):
            from asr.transcriber import decode_with_phrases

            n = nbest or self.config.nbest
            return decode_with_phrases(self, audios, languages, n, phrases)
        languages = languages_per_audio(audios, languages)
        n = self.check_nbest(nbest)
        wanted = [self.check_language(lang) for lang in languages]
        bias = self.bias_ids(bias_terms)
        results: list[NBest] = []
        step = self.config.batch_size
        for start in range(0, len(audios), step):
            chunk = slice(start, start + step)
            results.extend(self._decode(audios[chunk], wanted[chunk], n, bias))
        return results

    def check_nbest(self, nbest: int | None) -> int:
        """Readings wanted: `nbest`, or the config's when None; ValueError out of range."""
        n = nbest or self.config.nbest
        if not 1 <= n <= MAX_BEAM:
            raise ValueError(f"nbest must be between 1 and {MAX_BEAM}")
        return n

    def bias_ids(self, bias_terms: Sequence[str] | None) -> list[int]:
        """Prompt ids of the domain terms: the config's when None, none for ()."""
        return self._bias if bias_terms is None else self._encode_bias(bias_terms)

    def check_language(self, language: str | None) -> str:
        """The language to decode for a request: "auto" or a configured code (else ValueError)."""
        language = language or self.config.language
        if language != "auto" and language not in self.config.languages:
            raise ValueError(
                f"unknown language {language!r}: use auto, {', '.join(self.config.languages)}"
            )
        return language

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
        prefix = [self._sot_prev, *bias] if bias else []
        return [*prefix, self._sot, self._lang_ids[language], *self._task]

    def beam_options(self, beam: int) -> BeamOptions:
        """Search options for a beam width (every finished beam kept: readings merge later)."""
        return replace(
            self._base_options,
            beam_size=beam,
            num_hypotheses=beam,
            max_new_tokens=self.config.max_new_tokens,
            length_penalty=self.config.length_penalty,
        )

    def first_beam(self, n: int) -> int:
        """Beam width of the first decode for n readings: the configured one, at least 2 n."""
        return max(self.config.beam_size, 2 * n)

    def _decode(
        self, audios: Sequence[np.ndarray], wanted: list[str], n: int, bias: list[int]
    ) -> list[NBest]:
        import torch

        started = time.perf_counter()
        with torch.inference_mode():
            encoder_out, chosen, encode_s = self.encode(audios, wanted)
            prompts = np.array([self.prompt(lang, bias) for lang, _ in chosen])
            beam = self.first_beam(n)
            options = self.beam_options(beam)
            searched = beam_search(self.model, encoder_out, prompts, options)
            readings = [
                self.readings(r, lang) for r, (lang, _) in zip(searched, chosen, strict=True)
            ]
            # Merging variants may leave fewer than n readings: decode those utterances
            # again with a wider beam, as the CTranslate2 path does.
            while self.config.widen_beam and beam < MAX_BEAM:
                short = [i for i, r in enumerate(readings) if len(r) < n]
                if not short:
                    break
                beam = min(MAX_BEAM, beam * 2)
                options = self.beam_options(beam)
                wider = beam_search(self.model, encoder_out[short], prompts[short], options)
                for i, result in zip(short, wider, strict=True):
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
        hypotheses, seen = [], set()
        for result in results:
            text = self.tokenizer.decode(list(result.token_ids)).strip()
            key = reading_key(text, language)
            if not key or key in seen:
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
        return hypotheses
