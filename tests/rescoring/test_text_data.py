"""Word errors, normalization and lambda tuning: deterministic code, exact assertions."""

import json

import numpy as np
import pytest
from nbest_examples import nbest_example

from lab.rescoring.data import load_split, pick, tune_weight, wer
from lab.rescoring.text import dedup_key, edit_distance, normalize, word_errors


def test_normalize_case_punctuation_accents_numbers():
    assert normalize("¿Dónde están los Pañales, talla CUATRO?") == "donde estan los panales talla 4"
    assert normalize("Where's the Kellogg's cereal?") == "where's the kellogg's cereal"
    assert dedup_key("Tide Pods?") == dedup_key("tide pods")


def test_word_errors():
    assert edit_distance(["a", "b", "c"], ["a", "x", "c", "d"]) == 2
    assert word_errors("where are the tide pods", "Where are the tied pods?") == (1, 5)
    assert word_errors("talla cuatro", "talla 4") == (0, 2)


def test_pick_wer_and_tune_weight():
    examples = [nbest_example([-0.1, -0.2], [1, 0]), nbest_example([-0.1, -0.3], [0, 2])]
    assert pick(examples, None, 0.0) == [0, 0]
    assert wer(examples, [0, 0]) == pytest.approx(12.5)
    scores = [np.asarray([0.0, 1.0]), np.asarray([1.0, 0.0])]
    weight, value = tune_weight(examples, scores, grid=np.asarray([0.05, 0.5]))
    assert value == 0.0 and weight == 0.5
    # A second pass that never helps keeps lambda at 0.
    weight, _ = tune_weight(examples, [np.asarray([1.0, 0.0]), np.asarray([0.0, 1.0])])
    assert weight == 0.0


def test_load_split_sorts_by_first_pass(tmp_path):
    row = {
        "id": "dev-1",
        "reference": "tide pods",
        "language": "en",
        "voice": "pico-en-US",
        "hypotheses": [
            {"text": "tide pods", "asr_score": -0.5},
            {"text": "tied pods", "asr_score": -0.3},
        ],
    }
    path = tmp_path / "dev.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (example,) = load_split("dev", path)
    assert example.texts == ("tied pods", "tide pods")
    assert list(example.errors) == [1.0, 0.0] and example.oracle == 1
