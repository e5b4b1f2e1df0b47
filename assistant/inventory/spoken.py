"""Numbers and sizes as people say them, in English and Spanish.

Whisper writes numbers as digits or as words ("size 4", "size four", "talla cuatro"),
so every size gets both spellings. Integers 0-999 999 are enough for a store catalog.
"""

from __future__ import annotations

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
    "veinte",
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


def words_en(n: int) -> str:
    """42 -> "forty two" (no hyphen: ASR output rarely has one)."""
    if n < 0:
        return "minus " + words_en(-n)
    if n < 20:
        return _EN_ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _EN_TENS[tens] + ("" if ones == 0 else " " + _EN_ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _EN_ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + words_en(rest))
    thousands, rest = divmod(n, 1000)
    return words_en(thousands) + " thousand" + ("" if rest == 0 else " " + words_en(rest))


def words_es(n: int, gender: str = "m") -> str:
    """42 -> "cuarenta y dos"; gender "m"/"f" picks un/una before a noun (1, 21, 31...),
    "n" keeps the bare numeral ("talla uno")."""
    if n < 0:
        return "menos " + words_es(-n, gender)
    if n < 30:
        word = _ES_ONES[n]
        if word.endswith("uno") and gender != "n":
            # "un galón", "una pieza", "veintiún litros"
            word = word[:-3] + ("una" if gender == "f" else ("ún" if n == 21 else "un"))
        return word
    if n < 100:
        tens, ones = divmod(n, 10)
        return _ES_TENS[tens] + ("" if ones == 0 else " y " + words_es(ones, gender))
    if n == 100:
        return "cien"
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        head = _ES_HUNDREDS[hundreds]
        if gender == "f" and hundreds > 1:
            head = head.replace("ientos", "ientas")
        return head + ("" if rest == 0 else " " + words_es(rest, gender))
    thousands, rest = divmod(n, 1000)
    head = "mil" if thousands == 1 else words_es(thousands, "m") + " mil"
    return head + ("" if rest == 0 else " " + words_es(rest, gender))


def spoken_numbers(n: int, language: str, gender: str = "m") -> list[str]:
    """The ways a number is written by ASR: digits first, then words."""
    words = words_en(n) if language == "en" else words_es(n, gender)
    return [str(n), words]
