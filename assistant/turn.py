"""Turn completion: is what has been heard so far a complete query? (adaptive endpointing)

The streaming policy (asr.streaming) ends an utterance after a short silence when the text
heard so far is a complete query, after a long one when it is not, and after the usual one
when nobody can tell. This module gives the verdict, from the NLU student's parse (~2 ms):

    judge = TurnJudge(parser, min_confidence=0.8)
    judge("where are the tide pods", "en")  -> True   (find_product with its product)
    judge("where are the", "en")            -> False  (a trailing function word)
    judge("what's the weather", "en")       -> None   (out of scope: cannot tell)

Rules, in order: no words -> None; a trailing function word ("the", "de", "size", "talla")
-> False; a trailing number (a number may be being spoken: "cuatrocientos ... treinta
gramos") -> None; otherwise the parse: an in-scope intent at `min_confidence` or more with
one of its required entities -> True, the same intent without them -> False, anything else
-> None.
"""

from __future__ import annotations

import logging

from textnorm import normalize
from textnorm.numbers import ONES_TENS_HUNDREDS

log = logging.getLogger(__name__)

# Words a query does not end on: articles, prepositions, conjunctions, question openers and
# the words that announce a size or a count.
_EN_TRAILING = (
    "a an the of for in on at to with and or some any size my me your is are do does "
    "where which what how many much who when from by about can could"
)
_ES_TRAILING = (
    "un una unos unas el la los las lo de del al a en para por con y o que qué talla "
    "tamaño hay dónde donde cuál cuántos cuántas cuánto cuánta quién cuándo mi me su "
    "tienes tenemos"
)
TRAILING = {"en": frozenset(_EN_TRAILING.split()), "es": frozenset(_ES_TRAILING.split())}
# Any of these entities makes the intent's query complete (ANNOTATION.md's labels).
REQUIRED = {
    "find_product": ("PRODUCT", "BRAND"),
    "check_stock": ("PRODUCT", "BRAND"),
    "top_sellers": ("DEPARTMENT", "DATE", "PRODUCT", "BRAND"),
    "associate_schedule": ("PERSON", "DEPARTMENT", "DATE"),
}
# normalize() spells digits out, so a trailing number is always one of these words.
_NUMBER_WORDS = set(ONES_TENS_HUNDREDS) | {"hundred", "thousand", "mil", "cien", "ciento"}


def judge_nlu(nlu, min_confidence: float) -> bool | None:
    """Verdict from a parse (nlu.schema.NluResult) alone."""
    required = REQUIRED.get(nlu.intent)
    if required is None or nlu.intent_score < min_confidence:
        return None
    return any(e.label in required for e in nlu.entities)


def trailing_verdict(text: str, language: str) -> tuple[bool, bool | None]:
    """(decided, verdict) from the last word: a function word -> False, a number -> None."""
    words = normalize(text, language).split()
    if not words:
        return True, None
    last = words[-1]
    if last in TRAILING.get(language, TRAILING["en"]):
        return True, False
    if last in _NUMBER_WORDS:
        return True, None
    return False, None


class TurnJudge:
    """asr.streaming.TurnJudge over a parser: (text, language) -> True / False / None."""

    def __init__(self, parser, min_confidence: float = 0.8) -> None:
        self.parser = parser
        self.min_confidence = min_confidence

    def __call__(self, text: str, language: str) -> bool | None:
        decided, verdict = trailing_verdict(text, language)
        if decided:
            return verdict
        try:
            return judge_nlu(self.parser.parse(text, language), self.min_confidence)
        except Exception:  # no verdict is a fine answer: the default endpoint applies
            log.exception("turn judge failed on %r", text)
            return None

    def of_result(self, text: str, language: str, nlu) -> bool | None:
        """The verdict on a final's text when it was parsed already (a speculative final)."""
        decided, verdict = trailing_verdict(text, language)
        if decided or nlu is None:
            return verdict
        return judge_nlu(nlu, self.min_confidence)
