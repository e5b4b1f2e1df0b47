"""Numbers and sizes as people say them, in English and Spanish.

Whisper writes numbers as digits or as words ("size 4", "size four", "talla cuatro"),
so every size gets both spellings. The number words come from the corpus generator's
`textnorm.numbers` (one implementation for the catalog, the linker and the corpus); this
module adds the Spanish feminine forms a catalog needs ("una pieza", "doscientas hojas").
"""

from __future__ import annotations

import re

from textnorm.numbers import en_words, es_words

_FEMININE = [
    (re.compile(r"\bveintiún\b"), "veintiuna"),
    (re.compile(r"\bun\b"), "una"),
    (re.compile(r"ientos\b"), "ientas"),
]


def words_en(n: int) -> str:
    """42 -> "forty two" (no hyphen: ASR output rarely has one)."""
    return "minus " + en_words(-n) if n < 0 else en_words(n)


def words_es(n: int, gender: str = "m") -> str:
    """42 -> "cuarenta y dos"; gender "m"/"f" picks un/una before a noun (1, 21, 31...),
    "n" keeps the bare numeral ("talla uno")."""
    if n < 0:
        return "menos " + words_es(-n, gender)
    word = es_words(n, apocope=gender != "n")
    if gender == "f":
        for pattern, replacement in _FEMININE:
            word = pattern.sub(replacement, word)
    return word


def spoken_numbers(n: int, language: str, gender: str = "m") -> list[str]:
    """The ways a number is written by ASR: digits first, then words."""
    words = words_en(n) if language == "en" else words_es(n, gender)
    return [str(n), words]
