"""The final score of a hypothesis: a log-linear combination of the two passes and two counts.

    final = asr_score + weight * rescore_score + word_bonus * words + catalog_bonus * catalog_words

- asr_score: Whisper's length-normalized log-probability (nats per token);
- rescore_score: the second-pass sentence score (rescoring.runtime);
- words: words of the hypothesis (`word_count`: runs of letters and digits, inner apostrophes
  kept: "Kellogg's" is one word, "Coca-Cola" two). A negative bonus is
  the classic word insertion penalty: noisy audio makes Whisper add words (repeats, "y" and
  "the" out of nowhere), and the per-token normalization of asr_score does not charge for them;
- catalog_words: words inside a phrase of the store's gazetteer (brands, products, departments,
  colours, associates, from the inventory; `CatalogMatcher.covered_words`). This is
  contextual biasing towards the catalog the store actually has: "tide pods" covers two
  words, "tied pods" none. The gazetteer comes from the inventory at run time, so a product
  added to the store is favoured without retraining.

The three weights are tuned together on the dev split (lab.rescoring.tune), by a grid search
for the lowest corpus WER; ties go to the simplest setting (no bonus, then the smallest lambda).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

FEATURES = ("words", "catalog")
_WORD = re.compile(r"\w+(?:'\w+)*")


def word_count(text: str) -> int:
    """Words of `text` as the word bonus counts them (punctuation separates, except an
    apostrophe inside a word)."""
    return len(_WORD.findall(unicodedata.normalize("NFC", text).replace("’", "'")))


@dataclass(frozen=True)
class ListFeatures:
    """Counts per hypothesis of one n-best list: words [n] and catalog_words [n] (floats)."""

    words: np.ndarray
    catalog_words: np.ndarray


class CatalogMatcher(Protocol):
    """What the catalog feature needs of a gazetteer (nlu.gazetteer.Gazetteer is one)."""

    def covered_words(self, text: str) -> int:
        """Words of `text` inside catalog phrases."""
        ...


def list_features(texts: Sequence[str], gazetteer: CatalogMatcher | None = None) -> ListFeatures:
    """Counts for `texts`; catalog_words are zero without a gazetteer."""
    return ListFeatures(
        words=np.asarray([word_count(t) for t in texts], dtype=np.float32),
        catalog_words=np.asarray(
            [gazetteer.covered_words(t) if gazetteer is not None else 0 for t in texts],
            dtype=np.float32,
        ),
    )


@dataclass(frozen=True)
class Combination:
    """Weights of the final score (see the module docstring); stored in the rescorer's
    config.json as lambda, word_bonus and catalog_bonus."""

    weight: float = 1.0
    word_bonus: float = 0.0
    catalog_bonus: float = 0.0

    @classmethod
    def from_config(cls, raw: dict) -> Combination:
        return cls(
            weight=float(raw.get("lambda", 1.0)),
            word_bonus=float(raw.get("word_bonus", 0.0)),
            catalog_bonus=float(raw.get("catalog_bonus", 0.0)),
        )

    def to_config(self) -> dict:
        return {
            "lambda": round(self.weight, 4),
            "word_bonus": round(self.word_bonus, 4),
            "catalog_bonus": round(self.catalog_bonus, 4),
        }

    @property
    def features(self) -> tuple[str, ...]:
        """The counts this combination uses."""
        return tuple(
            name
            for name, bonus in zip(FEATURES, (self.word_bonus, self.catalog_bonus), strict=True)
            if bonus
        )

    def final(self, asr: np.ndarray, rescore: np.ndarray, features: ListFeatures) -> np.ndarray:
        """Final scores [n] of one list from its asr [n] and rescore [n] scores and counts."""
        return (
            asr
            + self.weight * rescore
            + self.word_bonus * features.words
            + self.catalog_bonus * features.catalog_words
        )
