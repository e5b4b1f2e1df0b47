"""Whisper first pass: audio -> NBest (distinct readings with first-pass scores).

CTranslate2's `Whisper.generate(num_hypotheses=N, return_scores=True)` returns the whole beam,
which faster-whisper's `WhisperModel.transcribe` throws away; we call it directly with
faster-whisper's feature extractor and tokenizer. One verb: `Transcriber.nbest(audio)`;
`nbest_batch` decodes several utterances in one encoder/decoder call (server finals of
concurrent sessions, the rescoring corpus). The contract (arguments, per-call DecodeOptions,
prompt, merging of readings) is asr.contract's; what is here is CTranslate2's own.

Scores: CTranslate2 returns `cumulative log-probability / len(tokens) ** length_penalty`
(checked: with length_penalty=0 the score is exactly len(tokens) times the normalized one),
so `logprob_sum = score * len ** length_penalty` and `asr_score = score`.
"""

from __future__ import annotations

import logging
import math
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from asr.contract import (
    SAMPLE_RATE,
    WINDOW_S,
    Backend,
    DecodeOptions,
    DecodingConfig,
    PhraseSelector,
    check_language,
    distinct_readings,
    encode_bias,
    merge_readings,
    prompt_ids,
)
from asr.models import resolve_model_dir
from asr.nbest import Hypothesis, NBest, reading_key  # noqa: F401 - reading_key re-exported

log = logging.getLogger(__name__)

WINDOW_FRAMES = 3000  # mel frames of a WINDOW_S window
FRAMES_PER_S = 100  # mel hop of 10 ms
WINDOW_MARGIN_S = 1.0  # silence kept after the speech when the window is shortened
# A threshold for `lid_confident`: detection below it decodes both languages. Off by default:
# on the dev and held-out clips of docs/hear_the_store.md it changed no language decision for
# the better (the wrong calls are confident ones) and cost up to 1.3x on Spanish.
LID_CONFIDENT = 0.8
# A draft only has to name what was said (a spoken query takes 10-30 tokens); noise decoded
# greedily can run on to the limit.
DRAFT_MAX_TOKENS = 48
MAX_COMPRESSION_RATIO = 2.4  # openai/whisper's compression_ratio_threshold


# The first-pass adapter `serve` and `transcribe` use unless told otherwise (`--adapter none`:
# Whisper base as published); chosen on the measurements of docs/hear_the_store.md.
SERVED_ADAPTER: str | None = None


@dataclass(frozen=True)
class TranscriberConfig(DecodingConfig):
    """How the first pass runs on CTranslate2: the decoding fields every backend shares
    (asr.contract.DecodingConfig: beam_size, nbest, language, languages, bias_terms,
    widen_beam, length_penalty, max_new_tokens, window_s) and these. CLI flags map
    one-to-one (kebab-case) to the fields."""

    # CTranslate2 Whisper directory; None: the assembled Whisper base (asr.models).
    model_dir: str | Path | None = None
    # A committed adapter (asr.adapter, e.g. "store-v1") merged into Whisper base by
    # `assistant models assemble`; None: Whisper base as published.
    adapter: str | None = SERVED_ADAPTER
    # "auto": CUDA when CTranslate2 sees a GPU and can run on it, else CPU; or "cpu" / "cuda".
    device: str = "auto"
    # "default": int8 on CPU, float16 on CUDA; or any CTranslate2 compute type.
    compute_type: str = "default"
    # CPU threads for CTranslate2; 0: min(4, cores).
    cpu_threads: int = 0
    # With a draft decode (phrase selection), add the draft's unprompted reading to the list, so
    # that a prompt that misleads the decoder cannot take the plain reading away.
    merge_draft: bool = True
    # Language detection below this probability decodes both languages (greedy drafts) and
    # keeps the better-scored one; 0 (the default) trusts detection. See LID_CONFIDENT.
    lid_confident: float = 0.0
    # Weigh the two languages' drafts by the detector's probabilities (log prior) as well.
    lid_prior: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")


