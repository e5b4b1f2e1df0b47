"""The rule parser: the baseline the learned student must beat, and the fallback.

`BaselineParser(gazetteer).parse(text)` -> NluResult, with
- language: Spanish/English marker words and accents;
- intent: keyword rules (EN/ES), then "a product was named" -> find_product;
- entities: longest match of gazetteer phrases (brands, products, departments, colours,
  persons; plain lists handed in by the caller, since nlu never imports assistant) over
  accent- and case-folded tokens, plus regular expressions for sizes, dates and stores
  (digits or number words, EN and ES).
Offsets are character offsets into the original text, whatever its case, accents or
punctuation, because matching runs on tokens that keep their original spans. The word lists
and patterns live in nlu.lexicon, the phrase matching in nlu.gazetteer.
"""

from __future__ import annotations

import re

from nlu.gazetteer import Gazetteer
from nlu.lexicon import DATE_RE, EN_MARKERS, ES_MARKERS, INTENT_RULES, SIZE_RE, STORE_RE
from nlu.schema import Entity, NluResult
from textnorm import fold

_TOKEN_RE = re.compile(r"\w+(?:['’]\w+)*|&|\+")


def detect_language(text: str, hint: str | None = None) -> str:
    """ "es" or "en" from marker words and Spanish-only characters; the hint breaks ties."""
    if hint in ("en", "es"):
        return hint
    words = re.findall(r"\w+", text.lower())
    es = sum(w in ES_MARKERS for w in words) + 2 * len(re.findall(r"[ñ¿¡áéíóú]", text.lower()))
    en = sum(w in EN_MARKERS for w in words)
    return "es" if es > en else "en"


class BaselineParser:
    """Rules + gazetteer parser implementing nlu.schema.Parser."""

    def __init__(self, gazetteer: Gazetteer | None = None):
        self.gazetteer = gazetteer or Gazetteer()
        self.gazetteer.index()  # built once, up front

    def parse(self, text: str, language: str | None = None) -> NluResult:
        lang = detect_language(text, language)
        folded = " " + fold(text) + " "
        entities = self._entities(text)
        intent, score = self._intent(folded, entities)
        if intent in ("top_sellers", "associate_schedule"):
            entities = self._prefer_departments(text, entities)
        return NluResult(text, lang, intent, score, tuple(entities))

    def parse_batch(
        self, texts: list[str], languages: list[str | None] | None = None
    ) -> list[NluResult]:
        languages = languages or [None] * len(texts)
        return [self.parse(t, lang) for t, lang in zip(texts, languages, strict=True)]

    # -- intent ------------------------------------------------------------------------------

    @staticmethod
    def _intent(folded: str, entities: list[Entity]) -> tuple[str, float]:
        labels = {e.label for e in entities}
        for intent, keys in INTENT_RULES:
            if (
                intent == "associate_schedule"
                and "PERSON" in labels
                and not (labels & {"BRAND", "PRODUCT"})
            ):
                return intent, 0.9
            if any(k in folded for k in keys):
                if (
                    intent == "associate_schedule"
                    and labels & {"BRAND", "PRODUCT"}
                    and "PERSON" not in labels
                ):
                    continue  # "does it work", "work boots": a product question
                return intent, 0.85
        if labels & {"BRAND", "PRODUCT"}:
            return "find_product", 0.6
        return "out_of_scope", 0.6

    # -- entities ----------------------------------------------------------------------------

    def _entities(self, text: str) -> list[Entity]:
        found: list[Entity] = []
        for label, regex in (("STORE", STORE_RE), ("DATE", DATE_RE), ("SIZE", SIZE_RE)):
            for m in regex.finditer(text):
                if not any(_overlaps(m.start(), m.end(), e) for e in found):
                    found.append(Entity(label, m.group(0), m.start(), m.end(), 0.9))
        tokens = [(m.start(), m.end(), fold(m.group(0))) for m in _TOKEN_RE.finditer(text)]
        folded = [t[2] for t in tokens]
        i = 0
        while i < len(tokens):
            match = self.gazetteer.longest_match(folded, i)
            if match:
                n, label = match
                start, end = tokens[i][0], tokens[i + n - 1][1]
                if not any(_overlaps(start, end, e) for e in found):
                    found.append(Entity(label, text[start:end], start, end, 0.8))
                    i += n
                    continue
            i += 1
        return sorted(found, key=lambda e: e.start)

    def _prefer_departments(self, text: str, entities: list[Entity]) -> list[Entity]:
        """In top-seller and schedule questions a product word names a department ("cereal")."""
        out = []
        for e in entities:
            if e.label == "PRODUCT" and self._is_department(e.text):
                e = Entity("DEPARTMENT", e.text, e.start, e.end, e.score)
            out.append(e)
        return out

    def _is_department(self, phrase: str) -> bool:
        if not hasattr(self, "_departments"):
            self._departments = {fold(d) for d in self.gazetteer.departments}
        return fold(phrase) in self._departments


def _overlaps(start: int, end: int, entity: Entity) -> bool:
    return start < entity.end and entity.start < end
