"""The first-pass contract, written once: what every Whisper backend takes and promises.

A backend (asr.transcriber on CTranslate2, asr.torch_backend on PyTorch, and
asr.torch_continuous's decoder over the latter) satisfies `Transcriber`:
`nbest(audio, language) -> NBest` and `nbest_batch(audios, languages) -> list[NBest]`.
This module holds what they share, so that each backend keeps only what is its own
(CTranslate2's generate calls; the PyTorch beam search):

- the constants of Whisper and of the store (languages, window, beam and token budgets);
- `DecodingConfig`, the load-time fields both backends' configs have, with one validator;
- `DecodeOptions`, the per-call options (readings, beam, widening, bias terms);
- `Transcriber`, the protocol, and `Backend`, the front that checks a call's arguments once
  and hands them to the backend's `decode_batch`;
- argument checks (`check_language`, `languages_per_audio`, `selectors_per_audio`);
- the prompt: bias terms as Whisper's "previous text" (`bias_prompt_text`, `encode_bias`,
  `prompt_ids`);
- merging a beam into distinct readings (`distinct_readings`, `merge_readings`);
- `decode_with_phrases`, the phrase-selected decode for a backend that has no cheaper way.

Imports nothing heavy (no numpy model code, no CTranslate2, no torch).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from asr.nbest import Hypothesis, NBest, reading_key

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Hz: the audio every backend takes (float32 mono)
SUPPORTED_LANGUAGES = ("en", "es")  # language detection is restricted to the store's two
WINDOW_S = 30  # Whisper's encoder was trained on fixed 30 s windows (3000 mel frames)
MAX_BEAM = 32  # widest beam tried when merging case/punctuation variants leaves < N readings
# Decoder token budget: Whisper's context is 448 tokens; half of it may hold the prompt (as in
# openai/whisper and faster-whisper), the rest is for the transcript.
MAX_PROMPT_TOKENS = 223
MAX_NEW_TOKENS = 128  # a spoken query is < 30 s, far under this


@dataclass(frozen=True)
class DecodingConfig:
    """The load-time decoding fields every backend's config has, meaning the same in each
    (asr.transcriber.TranscriberConfig and asr.torch_backend.TorchTranscriberConfig extend
    it; asr.backends carries every shared field from one to the other)."""

    # Beam width of the decoder; widened to 2 * nbest when that is larger, so that merging
    # case/punctuation variants still leaves nbest distinct readings.
    beam_size: int = 8
    # Distinct readings returned per utterance.
    nbest: int = 5
    # "auto" detects among `languages`; or a fixed language code.
    language: str = "auto"
    # Languages detection may choose from (Whisper knows 99; the assistant speaks two).
    languages: tuple[str, ...] = SUPPORTED_LANGUAGES
    # Domain terms (catalog brands, products) given to the decoder as previous text.
    bias_terms: tuple[str, ...] = ()
    # Retry wider beams (up to MAX_BEAM) for utterances with fewer than nbest readings.
    widen_beam: bool = True
    # Exponent of the length normalization of scores (1.0: mean log-probability per token).
    length_penalty: float = 1.0
    # Tokens the decoder may generate after the prompt.
    max_new_tokens: int = MAX_NEW_TOKENS
    # Encoder window in seconds. Whisper was trained on 30 s windows (the default); a shorter
    # window (e.g. 10 s, grown to fit longer clips) cuts the encoder's cost several-fold on
    # short queries at some risk to accuracy: docs/asr_benchmark.md measures both.
    # CTranslate2 only: the PyTorch encoder always sees 30 s.
    window_s: float = WINDOW_S

    def __post_init__(self) -> None:
        object.__setattr__(self, "languages", tuple(self.languages))
        object.__setattr__(self, "bias_terms", tuple(self.bias_terms))
        unknown = [lang for lang in self.languages if lang not in SUPPORTED_LANGUAGES]
        if unknown or not self.languages:
            raise ValueError(f"languages must be among {SUPPORTED_LANGUAGES}, got {self.languages}")
        if self.language != "auto" and self.language not in self.languages:
            raise ValueError(
                f"unknown language {self.language!r}: use auto, {', '.join(self.languages)}"
            )
        if self.nbest < 1 or self.beam_size < 1:
            raise ValueError("nbest and beam_size must be at least 1")
        if self.nbest > MAX_BEAM:
            raise ValueError(f"nbest must be at most {MAX_BEAM}")
        if not 1.0 <= self.window_s <= WINDOW_S:
            raise ValueError(f"window_s must be between 1 and {WINDOW_S} seconds")


@dataclass(frozen=True)
class DecodeOptions:
    """What one `nbest` / `nbest_batch` call may change; None: the backend config's value.

    nbest: distinct readings wanted (1 to MAX_BEAM).
    beam_size: beam width of the first decode (still at least 2 * nbest).
    widen_beam: retry wider beams for utterances left with fewer than nbest readings.
    bias_terms: the prompt's domain terms for this call (() for none); None: the config's
        terms, or each utterance's phrase selector when the call has selectors. Given terms
        win over selectors.
    """

    nbest: int | None = None
    beam_size: int | None = None
    widen_beam: bool | None = None
    bias_terms: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.nbest is not None and not 1 <= self.nbest <= MAX_BEAM:
            raise ValueError(f"nbest must be between 1 and {MAX_BEAM}")
        if self.beam_size is not None and self.beam_size < 1:
            raise ValueError("beam_size must be at least 1")
        if self.bias_terms is not None:
            object.__setattr__(self, "bias_terms", tuple(self.bias_terms))

    @classmethod
    def of(
        cls,
        options: DecodeOptions | None = None,
        nbest: int | None = None,
        bias_terms: Sequence[str] | None = None,
    ) -> DecodeOptions:
        """The options of a call made with the keyword form (`nbest=`, `bias_terms=`), which
        override `options`' fields; nbest=0 counts as not given (the config's)."""
        options = options or cls()
        changes: dict[str, Any] = {}
        if nbest:
            changes["nbest"] = nbest
        if bias_terms is not None:
            changes["bias_terms"] = tuple(bias_terms)
        return replace(options, **changes) if changes else options

    def resolved(self, config: DecodingConfig) -> DecodeOptions:
        """These options with nbest, beam_size and widen_beam filled from `config` (read on
        every call: a shallow copy of a backend with another config decodes with that one).
        bias_terms stays None when not given (its None has a meaning)."""
        return replace(
            self,
            nbest=self.nbest or config.nbest,
            beam_size=self.beam_size or config.beam_size,
            widen_beam=config.widen_beam if self.widen_beam is None else self.widen_beam,
        )

    @property
    def first_beam(self) -> int:
        """Beam width of the first decode (resolved options): beam_size, at least 2 * nbest."""
        return max(self.beam_size, 2 * self.nbest)

    def wider(self, beam: int) -> int | None:
        """The next beam width to retry with after `beam`; None when there is none."""
        if not self.widen_beam or beam >= MAX_BEAM:
            return None
        return min(MAX_BEAM, beam * 2)


class PhraseSelector(Protocol):
    """Chooses the phrases the decoder is prompted with for one utterance (assistant.phrases).

    needs_draft: the selection depends on what was said, so a cheap draft decode comes first.
    select(drafts, language): the phrases for an utterance whose draft readings are `drafts`
        (empty when needs_draft is False), decoded in `language`.
    """

    @property
    def needs_draft(self) -> bool: ...

    def select(self, drafts: Sequence[str], language: str) -> tuple[str, ...]: ...


@runtime_checkable
class Transcriber(Protocol):
    """What the server, the pipeline and `assistant transcribe` call on a first pass.

    (asr.transcriber.Transcriber is the CTranslate2 class of that name; it satisfies this
    protocol, as do asr.torch_backend.TorchTranscriber and asr.torch_continuous's decoder.)

    config: the backend's DecodingConfig subclass, read on every call (a shallow copy with
        another config, like the pipeline's greedy partials view, shares the weights).
    device: where the model runs ("cpu", "cuda" or a torch.device).
    nbest(audio, language): distinct readings of one utterance, best first. audio: float32
        mono 16 kHz, shape (samples,), the first 30 s decoded; language: "en", "es", "auto"
        or None (the config's). nbest, bias_terms: the keyword form of `options`.
        phrases: the utterance's PhraseSelector (None: none).
    nbest_batch(audios, languages): `nbest` of several utterances in one call, one NBest
        per audio in order; languages and phrases hold one entry per audio.
    Bad arguments raise ValueError.
    """

    config: Any
    device: Any

    def nbest(
        self,
        audio: Any,
        language: str | None = None,
        nbest: int | None = None,
        bias_terms: Sequence[str] | None = None,
        phrases: PhraseSelector | None = None,
        *,
        options: DecodeOptions | None = None,
    ) -> NBest: ...

    def nbest_batch(
        self,
        audios: Sequence[Any],
        languages: Sequence[str | None] | None = None,
        nbest: int | None = None,
        bias_terms: Sequence[str] | None = None,
        phrases: Sequence[PhraseSelector | None] | None = None,
        *,
        options: DecodeOptions | None = None,
    ) -> list[NBest]: ...


class Backend:
    """The front every backend shares: `nbest` and `nbest_batch` with the contract's
    signatures check the arguments once (one language and one phrase selector per audio, the
    options resolved against `self.config`) and hand them to the backend's `decode_batch`."""

    config: DecodingConfig

    def nbest(
        self,
        audio,
        language: str | None = None,
        nbest: int | None = None,
        bias_terms: Sequence[str] | None = None,
        phrases: PhraseSelector | None = None,
        *,
        options: DecodeOptions | None = None,
    ) -> NBest:
        """Distinct readings of one utterance, best first (see `Transcriber`)."""
        return self.nbest_batch([audio], [language], nbest, bias_terms, [phrases], options=options)[
            0
        ]

    def nbest_batch(
        self,
        audios: Sequence,
        languages: Sequence[str | None] | None = None,
        nbest: int | None = None,
        bias_terms: Sequence[str] | None = None,
        phrases: Sequence[PhraseSelector | None] | None = None,
        *,
        options: DecodeOptions | None = None,
    ) -> list[NBest]:
        """`nbest` of several utterances, one NBest per audio in order (see `Transcriber`)."""
        languages = languages_per_audio(audios, languages)
        selectors = selectors_per_audio(audios, phrases)
        options = self.decode_options(options, nbest, bias_terms)
        return self.decode_batch(audios, languages, selectors, options)

    def decode_options(
        self,
        options: DecodeOptions | None = None,
        nbest: int | None = None,
        bias_terms: Sequence[str] | None = None,
    ) -> DecodeOptions:
        """A call's options, the keyword form folded in, resolved against the config."""
        return DecodeOptions.of(options, nbest, bias_terms).resolved(self.config)

    def decode_batch(
        self,
        audios: Sequence,
        languages: list[str | None],
        selectors: list[PhraseSelector | None],
        options: DecodeOptions,
    ) -> list[NBest]:
        """The backend's own decoding: one language (None: the config's) and one selector
        per audio, resolved options."""
        raise NotImplementedError


# ---- arguments ------------------------------------------------------------------------


def check_language(language: str | None, config: DecodingConfig) -> str:
    """The language to decode for a request: "auto" or a configured code (else ValueError);
    None: the config's."""
    language = language or config.language
    if language != "auto" and language not in config.languages:
        raise ValueError(f"unknown language {language!r}: use auto, {', '.join(config.languages)}")
    return language


def languages_per_audio(audios: Sequence, languages: Sequence | None) -> list:
    """One language entry per audio of an `nbest_batch` call (None: each the default);
    ValueError when the two lists differ in length."""
    languages = list(languages) if languages is not None else [None] * len(audios)
    if len(languages) != len(audios):
        raise ValueError("languages must have one entry per audio")
    return languages


def selectors_per_audio(audios: Sequence, phrases: Sequence | None) -> list:
    """One phrase selector (or None) per audio of an `nbest_batch` call; ValueError when the
    two lists differ in length."""
    selectors = list(phrases) if phrases is not None else [None] * len(audios)
    if len(selectors) != len(audios):
        raise ValueError("phrases must have one entry per audio")
    return selectors


# ---- the prompt -----------------------------------------------------------------------


def bias_prompt_text(terms: Sequence[str]) -> str:
    """Terms as the 'previous text' Whisper conditions on: a comma-separated list."""
    return ", ".join(t.strip() for t in terms if t.strip())


def encode_bias(tokenizer, terms: Sequence[str]) -> list[int]:
    """Token ids of the bias terms' prompt text (a `tokenizers.Tokenizer` of Whisper), at most
    MAX_PROMPT_TOKENS of them (a longer list is cut, with a warning)."""
    text = bias_prompt_text(terms)
    if not text:
        return []
    ids = tokenizer.encode(" " + text, add_special_tokens=False).ids
    if len(ids) > MAX_PROMPT_TOKENS:
        log.warning("bias terms take %d tokens; keeping the first %d", len(ids), MAX_PROMPT_TOKENS)
        ids = ids[:MAX_PROMPT_TOKENS]
    return ids


def prompt_ids(sot_prev: int, bias: Sequence[int], start: Sequence[int]) -> list[int]:
    """Decoder prompt: [<|startofprev|>, bias ids,] then `start` (<|startoftranscript|>,
    language, task, <|notimestamps|>); no previous-text marker without bias ids."""
    prefix = [sot_prev, *bias] if bias else []
    return [*prefix, *start]


# ---- readings -------------------------------------------------------------------------


def distinct_readings(hypotheses: Iterable[Hypothesis], language: str) -> list[Hypothesis]:
    """The first hypothesis of each reading (asr.nbest.reading_key), in the given order;
    hypotheses with nothing to read are dropped. Given best first, keeps the best spelling."""
    seen: set[str] = set()
    out = []
    for hypothesis in hypotheses:
        key = reading_key(hypothesis.text, language)
        if key and key not in seen:
            seen.add(key)
            out.append(hypothesis)
    return out


def merge_readings(
    hyps: Sequence[Hypothesis], extra: Sequence[Hypothesis], language: str
) -> list[Hypothesis]:
    """Two lists of readings of one utterance as one, best asr_score first, one spelling each."""
    return distinct_readings(sorted([*hyps, *extra], key=lambda h: -h.asr_score), language)


def decode_with_phrases(
    transcriber: Transcriber,
    audios: Sequence,
    languages: Sequence[str | None],
    selectors: Sequence[PhraseSelector | None],
    options: DecodeOptions,
) -> list[NBest]:
    """Phrase-selected prompts on a backend with per-call `bias_terms` (the PyTorch ones): an
    unprompted decode of every utterance (the draft), the selector's phrases for each, a
    prompted decode of those, the draft's readings merged in. The CTranslate2 Transcriber does
    the same on one encoder output, with greedy drafts (its `nbest_batch`).

    options: resolved (nbest filled in); its bias_terms are not used (the drafts have none).
    """
    n = options.nbest
    plain = replace(options, bias_terms=())
    drafts = transcriber.nbest_batch(audios, languages, options=plain)
    out = []
    for audio, draft, selector in zip(audios, drafts, selectors, strict=True):
        if selector is None:
            out.append(draft)
            continue
        heard = [h.text for h in draft.hypotheses] if selector.needs_draft else []
        chosen = selector.select(heard, draft.language)
        prompted = transcriber.nbest(
            audio, draft.language, options=replace(options, bias_terms=tuple(chosen))
        )
        merged = merge_readings(prompted.hypotheses, draft.hypotheses, draft.language)
        out.append(replace(prompted, hypotheses=tuple(merged[:n])))
    return out
