"""Tuning the final-score weights of rescoring.combine on dev n-best lists, and choosing with them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lab.rescoring.data import NBestExample
from rescoring.combine import FEATURES, Combination, ListFeatures


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


# Grids of the dev search. lambda: the grid of lab.rescoring.data.tune_weight; bonuses in nats
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
