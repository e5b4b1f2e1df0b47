"""The one fold, strip_accents and number-word table (textnorm): deterministic, so exact."""

from __future__ import annotations

import pytest

from textnorm import fold, fold_chars, normalize, strip_accents
from textnorm.numbers import ONES_TENS_HUNDREDS, spoken_numbers, spoken_words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tide Pods?", "tide pods"),
        ("¿Dónde están los Pañales?", "donde estan los pañales"),
        ("Kellogg's", "kelloggs"),
        ("Kellogg’s", "kelloggs"),
        ("Coca-Cola", "coca cola"),
        ("M&M's", "m and ms"),
        ("Dove+Men", "dove and men"),
        ("  PAÑALES   Huggies, Talla 4 ", "pañales huggies talla 4"),
    ],
)
def test_fold(text, expected):
    assert fold(text) == expected


def test_fold_without_enye_is_the_catalog_key():
    assert fold("La Costeña", keep_enye=False) == "la costena"
    assert fold("Tamaño familiar", keep_enye=False) == "tamano familiar"


def test_strip_accents_drops_enye_unless_kept():
    assert strip_accents("dónde") == "donde"
    assert strip_accents("pañales lácteos") == "panales lacteos"
    assert strip_accents("dónde están los pañales", keep_enye=True) == "donde estan los pañales"
    assert strip_accents("NIÑO Ñandú", keep_enye=True) == "NIÑO Ñandu"
    assert strip_accents("ni\u00f1o") == strip_accents("nin\u0303o") == "nino"


def test_fold_chars_keeps_offsets():
    text = "¿Dónde están los Pañales?"
    folded = fold_chars(text)
    assert folded == "¿donde estan los panales?"
    assert len(folded) == len(text)
    start = folded.index("panales")
    assert text[start : start + len("panales")] == "Pañales"


def test_normalize_and_fold_agree_on_words():
    """normalize (WER) also spells digits and strips ñ when asked; on plain words they agree."""
    assert normalize("Tide Pods?", "en") == fold("Tide Pods?")
    assert normalize("Kellogg's Coca-Cola", "en") == fold("Kellogg's Coca-Cola")


@pytest.mark.parametrize(
    ("n", "language", "gender", "expected"),
    [
        (42, "en", "m", "forty two"),
        (-3, "en", "m", "minus three"),
        (1, "es", "m", "un"),
        (1, "es", "f", "una"),
        (1, "es", "n", "uno"),
        (21, "es", "m", "veintiún"),
        (21, "es", "f", "veintiuna"),
        (21, "es", "n", "veintiuno"),
        (31, "es", "f", "treinta y una"),
        (200, "es", "f", "doscientas"),
        (500, "es", "m", "quinientos"),
        (-2, "es", "m", "menos dos"),
    ],
)
def test_spoken_words(n, language, gender, expected):
    assert spoken_words(n, language, gender) == expected


def test_spoken_numbers_give_digits_then_words():
    assert spoken_numbers(4, "en") == ["4", "four"]
    assert spoken_numbers(21, "es", "f") == ["21", "veintiuna"]


def test_the_table_holds_both_languages():
    assert {"twenty", "ninety", "veintiuno", "dieciséis", "novecientos"} <= set(ONES_TENS_HUNDREDS)
