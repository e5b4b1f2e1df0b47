"""Word errors (lab.wer, accents stripped, as the rescoring reports count them), normalization
and lambda tuning: deterministic code, exact assertions."""

import json

import numpy as np
import pytest
from nbest_examples import nbest_example

from lab.rescoring.data import load_split, pick, tune_weight, wer
from lab.wer import word_errors
from textnorm import normalize


def _errors(reference: str, hypothesis: str, language: str = "en") -> tuple[int, int]:
    counts = word_errors(reference, hypothesis, language, accents=False)
    return counts.errors, counts.reference_length


def test_normalize_case_punctuation_accents_numbers():
    assert (
        normalize("¿Dónde están los Pañales, talla CUATRO?", "es", accents=False)
        == normalize("donde estan los panales talla 4", "es")
        == "donde estan los panales talla cuatro"
    )
    assert normalize("Where's the Kellogg's cereal?", "en") == "wheres the kelloggs cereal"
    assert normalize("Tide Pods?", "en") == normalize("tide pods", "en")


def test_word_errors():
    assert _errors("a b c", "a x c d") == (2, 3)
    assert _errors("where are the tide pods", "Where are the tied pods?") == (1, 5)
    assert _errors("talla cuatro", "talla 4", "es") == (0, 2)


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
