"""Whisper first pass: audio -> NBest (distinct readings with first-pass scores).

CTranslate2's `Whisper.generate(num_hypotheses=N, return_scores=True)` returns the whole beam,
which faster-whisper's `WhisperModel.transcribe` throws away; we call it directly with
faster-whisper's feature extractor and tokenizer. One verb: `Transcriber.nbest(audio)`;
`nbest_batch` decodes several utterances in one encoder/decoder call (server finals of
concurrent sessions, the rescoring corpus).

Scores: CTranslate2 returns `cumulative log-probability / len(tokens) ** length_penalty`
(checked: with length_penalty=0 the score is exactly len(tokens) times the normalized one),
so `logprob_sum = score * len ** length_penalty` and `asr_score = score`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.models import resolve_model_dir
from asr.nbest import Hypothesis, NBest, languages_per_audio, reading_key

log = logging.getLogger(__name__)

SUPPORTED_LANGUAGES = ("en", "es")
WINDOW_S = 30  # Whisper's encoder sees fixed 30 s windows (3000 mel frames)
WINDOW_FRAMES = 3000
FRAMES_PER_S = 100  # mel hop of 10 ms
WINDOW_MARGIN_S = 1.0  # silence kept after the speech when the window is shortened
MAX_BEAM = 32  # widest beam tried when merging case/punctuation variants leaves < N readings
# Decoder token budget: Whisper's context is 448 tokens; half of it may hold the prompt (as in
# openai/whisper and faster-whisper), the rest is for the transcript.
MAX_PROMPT_TOKENS = 223
MAX_NEW_TOKENS = 128  # a spoken query is < 30 s, far under this


@dataclass(frozen=True)
class TranscriberConfig:
    """How the first pass runs. CLI flags map one-to-one (kebab-case) to these fields."""

    # CTranslate2 Whisper directory; None: the assembled Whisper base (asr.models).
    model_dir: str | Path | None = None
    # "auto": CUDA when CTranslate2 sees a GPU and can run on it, else CPU; or "cpu" / "cuda".
    device: str = "auto"
    # "default": int8 on CPU, float16 on CUDA; or any CTranslate2 compute type.
    compute_type: str = "default"
    # Beam width of the decoder; widened to 2 * nbest when that is larger, so that merging
    # case/punctuation variants still leaves nbest distinct readings.
    beam_size: int = 8
    # Distinct readings returned per utterance.
    nbest: int = 5
    # "auto" detects among `languages`; or a fixed language code.
    language: str = "auto"
    # Languages detection may choose from (Whisper knows 99; the assistant speaks two).
    languages: tuple[str, ...] = SUPPORTED_LANGUAGES
    # CPU threads for CTranslate2; 0: min(4, cores).
    cpu_threads: int = 0
    # Exponent of the length normalization of scores (1.0: mean log-probability per token).
    length_penalty: float = 1.0
    # Domain terms (catalog brands, products) given to the decoder as previous text.
    bias_terms: tuple[str, ...] = ()
    max_new_tokens: int = MAX_NEW_TOKENS
    # Retry wider beams (up to MAX_BEAM) for utterances with fewer than nbest readings.
    widen_beam: bool = True
    # Encoder window in seconds. Whisper was trained on 30 s windows (the default); a shorter
    # window (e.g. 10 s, grown to fit longer clips) cuts the encoder's cost several-fold on
    # short queries at some risk to accuracy: docs/asr_benchmark.md measures both.
    window_s: float = WINDOW_S

    def __post_init__(self) -> None:
        unknown = [lang for lang in self.languages if lang not in SUPPORTED_LANGUAGES]
        if unknown or not self.languages:
            raise ValueError(f"languages must be among {SUPPORTED_LANGUAGES}, got {self.languages}")
        if self.language != "auto" and self.language not in self.languages:
            raise ValueError(
                f"unknown language {self.language!r}: use auto, {', '.join(self.languages)}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.nbest < 1 or self.beam_size < 1:
            raise ValueError("nbest and beam_size must be at least 1")
        if self.nbest > MAX_BEAM:
            raise ValueError(f"nbest must be at most {MAX_BEAM}")
        if not 1.0 <= self.window_s <= WINDOW_S:
            raise ValueError(f"window_s must be between 1 and {WINDOW_S} seconds")


def bias_prompt_text(terms: Sequence[str]) -> str:
    """Terms as the 'previous text' Whisper conditions on: a comma-separated list."""
    return ", ".join(t.strip() for t in terms if t.strip())


class Transcriber:
    """Whisper n-best first pass on CTranslate2. Load once, call `nbest` many times.

    Thread safety: CTranslate2 models may be called from several threads; this object keeps
    no per-call state.
    """

    def __init__(self, config: TranscriberConfig | None = None, **overrides) -> None:
        import ctranslate2
        import tokenizers
        from faster_whisper.feature_extractor import FeatureExtractor

        if config is None:
            config = TranscriberConfig(**overrides)
        elif overrides:
            from dataclasses import replace

            config = replace(config, **overrides)
        self.config = config
        self.model_dir = resolve_model_dir(config.model_dir)
        threads = config.cpu_threads or min(4, os.cpu_count() or 1)
        started = time.perf_counter()
        self.model, self.device, self.compute_type = _load_model(
            ctranslate2, self.model_dir, config.device, config.compute_type, threads
        )
        self.load_s = time.perf_counter() - started
        log.info(
            "Whisper first pass on %s (%s) from %s, loaded in %.1f s",
            self.device,
            self.compute_type,
            self.model_dir,
            self.load_s,
        )
        self._ct2 = ctranslate2
        self.hf_tokenizer = tokenizers.Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        self.feature_extractor = FeatureExtractor(feature_size=self.model.n_mels)
        self._tokenizers: dict[str, object] = {}
        self._bias_tokens = self._encode_bias(config.bias_terms)

    # ---- public verbs -------------------------------------------------------------------

    def nbest(
        self,
        audio: np.ndarray,
        language: str | None = None,
        nbest: int | None = None,
        bias_terms: Sequence[str] | None = None,
    ) -> NBest:
        """Distinct readings of one utterance, best first.

        audio: float32 mono 16 kHz, shape (samples,); only the first 30 s are decoded.
        language: "en", "es", "auto" or None (the config's language).
        bias_terms: overrides the config's domain terms for this call (() for none).
        """
        return self.nbest_batch([audio], [language], nbest=nbest, bias_terms=bias_terms)[0]

    def nbest_batch(
        self,
        audios: Sequence[np.ndarray],
        languages: Sequence[str | None] | None = None,
        nbest: int | None = None,
        bias_terms: Sequence[str] | None = None,
    ) -> list[NBest]:
        """`nbest` for several utterances in one encode + one generate call (faster per clip
        on a GPU and on several cores). Returns one NBest per input, in order."""
        if not audios:
            return []
        languages = languages_per_audio(audios, languages)
        n = nbest or self.config.nbest
        if not 1 <= n <= MAX_BEAM:
            raise ValueError(f"nbest must be between 1 and {MAX_BEAM}")
        wanted = [self._check_language(lang) for lang in languages]
        bias = self._bias_tokens if bias_terms is None else self._encode_bias(bias_terms)

        started = time.perf_counter()
        durations = [len(a) / SAMPLE_RATE for a in audios]
        encoded = self._encode(audios)
        encode_s = time.perf_counter() - started

        detected = self._detect(encoded) if any(w == "auto" for w in wanted) else None
        chosen: list[tuple[str, float]] = []
        for i, want in enumerate(wanted):
            chosen.append(detected[i] if want == "auto" else (want, 1.0))

        beam = max(self.config.beam_size, 2 * n)
        results = self._generate(encoded, [c[0] for c in chosen], bias, beam)
        readings = [self._readings(r, lang) for r, (lang, _) in zip(results, chosen, strict=True)]
        # Merging variants may leave fewer than n readings: decode those utterances again
        # with a wider beam (short queries often have only a handful of plausible readings).
        while self.config.widen_beam and beam < MAX_BEAM:
            short = [i for i, r in enumerate(readings) if len(r) < n]
            if not short:
                break
            beam = min(MAX_BEAM, beam * 2)
            sub = self._ct2.StorageView.from_array(np.ascontiguousarray(_rows(encoded, short)))
            wider = self._generate(sub, [chosen[i][0] for i in short], bias, beam)
            for i, result in zip(short, wider, strict=True):
                readings[i] = self._readings(result, chosen[i][0])
        total_s = time.perf_counter() - started

        out = []
        for i, hyps in enumerate(readings):
            hyps = hyps[:n]
            out.append(
                NBest(
                    hypotheses=tuple(hyps),
                    language=chosen[i][0],
                    language_prob=chosen[i][1],
                    duration_s=durations[i],
                    extra={
                        "no_speech_prob": results[i].no_speech_prob,
                        "encode_s": encode_s,
                        "asr_s": total_s,
                        "batch": len(audios),
                        "beam": beam,
                    },
                )
            )
        return out

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        """(language, probability) among the configured languages, probabilities renormalized."""
        return self._detect(self._encode([audio]))[0]

    # ---- steps --------------------------------------------------------------------------

    def _check_language(self, language: str | None) -> str:
        language = language or self.config.language
        if language != "auto" and language not in self.config.languages:
            raise ValueError(
                f"unknown language {language!r}: use auto, {', '.join(self.config.languages)}"
            )
        return language

    def _tokenizer(self, language: str):
        from faster_whisper.tokenizer import Tokenizer

        if language not in self._tokenizers:
            self._tokenizers[language] = Tokenizer(
                self.hf_tokenizer, self.model.is_multilingual, task="transcribe", language=language
            )
        return self._tokenizers[language]

    def _encode_bias(self, terms: Sequence[str]) -> list[int]:
        text = bias_prompt_text(terms)
        if not text:
            return []
        ids = self.hf_tokenizer.encode(" " + text, add_special_tokens=False).ids
        if len(ids) > MAX_PROMPT_TOKENS:
            log.warning(
                "bias terms take %d tokens; keeping the first %d", len(ids), MAX_PROMPT_TOKENS
            )
            ids = ids[:MAX_PROMPT_TOKENS]
        return ids

    def _encode(self, audios: Sequence[np.ndarray]):
        """Log-mel features of each clip (first 30 s, padded to the window), encoded in one batch.
        Returns a StorageView (batch, frames / 2, d_model) in host memory."""
        from faster_whisper.audio import pad_or_trim

        feats = []
        longest = max(len(a) for a in audios) / SAMPLE_RATE
        window_s = min(WINDOW_S, max(self.config.window_s, longest + WINDOW_MARGIN_S))
        frames = WINDOW_FRAMES if window_s >= WINDOW_S else int(round(window_s * FRAMES_PER_S))
        frames += frames % 2  # the encoder's stride-2 convolution halves the frame count
        for audio in audios:
            audio = np.asarray(audio, dtype=np.float32).reshape(-1)
            if audio.size == 0:
                raise ValueError("empty audio: nothing to transcribe")
            if audio.size > WINDOW_S * SAMPLE_RATE:
                log.warning(
                    "audio is %.1f s; decoding the first %d s", audio.size / SAMPLE_RATE, WINDOW_S
                )
                audio = audio[: WINDOW_S * SAMPLE_RATE]
            feats.append(pad_or_trim(self.feature_extractor(audio), frames))
        batch = np.ascontiguousarray(np.stack(feats).astype(np.float32))
        features = self._ct2.StorageView.from_array(batch)
        # to_cpu=True: we may slice rows for the wider-beam retry, which needs host memory.
        return self.model.encode(features, to_cpu=True)

    def _detect(self, encoded) -> list[tuple[str, float]]:
        """Most likely language per row among the configured ones, with renormalized probability."""
        out = []
        for ranking in self.model.detect_language(encoded):
            probs = {tok.strip("<|>"): p for tok, p in ranking}
            allowed = {lang: probs.get(lang, 0.0) for lang in self.config.languages}
            total = sum(allowed.values())
            lang = max(allowed, key=allowed.get)
            out.append((lang, allowed[lang] / total if total > 0 else 1.0 / len(allowed)))
        return out

    def _prompt(self, language: str, bias: list[int]) -> list[int]:
        tok = self._tokenizer(language)
        prompt = [tok.sot_prev, *bias] if bias else []
        return prompt + list(tok.sot_sequence) + [tok.no_timestamps]

    def _generate(self, encoded, languages: list[str], bias: list[int], beam: int):
        prompts = [self._prompt(lang, bias) for lang in languages]
        return self.model.generate(
            encoded,
            prompts,
            beam_size=beam,
            num_hypotheses=beam,
            length_penalty=self.config.length_penalty,
            return_scores=True,
            return_no_speech_prob=True,
            max_length=len(prompts[0]) + self.config.max_new_tokens,
        )

    def _readings(self, result, language: str) -> list[Hypothesis]:
        """Distinct readings of one generate() result, best asr_score first."""
        tok = self._tokenizer(language)
        lp = self.config.length_penalty
        seen: set[str] = set()
        hyps = []
        for ids, score in sorted(
            zip(result.sequences_ids, result.scores, strict=True), key=lambda p: -p[1]
        ):
            text = tok.decode(ids).strip()
            key = reading_key(text)
            if not key or key in seen:
                continue
            seen.add(key)
            length = max(1, len(ids))
            hyps.append(
                Hypothesis(
                    text=text,
                    token_ids=tuple(ids),
                    logprob_sum=float(score) * length**lp,
                    asr_score=float(score),
                    rescore_score=None,
                    score=float(score),
                )
            )
        return hyps


def _rows(encoded, rows: list[int]) -> np.ndarray:
    return np.asarray(encoded)[rows]


def _load_model(ct2, model_dir: Path, device: str, compute_type: str, threads: int):
    """Load on CUDA when asked/possible, else CPU; returns (model, device, compute_type).

    The PyPI CTranslate2 wheels are CUDA 12 builds: a GPU may be visible yet unusable (no
    libcublas.so.12), which only shows when the model runs. With device="auto" we run one
    tiny encode to find out and fall back to the CPU.
    """
    if device in ("auto", "cuda"):
        try:
            has_gpu = ct2.get_cuda_device_count() > 0
        except Exception:  # noqa: BLE001 - a broken CUDA runtime means no GPU
            has_gpu = False
        if has_gpu:
            ctype = "float16" if compute_type == "default" else compute_type
            try:
                model = ct2.models.Whisper(str(model_dir), device="cuda", compute_type=ctype)
                probe = np.zeros((1, model.n_mels, WINDOW_FRAMES), dtype=np.float32)
                model.encode(ct2.StorageView.from_array(probe))
                return model, "cuda", ctype
            except Exception as error:  # noqa: BLE001
                if device == "cuda":
                    raise RuntimeError(
                        f"CUDA requested but CTranslate2 cannot use it: {error}"
                    ) from error
                log.warning(
                    "a GPU is visible but CTranslate2 cannot use it (%s); using the CPU", error
                )
        elif device == "cuda":
            raise RuntimeError("CUDA requested but CTranslate2 sees no GPU")
    ctype = "int8" if compute_type == "default" else compute_type
    model = ct2.models.Whisper(
        str(model_dir), device="cpu", compute_type=ctype, intra_threads=threads
    )
    return model, "cpu", ctype
