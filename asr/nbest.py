"""The n-best list that flows from the first pass (Transcriber) to the second (Reranker).

The types every stage shares; what a first-pass backend takes and promises is asr.contract.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace

from textnorm import SUPPORTED, normalize, strip_accents


def reading_key(text: str, language: str | None = None) -> str:
    """What two hypotheses must share to count as one reading, so that n-best slots are not
    spent on spellings of one reading: text without case, punctuation, extra spaces or accents
    ("Tide Pods?" == "tide pods", "dónde" == "donde") and, given the language, with digits as
    number words ("u 10" == "u diez" in Spanish). Both first-pass backends merge their beams by
    it, keeping the best-scored spelling. "tidepods" and "tide pods" stay apart."""
    if language in SUPPORTED:
        return normalize(text, language, accents=False)
    text = strip_accents(unicodedata.normalize("NFC", text).casefold())
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class Hypothesis:
    """One reading of an utterance.

    text: the decoded text, stripped of Whisper's leading space.
    token_ids: Whisper token ids of the text (no prompt or special tokens).
    logprob_sum: summed log-probability of the tokens under the first pass (nats).
    asr_score: length-normalized first-pass score (logprob_sum / len(token_ids) ** length_penalty),
        what the first pass ranks by.
    rescore_score: second-pass sentence score (higher is better), None without a rescorer.
    score: final score (rescoring.combine: asr_score + lambda * rescore_score + the word and
        catalog bonuses), asr_score without a rescorer.
    """

    text: str
    token_ids: tuple[int, ...] = ()
    logprob_sum: float = 0.0
    asr_score: float = 0.0
    rescore_score: float | None = None
    score: float = 0.0

    def to_dict(self) -> dict:
        """The wire shape of DESIGN.md: {"text", "asr_score", "rescore_score", "score"}."""
        return {
            "text": self.text,
            "asr_score": round(self.asr_score, 4),
            "rescore_score": None if self.rescore_score is None else round(self.rescore_score, 4),
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class NBest:
    """Distinct readings of one utterance, sorted by `score`, best first.

    language: ISO 639-1 code the decoder ran with ("en" or "es").
    language_prob: probability of that language from detection (1.0 when it was given).
    duration_s: length of the audio in seconds.
    """

    hypotheses: tuple[Hypothesis, ...]
    language: str
    language_prob: float = 1.0
    duration_s: float = 0.0
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def best(self) -> Hypothesis | None:
        return self.hypotheses[0] if self.hypotheses else None

    @property
    def text(self) -> str:
        return self.hypotheses[0].text if self.hypotheses else ""

    @property
    def first_pass_best(self) -> Hypothesis | None:
        """The best hypothesis by first-pass score alone."""
        return max(self.hypotheses, key=lambda h: h.asr_score, default=None)

    def resorted(self, hypotheses: list[Hypothesis] | tuple[Hypothesis, ...]) -> NBest:
        """A copy holding `hypotheses` sorted by score, best first."""
        ordered = tuple(sorted(hypotheses, key=lambda h: h.score, reverse=True))
        return replace(self, hypotheses=ordered)