class Transcriber(Backend):
    """Whisper n-best first pass on CTranslate2 (an asr.contract.Transcriber). Load once,
    call `nbest` many times.

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
            config = replace(config, **overrides)
        self.config = config
        self.model_dir = resolve_model_dir(config.model_dir, config.adapter)
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
        self._bias_tokens = encode_bias(self.hf_tokenizer, config.bias_terms)

    # ---- decoding (the verbs nbest and nbest_batch: asr.contract.Backend) ---------------

    def decode_batch(
        self,
        audios: Sequence[np.ndarray],
        languages: list[str | None],
        selectors: list[PhraseSelector | None],
        options: DecodeOptions,
    ) -> list[NBest]:
        """`nbest_batch` (asr.contract.Backend), its arguments checked: one encode and as few
        generate calls as the utterances' prompts allow (faster per clip on a GPU and on
        several cores). One NBest per input.

        selectors: one (or None) per audio, unused when options.bias_terms are given. A
        selector that `needs_draft` gets a greedy unprompted draft decode of the same encoder
        output first; its reading joins the list.
        """
        if not audios:
            return []
        n, bias_terms = options.nbest, options.bias_terms
        wanted = [check_language(lang, self.config) for lang in languages]

        started = time.perf_counter()
        durations = [len(a) / SAMPLE_RATE for a in audios]
        encoded = self._encode(audios)
        encode_s = time.perf_counter() - started
        rows = np.asarray(encoded)  # host copy: generate calls take row subsets of it

        detected = self._detect(encoded) if any(w == "auto" for w in wanted) else None
        chosen = [detected[i] if w == "auto" else (w, 1.0) for i, w in enumerate(wanted)]
        candidates = self._candidate_languages(wanted, chosen)
        drafted = [
            len(candidates[i]) > 1 or (bias_terms is None and sel is not None and sel.needs_draft)
            for i, sel in enumerate(selectors)
        ]
        drafts = self._drafts(rows, candidates, drafted)
        decided = [
            max(cands, key=lambda c, i=i: self._language_score(drafts[(i, c)], c, chosen[i]))
            if len(cands) > 1
            else cands[0]
            for i, cands in enumerate(candidates)
        ]

        given = None if bias_terms is None else encode_bias(self.hf_tokenizer, bias_terms)

        def bias_for(i: int, lang: str) -> list[int]:
            if given is not None:
                return given
            if selectors[i] is None:
                return self._bias_tokens
            heard = [h.text for h in drafts.get((i, lang), [])]
            return encode_bias(self.hf_tokenizer, selectors[i].select(heard, lang))

        jobs = [(i, lang, bias_for(i, lang)) for i, lang in enumerate(decided)]
        beam = options.first_beam
        results = self._run(rows, jobs, beam)
        readings = [self._readings(r, lang) for r, lang in zip(results, decided, strict=True)]
        # Merging variants may leave fewer than n readings: decode those utterances again
        # with a wider beam (short queries often have only a handful of plausible readings).
        while (wider := options.wider(beam)) is not None:
            short = [i for i, r in enumerate(readings) if len(r) < n]
            if not short:
                break
            beam = wider
            for i, result in zip(
                short, self._run(rows, [jobs[i] for i in short], beam), strict=True
            ):
                results[i], readings[i] = result, self._readings(result, decided[i])
        total_s = time.perf_counter() - started

        out = []
        for i, lang in enumerate(decided):
            hyps = [h for h in readings[i] if not looks_looped(h.text)] or readings[i]
            if (i, lang) in drafts and (self.config.merge_draft or len(hyps) < len(readings[i])):
                hyps = merge_readings(hyps, drafts[(i, lang)], lang)
            prob = chosen[i][1] if lang == chosen[i][0] else 1.0 - chosen[i][1]
            job_bias = jobs[i][2]
            out.append(
                NBest(
                    hypotheses=tuple(hyps[:n]),
                    language=lang,
                    language_prob=prob,
                    duration_s=durations[i],
                    extra={
                        "no_speech_prob": results[i].no_speech_prob,
                        "encode_s": encode_s,
                        "asr_s": total_s,
                        "batch": len(audios),
                        "beam": beam,
                        "prompt_tokens": len(job_bias),
                        "draft": (i, lang) in drafts,
                        "languages_decoded": list(candidates[i]),
                    },
                )
            )
        return out

    def _candidate_languages(
        self, wanted: Sequence[str], chosen: Sequence[tuple[str, float]]
    ) -> list[tuple[str, ...]]:
        """Languages to draft-decode per utterance: the detected one, and the other one too
        when detection is below `lid_confident` (short, robotic, noisy or band-limited speech)."""
        return [
            (lang,)
            if w != "auto" or p >= self.config.lid_confident
            else (lang, _other(lang, self.config))
            for w, (lang, p) in zip(wanted, chosen, strict=True)
        ]

    def _drafts(
        self, rows: np.ndarray, candidates: Sequence[tuple[str, ...]], drafted: Sequence[bool]
    ) -> dict[tuple[int, str], list[Hypothesis]]:
        """Greedy unprompted readings {(utterance, language): readings} of the `drafted`
        utterances in each candidate language: for selectors that choose phrases from what was
        heard, and for close language calls. The language is settled on these drafts, before
        any prompt: a phrase list can make the decoder loop on list-like text that scores well
        in the wrong language."""
        jobs = [(i, lang, []) for i, todo in enumerate(drafted) if todo for lang in candidates[i]]
        results = self._run(rows, jobs, 1, DRAFT_MAX_TOKENS)
        return {
            (i, lang): self._readings(result, lang)
            for (i, lang, _), result in zip(jobs, results, strict=True)
        }

    def _language_score(
        self, draft: Sequence[Hypothesis], language: str, detected: tuple[str, float]
    ) -> float:
        """How well `language` explains an utterance: its draft's mean token log-probability,
        plus the log of the detector's probability for it when `lid_prior` (a fluent
        hallucination in the wrong language can score as well as a noisy right reading)."""
        score = _best_score(draft)
        if self.config.lid_prior:
            prob = detected[1] if language == detected[0] else 1.0 - detected[1]
            score += math.log(max(prob, 1e-6))
        return score

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        """(language, probability) among the configured languages, probabilities renormalized."""
        return self._detect(self._encode([audio]))[0]

    # ---- steps --------------------------------------------------------------------------

    def _tokenizer(self, language: str):
        from faster_whisper.tokenizer import Tokenizer

        if language not in self._tokenizers:
            self._tokenizers[language] = Tokenizer(
                self.hf_tokenizer, self.model.is_multilingual, task="transcribe", language=language
            )
        return self._tokenizers[language]

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
        return prompt_ids(tok.sot_prev, bias, [*tok.sot_sequence, tok.no_timestamps])

    def _run(
        self,
        rows: np.ndarray,
        jobs: Sequence[tuple[int, str, list[int]]],
        beam: int,
        max_new_tokens: int | None = None,
    ):
        """generate() for (row, language, bias ids) jobs over encoder rows; one result per job.

        CTranslate2 needs <|startoftranscript|> at one position across a batch, so jobs are
        grouped by prompt length, one generate call per group (usually one).
        """
        prompts = [self._prompt(lang, bias) for _, lang, bias in jobs]
        groups: dict[int, list[int]] = {}
        for k, prompt in enumerate(prompts):
            groups.setdefault(len(prompt), []).append(k)
        results: list = [None] * len(jobs)
        for length, members in groups.items():
            sub = self._ct2.StorageView.from_array(
                np.ascontiguousarray(rows[[jobs[k][0] for k in members]])
            )
            got = self.model.generate(
                sub,
                [prompts[k] for k in members],
                beam_size=beam,
                num_hypotheses=beam,
                length_penalty=self.config.length_penalty,
                return_scores=True,
                return_no_speech_prob=True,
                max_length=length + (max_new_tokens or self.config.max_new_tokens),
            )
            for k, result in zip(members, got, strict=True):
                results[k] = result
        return results

    def _readings(self, result, language: str) -> list[Hypothesis]:
        """Distinct readings of one generate() result, best asr_score first."""
        tok = self._tokenizer(language)
        lp = self.config.length_penalty
        beams = sorted(zip(result.sequences_ids, result.scores, strict=True), key=lambda p: -p[1])
        return distinct_readings(
            (
                Hypothesis(
                    text=tok.decode(ids).strip(),
                    token_ids=tuple(ids),
                    logprob_sum=float(score) * max(1, len(ids)) ** lp,
                    asr_score=float(score),
                    rescore_score=None,
                    score=float(score),
                )
                for ids, score in beams
            ),
            language,
        )


def looks_looped(text: str, max_ratio: float = MAX_COMPRESSION_RATIO) -> bool:
    """A decoder stuck repeating itself ("ah, ah, ah, ..."): the text compresses more than
    max_ratio times (openai/whisper's hallucination check, same threshold)."""
    data = text.encode("utf-8")
    return len(data) > 40 and len(data) / len(zlib.compress(data)) > max_ratio


def _other(language: str, config: TranscriberConfig) -> str:
    """The other configured language (itself when only one is configured)."""
    return next((lang for lang in config.languages if lang != language), language)


def _best_score(hyps: Sequence[Hypothesis]) -> float:
    return max((h.asr_score for h in hyps), default=float("-inf"))


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
