"""Text normalization, word errors and de-duplication keys for n-best lists (EN/ES).

Whisper writes "4" where the reference says "cuatro" and "Tide Pods?" where it says
"tide pods": word errors are counted after lower-casing, removing punctuation (accents are
removed too: the NLU corpus writes queries as people type them, often without accents, and
Whisper restores them) and writing small numbers as digits.
"""

from __future__ import annotations

import re
import unicodedata

_NUMBERS = {
    "en": "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen twenty",
    "es": "cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce trece catorce "
    "quince dieciseis diecisiete dieciocho diecinueve veinte",
}
NUMBER_WORDS: dict[str, str] = {
    word: str(i) for words in _NUMBERS.values() for i, word in enumerate(words.split())
}
# Apostrophes inside words stay ("kellogg's"); every other punctuation mark goes.
_PUNCT = re.compile(r"[^\w\s']|(?<!\w)'|'(?!\w)")


def normalize(text: str) -> str:
    """Lower-case, accents removed, punctuation removed, number words 0-20 as digits, single spaces."""
    text = unicodedata.normalize("NFD", text.lower().replace("’", "'"))
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")  # strip accents
    text = _PUNCT.sub(" ", text)
    words = [NUMBER_WORDS.get(w, w) for w in text.split()]
    return " ".join(words)


def words(text: str) -> list[str]:
    return normalize(text).split()


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Levenshtein distance between two word lists (substitutions, insertions, deletions)."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word errors, reference words) after normalization."""
    ref = words(reference)
    return edit_distance(ref, words(hypothesis)), len(ref)


def dedup_key(text: str) -> str:
    """Hypotheses with the same key differ only in case or punctuation and are merged."""
    return normalize(text)
