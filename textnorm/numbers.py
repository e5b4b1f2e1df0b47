"""Integers as spoken English and Spanish words, the way Whisper may transcribe them.

Covers 0..999,999, enough for sizes, counts and store numbers. Spanish distinguishes the
apocopated "un" before a noun ("un litro", "veintiún") from the counting form "uno", and
`spoken_words` adds the feminine forms a catalog needs ("una pieza", "veintiuna hojas",
"doscientas hojas"). Whisper writes numbers as digits or as words ("size 4", "size four",
"talla cuatro"), so `spoken_numbers` gives both spellings.
"""

from __future__ import annotations

import re

_EN_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_EN_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]

_ES_ONES = [
    "cero",
    "uno",
    "dos",
    "tres",
    "cuatro",
    "cinco",
    "seis",
    "siete",
    "ocho",
    "nueve",
    "diez",
    "once",
    "doce",
    "trece",
    "catorce",
    "quince",
    "dieciséis",
    "diecisiete",
    "dieciocho",
    "diecinueve",
    "veinte",
    "veintiuno",
    "veintidós",
    "veintitrés",
    "veinticuatro",
    "veinticinco",
    "veintiséis",
    "veintisiete",
    "veintiocho",
    "veintinueve",
]
_ES_TENS = [
    "_",
    "_",
    "_",
    "treinta",
    "cuarenta",
    "cincuenta",
    "sesenta",
    "setenta",
    "ochenta",
    "noventa",
]
_ES_HUNDREDS = [
    "_",
    "ciento",
    "doscientos",
    "trescientos",
    "cuatrocientos",
    "quinientos",
    "seiscientos",
    "setecientos",
    "ochocientos",
    "novecientos",
]


# Every word the tables above hold, for parsers that must recognise spoken numbers.
ONES_TENS_HUNDREDS = _EN_ONES + _EN_TENS[2:] + _ES_ONES + _ES_TENS[3:] + _ES_HUNDREDS[1:]


def en_words(n: int) -> str:
    """English words for 0 <= n < 1,000,000 ("fifty five", "one hundred twenty")."""
    if n < 0 or n >= 1_000_000:
        raise ValueError(f"out of range: {n}")
    if n < 20:
        return _EN_ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _EN_TENS[tens] + (f" {_EN_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_EN_ONES[hundreds]} hundred" + (f" {en_words(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    return f"{en_words(thousands)} thousand" + (f" {en_words(rest)}" if rest else "")


def es_words(n: int, apocope: bool = False) -> str:
    """Spanish words for 0 <= n < 1,000,000; `apocope` gives "un"/"veintiún" before a noun."""
    if n < 0 or n >= 1_000_000:
        raise ValueError(f"out of range: {n}")
    if n < 30:
        word = _ES_ONES[n]
    elif n < 100:
        tens, ones = divmod(n, 10)
        word = _ES_TENS[tens] + (f" y {_ES_ONES[ones]}" if ones else "")
    elif n == 100:
        word = "cien"
    elif n < 1000:
        hundreds, rest = divmod(n, 100)
        word = _ES_HUNDREDS[hundreds] + (f" {es_words(rest, apocope)}" if rest else "")
        return word
    else:
        thousands, rest = divmod(n, 1000)
        head = "mil" if thousands == 1 else f"{es_words(thousands, apocope=True)} mil"
        return head + (f" {es_words(rest, apocope)}" if rest else "")
    if apocope:
        if word.endswith("veintiuno"):
            word = word[: -len("veintiuno")] + "veintiún"
        elif word.endswith("uno"):
            word = word[:-1]
    return word


def words(n: int, language: str, apocope: bool = False) -> str:
    """`en_words` or `es_words` by language code ("en"/"es")."""
    return en_words(n) if language == "en" else es_words(n, apocope)


def decimal_words(value: str, language: str) -> str:
    """A decimal string like "1.5" as "one point five" / "uno punto cinco"."""
    whole, _, frac = value.partition(".")
    point = " point " if language == "en" else " punto "
    head = words(int(whole or 0), language)
    if not frac:
        return head
    return head + point + " ".join(words(int(d), language) for d in frac)


_FEMININE = [
    (re.compile(r"\bveintiún\b"), "veintiuna"),
    (re.compile(r"\bun\b"), "una"),
    (re.compile(r"ientos\b"), "ientas"),
]


def spoken_words(n: int, language: str, gender: str = "m") -> str:
    """n as said before a noun: 42 -> "forty two" / "cuarenta y dos" (no hyphen: ASR output
    rarely has one); negatives as "minus" / "menos". Spanish `gender` "m" / "f" picks
    un / una (1, 21, 31...; "doscientas" too), "n" keeps the bare numeral ("talla uno")."""
    if language == "en":
        return "minus " + en_words(-n) if n < 0 else en_words(n)
    if n < 0:
        return "menos " + spoken_words(-n, language, gender)
    word = es_words(n, apocope=gender != "n")
    if gender == "f":
        for pattern, replacement in _FEMININE:
            word = pattern.sub(replacement, word)
    return word


def spoken_numbers(n: int, language: str, gender: str = "m") -> list[str]:
    """The ways ASR writes a number: digits first, then `spoken_words`."""
    return [str(n), spoken_words(n, language, gender)]
