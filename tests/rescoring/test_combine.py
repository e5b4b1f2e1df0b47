"""The final-score combination: counts per hypothesis, the formula, and the dev grid search."""

import numpy as np
import pytest
from nbest_examples import nbest_example

from lab.rescoring.tune import choose, tune
from nlu.gazetteer import Gazetteer
from rescoring.combine import Combination, ListFeatures, list_features


def test_gazetteer_covers_catalog_words_longest_first():
    g = Gazetteer.from_lists(brands=["Tide"], products=["tide pods", "pods", "pañales"])
    assert g.covered_words("where are the Tide Pods?") == 2
    assert g.covered_words("where are the tied pods") == 1
    assert g.covered_words("¿dónde están los PAÑALES?") == 1
    assert g.covered_words("") == 0


def test_list_features_counts_normalized_words():
    g = Gazetteer.from_lists(products=["tide pods"])
    f = list_features(["Where are the Tide Pods?", "where are tied pods"], g)
    assert f.words.tolist() == [5, 4]
    assert f.catalog_words.tolist() == [2, 0]
    assert list_features(["tide pods"]).catalog_words.tolist() == [0]  # no gazetteer


def test_combination_formula_and_config_round_trip():
    c = Combination(weight=0.5, word_bonus=-0.1, catalog_bonus=0.2)
    f = ListFeatures(words=np.array([3.0, 4.0]), catalog_words=np.array([0.0, 2.0]))
    final = c.final(np.array([-1.0, -1.2]), np.array([2.0, 1.0]), f)
    np.testing.assert_allclose(final, [-1.0 + 1.0 - 0.3, -1.2 + 0.5 - 0.4 + 0.4])
    assert Combination.from_config(c.to_config()) == c
    assert Combination.from_config({"lambda": 0.3}) == Combination(weight=0.3)  # old configs
    assert c.features == ("words", "catalog") and Combination().features == ()


def _lists():
    """Hypothesis 0 of each list has one word too many and is wrong; 1 is right. The first pass
    prefers 0; only a word penalty (or the second pass, where it prefers 1) picks 1."""
    examples = [nbest_example([-0.1, -0.2], [1, 0], id=str(k)) for k in range(6)]
    features = [ListFeatures(np.array([5.0, 4.0]), np.array([0.0, 0.0])) for _ in examples]
    return examples, features


def test_tune_finds_the_word_penalty_and_prefers_no_bonus_on_ties():
    examples, features = _lists()
    flat = [np.zeros(2, dtype=np.float32) for _ in examples]
    combination, dev_wer = tune(examples, flat, features)
    assert dev_wer == 0.0
    assert combination.word_bonus < -0.1 + 1e-9 and combination.catalog_bonus == 0.0
    # Words not allowed: nothing can fix the lists.
    combination, dev_wer = tune(examples, flat, features, use=())
    assert combination == Combination(weight=0.0) and dev_wer == pytest.approx(25.0)
    # A second pass that knows better: lambda alone does it, no bonus needed.
    helpful = [np.array([0.0, 1.0], dtype=np.float32) for _ in examples]
    combination, dev_wer = tune(examples, helpful, features)
    assert dev_wer == 0.0 and combination.word_bonus == 0.0 and combination.weight > 0.1
    assert choose(examples, helpful, features, combination) == [1] * len(examples)
