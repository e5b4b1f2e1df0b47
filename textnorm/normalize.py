"""The one text normalizer of the project: case, punctuation, digits as number words, accents.

Used by the first pass (asr.nbest.reading_key merges beams by it), by WER (lab.wer) and by
every report that counts word errors, so a "word error" means the same thing everywhere.
"""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words

from textnorm.fold import strip_accents

SUPPORTED = ("en", "es")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_APOSTROPHES = re.compile(r"['’`´]")


def _number_to_words(match: re.Match, language: str) -> str:
    token = match.group(0)
    # "1,000" / "1.000" as thousands (queries have no decimals worth keeping apart).
    digits = re.sub(r"[.,]", "", token)
    if len(digits) > 12:
        return token
    return " " + num2words(int(digits), lang=language) + " "


def normalize(text: str, language: str, accents: bool = True) -> str:
    """Lower-case, digits spelled out in `language`, punctuation removed (apostrophes joined:
    "Kellogg's" -> "kelloggs"; hyphens split: "Coca-Cola" -> "coca cola"), spaces collapsed;
    accents stripped when `accents` is False."""
    if language not in SUPPORTED:
        raise ValueError(f"language must be one of {SUPPORTED}, got {language!r}")
    text = unicodedata.normalize("NFC", text).casefold()
    text = _APOSTROPHES.sub("", text)
    text = _NUMBER.sub(lambda m: _number_to_words(m, language), text)
    text = "".join(
        " " if unicodedata.category(ch)[0] in "PSZC" and not ch.isspace() else ch for ch in text
    )
    # num2words writes "fifty-five" / "cincuenta y cinco": hyphens become spaces above.
    if not accents:
        text = strip_accents(text)
    return re.sub(r"\s+", " ", text).strip()
