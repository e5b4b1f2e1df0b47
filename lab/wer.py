"""Word and character error rates for English and Spanish, with the normalization a
retail query needs: case, punctuation, digits vs number words, accents kept or stripped.

Alignment is jiwer's (Levenshtein over words / characters). Rates are corpus-level:
total errors (substitutions + deletions + insertions) over total reference words, the
usual way WER is reported, not a mean of per-utterance rates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jiwer

from textnorm import normalize


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations of one or more aligned utterances (words or characters)."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_length: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """errors / reference length; insertions against an empty reference count as 1.0."""
        if self.reference_length == 0:
            return 0.0 if self.errors == 0 else 1.0
        return self.errors / self.reference_length

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_length + other.reference_length,
        )


def _counts(reference: str, hypothesis: str, chars: bool) -> ErrorCounts:
    ref_units = list(reference) if chars else reference.split()
    hyp_units = list(hypothesis) if chars else hypothesis.split()
    if not ref_units or not hyp_units:  # jiwer refuses empty references
        return ErrorCounts(0, len(ref_units), len(hyp_units), len(ref_units))
    out = (
        jiwer.process_characters(reference, hypothesis)
        if chars
        else jiwer.process_words(reference, hypothesis)
    )
    return ErrorCounts(out.substitutions, out.deletions, out.insertions, len(ref_units))


def word_errors(
    reference: str, hypothesis: str, language: str, accents: bool = True
) -> ErrorCounts:
    """Word edit counts after normalization."""
    return _counts(
        normalize(reference, language, accents), normalize(hypothesis, language, accents), False
    )


def char_errors(
    reference: str, hypothesis: str, language: str, accents: bool = True
) -> ErrorCounts:
    """Character edit counts after normalization (spaces count as characters)."""
    return _counts(
        normalize(reference, language, accents), normalize(hypothesis, language, accents), True
    )


def _languages(languages: str | Sequence[str], n: int) -> list[str]:
    langs = [languages] * n if isinstance(languages, str) else list(languages)
    if len(langs) != n:
        raise ValueError("one language per utterance (or a single one for all)")
    return langs


def _corpus_rate(errors, references, hypotheses, languages, accents) -> float:
    """Errors summed over aligned utterances, divided by the reference length."""
    if len(references) != len(hypotheses):
        raise ValueError("references and hypotheses must have the same length")
    langs = _languages(languages, len(references))
    total = ErrorCounts()
    for ref, hyp, lang in zip(references, hypotheses, langs, strict=True):
        total = total + errors(ref, hyp, lang, accents)
    return total.rate


def wer(
    references: Sequence[str],
    hypotheses: Sequence[str],
    languages: str | Sequence[str],
    accents: bool = True,
) -> float:
    """Corpus word error rate of aligned lists of references and hypotheses."""
    return _corpus_rate(word_errors, references, hypotheses, languages, accents)


def cer(
    references: Sequence[str],
    hypotheses: Sequence[str],
    languages: str | Sequence[str],
    accents: bool = True,
) -> float:
    """Corpus character error rate."""
    return _corpus_rate(char_errors, references, hypotheses, languages, accents)


def oracle(
    reference: str, candidates: Sequence[str], language: str, accents: bool = True
) -> tuple[int, ErrorCounts]:
    """The candidate (index, word counts) with the fewest word errors: what a perfect
    reranker could pick from an n-best list. Ties go to the earlier (better-ranked) one."""
    if not candidates:
        return -1, word_errors(reference, "", language, accents)
    scored = [word_errors(reference, c, language, accents) for c in candidates]
    best = min(range(len(scored)), key=lambda i: (scored[i].errors, i))
    return best, scored[best]


def oracle_wer(
    references: Sequence[str],
    nbest_texts: Sequence[Sequence[str]],
    languages: str | Sequence[str],
    accents: bool = True,
) -> float:
    """Corpus WER when each utterance takes its best hypothesis from its n-best list."""
    if len(references) != len(nbest_texts):
        raise ValueError("one n-best list per reference")
    langs = _languages(languages, len(references))
    total = ErrorCounts()
    for ref, cands, lang in zip(references, nbest_texts, langs, strict=True):
        total = total + oracle(ref, cands, lang, accents)[1]
    return total.rate
