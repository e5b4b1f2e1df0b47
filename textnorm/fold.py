"""Matching keys: accents and case folded away, so that "Dónde" finds "donde".

- `strip_accents(text, keep_enye=False)`: diacritics removed; ñ removed too unless kept
  (a plain keyboard or ASR may write "panales"; the NLU corpus keeps ñ when it drops accents).
- `fold(text)`: the key every gazetteer, alias and linker lookup compares: lower case, no
  accents (ñ kept by default), no apostrophes ("Kellogg's" -> "kelloggs"), "&" and "+" read
  as "and", every other punctuation mark a space ("Coca-Cola" -> "coca cola").
- `fold_chars(text)`: lower case without accents, one character per character, for offsets
  found in the folded text that must hold in the original.
"""

from __future__ import annotations

import re
import unicodedata

_ENYE = re.compile(r"([ñÑ])")
_APOSTROPHES = re.compile(r"['’`´]")
_NON_WORD = re.compile(r"[^\w]+|_")


def _drop_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize(
        "NFC", "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    )


def strip_accents(text: str, keep_enye: bool = False) -> str:
    """ "pañales lácteos" -> "panales lacteos"; with keep_enye, "dónde están los pañales" ->
    "donde estan los pañales"."""
    if not keep_enye:
        return _drop_marks(text)
    parts = _ENYE.split(unicodedata.normalize("NFC", text))
    return "".join(part if i % 2 else _drop_marks(part) for i, part in enumerate(parts))


def fold(text: str, keep_enye: bool = True) -> str:
    """ "¿Dónde están los Pañales?" -> "donde estan los pañales"; "M&M's" -> "m and ms";
    keep_enye=False folds ñ to n too (the catalog's slugs: "La Costeña" -> "la costena")."""
    text = strip_accents(unicodedata.normalize("NFKC", text.lower()), keep_enye)
    text = _APOSTROPHES.sub("", text.replace("&", " and ").replace("+", " and "))
    return " ".join(_NON_WORD.sub(" ", text).split())


def fold_chars(text: str) -> str:
    """ "Pañales Dónde" -> "panales donde": lower case, each character's base letter (ñ -> n),
    so that a match at [i, j) of the result is the span [i, j) of the lower-cased input."""
    return "".join(unicodedata.normalize("NFD", ch)[0] for ch in text.lower())
