"""WER/CER and normalization: deterministic, so exact."""

from __future__ import annotations

import pytest

from lab.wer import cer, char_errors, oracle, oracle_wer, wer, word_errors
from textnorm import normalize, strip_accents


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("Where can I find Tide Pods?", "en", "where can i find tide pods"),
        (
            "Is the Samsung 55-inch TV at store 12?",
            "en",
            "is the samsung fifty five inch tv at store twelve",
        ),
        ("Kellogg's Frosted Flakes", "en", "kelloggs frosted flakes"),
        ("Coca-Cola, 2,000!", "en", "coca cola two thousand"),
        ("¿Cuántos pañales talla 4 quedan?", "es", "cuántos pañales talla cuatro quedan"),
        ("jugo Jumex de 1 litro", "es", "jugo jumex de uno litro"),
        ("Precio: 55 pesos", "es", "precio cincuenta y cinco pesos"),
    ],
)
def test_normalize(text, language, expected):
    assert normalize(text, language) == expected


def test_accents_stripped_separately():
    assert normalize("¿Dónde están los pañales?", "es", accents=False) == "donde estan los panales"
    assert strip_accents("lácteos electrónica ñ") == "lacteos electronica n"


def test_digits_and_words_compare_equal():
    assert wer(["size four"], ["Size 4."], "en") == 0.0
    assert wer(["talla diez"], ["talla 10"], "es") == 0.0


def test_word_errors_counts():
    counts = word_errors("where can I find tide pods", "where can find tidepods please", "en")
    # "I" deleted, "tide pods" -> "tidepods please": one substitution and one more edit
    assert counts.reference_length == 6
    assert counts.errors == 3
    assert wer(["where can I find tide pods"], ["where can find tidepods please"], "en") == 0.5


def test_corpus_wer_weights_by_length():
    refs = ["a b c d", "e f"]
    hyps = ["a b c d", "x y"]
    assert wer(refs, hyps, "en") == pytest.approx(2 / 6)


def test_accented_cer():
    assert cer(["dónde"], ["donde"], "es") == pytest.approx(0.2)
    assert cer(["dónde"], ["donde"], "es", accents=False) == 0.0
    assert char_errors("abc", "abd", "en").substitutions == 1


def test_empty_sides():
    assert wer(["hola"], [""], "es") == 1.0
    assert word_errors("", "hola", "es").insertions == 1
    assert wer([""], [""], "es") == 0.0


def test_oracle_picks_fewest_errors_earliest_on_ties():
    index, counts = oracle(
        "where can I find Tide Pods",
        ["where can i find tidepods", "where can I find tide pods?", "Where can I find Tide Pods"],
        "en",
    )
    assert index == 1 and counts.errors == 0
    assert oracle_wer(
        ["where can I find Tide Pods", "hola"],
        [["where can i find tidepods"], ["ola", "hola"]],
        ["en", "es"],
    ) == pytest.approx(2 / 7)


def test_rejects_unknown_language():
    with pytest.raises(ValueError):
        normalize("bonjour", "fr")
