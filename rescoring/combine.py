"""The final score of a hypothesis: a log-linear combination of the two passes and two counts.

    final = asr_score + weight * rescore_score + word_bonus * words + catalog_bonus * catalog_words

- asr_score: Whisper's length-normalized log-probability (nats per token);
- rescore_score: the second-pass sentence score (rescoring.runtime);
- words: words of the hypothesis after normalization (rescoring.text). A negative bonus is
  the classic word insertion penalty: noisy audio makes Whisper add words (repeats, "y" and
  "the" out of nowhere), and the per-token normalization of asr_score does not charge for them;
- catalog_words: words inside a phrase of the store's gazetteer (brands, products, departments,
  colours, associates, from the inventory; nlu.baseline.Gazetteer.covered_words). This is
  contextual biasing towards the catalog the store actually has: "tide pods" covers two
  words, "tied pods" none. The gazetteer comes from the inventory at run time, so a product
  added to the store is favoured without retraining.

The three weights are tuned together on the dev split (`tune`), by a grid search for the
lowest corpus WER; ties go to the simplest setting (no bonus, then the smallest lambda).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rescoring.data import NBestExample
from rescoring.text import words

FEATURES = ("words", "catalog")


@dataclass(frozen=True)
class ListFeatures:
    """Counts per hypothesis of one n-best list: words [n] and catalog_words [n] (floats)."""

    words: np.ndarray
    catalog_words: np.ndarray


def list_features(texts: Sequence[str], gazetteer=None) -> ListFeatures:
    """Counts for `texts`; catalog_words are zero without a gazetteer (nlu.baseline.Gazetteer)."""
    return ListFeatures(
        words=np.asarray([len(words(t)) for t in texts], dtype=np.float32),
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


def choose(
    examples: list[NBestExample],
    scores: list[np.ndarray],
    features: list[ListFeatures],
    combination: Combination,
) -> list[int]:
    """Index of the best hypothesis of each list under `combination`."""
    return [
        int(np.argmax(combination.final(e.asr, s, f)))
        for e, s, f in zip(examples, scores, features, strict=True)
    ]


# Grids of the dev search. lambda: the grid of rescoring.data.tune_weight; bonuses in nats
# (asr_score is about -0.1 to -1 per token), ordered simplest first.
WEIGHTS = np.concatenate([[0.0], np.geomspace(1e-3, 10.0, 61)])
WORD_BONUSES = np.asarray([0.0] + [s * b for b in np.arange(0.025, 0.501, 0.025) for s in (-1, 1)])
CATALOG_BONUSES = np.arange(0.0, 0.501, 0.025)


def tune(
    examples: list[NBestExample],
    scores: list[np.ndarray],
    features: list[ListFeatures],
    use: Sequence[str] = FEATURES,
) -> tuple[Combination, float]:
    """(combination, dev WER %) with the lowest corpus WER over the grids; only the counts in
    `use` get a bonus. Vectorized: lists are padded to the longest with -inf scores."""
    n = max(len(e.texts) for e in examples)

    def padded(rows, fill):
        out = np.full((len(rows), n), fill, dtype=np.float64)
        for k, row in enumerate(rows):
            out[k, : len(row)] = row
        return out

    asr = padded([e.asr for e in examples], -np.inf)
    rescore = padded(scores, 0.0)
    word_count = padded([f.words for f in features], 0.0)
    catalog = padded([f.catalog_words for f in features], 0.0)
    errors = padded([e.errors for e in examples], 0.0)
    total_words = float(sum(e.ref_words for e in examples))
    rows = np.arange(len(examples))
    word_grid = WORD_BONUSES if "words" in use else np.zeros(1)
    catalog_grid = CATALOG_BONUSES if "catalog" in use else np.zeros(1)

    best: tuple[Combination, float] | None = None
    for catalog_bonus in catalog_grid:
        for word_bonus in word_grid:
            base = asr + word_bonus * word_count + catalog_bonus * catalog
            for weight in WEIGHTS:
                chosen = np.argmax(base + weight * rescore, axis=1)
                value = 100.0 * errors[rows, chosen].sum() / total_words
                if best is None or value < best[1] - 1e-9:
                    best = (
                        Combination(float(weight), float(word_bonus), float(catalog_bonus)),
                        value,
                    )
    assert best is not None
    return best
