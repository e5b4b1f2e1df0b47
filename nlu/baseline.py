"""Gazetteer and rule parser: the baseline the learned student must beat, and the fallback.

`BaselineParser(gazetteer).parse(text)` -> NluResult, with
- language: Spanish/English marker words and accents;
- intent: keyword rules (EN/ES), then "a product was named" -> find_product;
- entities: longest match of gazetteer phrases (brands, products, departments, colours,
  persons; plain lists handed in by the caller, since nlu never imports assistant) over
  accent- and case-folded tokens, plus regular expressions for sizes, dates and stores
  (digits or number words, EN and ES).
Offsets are character offsets into the original text, whatever its case, accents or
punctuation, because matching runs on tokens that keep their original spans.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from nlu.schema import Entity, NluResult
from textnorm import numbers as _numbers

# Surface forms too common to be entity names on their own ("on" as a mishearing of onn.,
# "all" the detergent): a gazetteer phrase of one such token is ignored.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "on",
        "in",
        "at",
        "of",
        "to",
        "for",
        "and",
        "or",
        "is",
        "are",
        "do",
        "does",
        "did",
        "we",
        "you",
        "i",
        "it",
        "its",
        "my",
        "me",
        "our",
        "us",
        "be",
        "have",
        "has",
        "had",
        "all",
        "any",
        "some",
        "can",
        "get",
        "where",
        "what",
        "who",
        "which",
        "how",
        "many",
        "much",
        "when",
        "why",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "with",
        "from",
        "by",
        "up",
        "out",
        "off",
        "not",
        "no",
        "yes",
        "please",
        "thanks",
        "one",
        "two",
        "game",
        "tie",
        "don",
        "del",
        "de",
        "la",
        "las",
        "el",
        "los",
        "un",
        "una",
        "uno",
        "en",
        "y",
        "o",
        "que",
        "por",
        "para",
        "con",
        "sin",
        "se",
        "su",
        "sus",
        "mi",
        "es",
        "son",
        "del",
        "al",
        "lo",
        "le",
        "les",
        "nos",
        "hay",
        "como",
        "cual",
        "donde",
        "quien",
        "cuando",
        "mas",
        "más",
        "muy",
        "ya",
        "si",
        "sí",
        "bien",
        "bueno",
        "hola",
        "post",
        "joy",
        "glad",
        "premium",
        "secret",
        "action",
        "moderna",
        "nor",
        "boss",
        "caro",
        "centro",
        "bolt",
        "alive",
        "clarity",
        "craft",
        "bear",
        "bare",
        "buyer",
        "took",
        "tuck",
        "loves",
        "dub",
        "acts",
        "lace",
        "scot",
        "cielo",
        "rome",
        "sest",
        "bits",
        "beets",
        "cat",
        "chic",
        "duct",
        "olé",
        "ax",
        "bounds",
        "nam",
        "nan",
        "del",
        "vale",
        "crust",
        "cress",
        "dov",
        "don't",
        "ciel",
        "roma",
    ]
)

# Number words a size or count may be spoken with: the corpus generator's tables (so the two
# agree), their accentless spellings, and the words they do not list.
_NUM_WORDS = _numbers.ONES_TENS_HUNDREDS + [
    "hundred",
    "thousand",
    "half",
    "a",
    "cien",
    "mil",
    "un",
    "una",
    "veintiún",
    "medio",
    "media",
]
_NUM_WORDS += [
    "".join(c for c in unicodedata.normalize("NFD", w) if not unicodedata.combining(c))
    for w in _NUM_WORDS
]
_WORD = "(?:" + "|".join(sorted(set(_NUM_WORDS), key=len, reverse=True)) + ")"
NUMBER = rf"(?:\d+(?:[.,]\d+)?|{_WORD}(?:(?:\s+|-)(?:and\s+|y\s+)?{_WORD})*)"
_UNITS = (
    r"gallons?|gal|galones|galón|galon|liters?|litres?|litros?|l|ml|milliliters?|mililitros|"
    r"fl\.?\s?oz|ounces?|oz|onzas?|pounds?|lbs?|libras?|kilos?|kg|kilogramos?|grams?|gramos?|g|"
    r"count|ct|pack|pk|packs|piezas?|pzas?|rolls?|rollos?|inch(?:es)?|in|pulgadas?|"
    r"feet|foot|ft|pies|yards?|yardas?|volts?|voltios|v|watts?|w|gb|gigs|gigas|gigabytes|"
    r"quarts?|qt|cuartos?|sheets|hojas|pieces|mg|miligramos|latas|cans?"
)
_SIZE_PATTERNS = [
    rf"(?:size|talla|número|numero|etapa|stage|group|grupo)\s+{NUMBER}",
    rf"(?:paquete|caja|pack)\s+de\s+{NUMBER}",
    rf"{NUMBER}[\s-]?(?:{_UNITS})\b",
    r"family\s+size|party\s+size|tamaño\s+familiar|tamaño\s+fiesta|half\s+(?:a\s+)?gallon|medio\s+galón|medio\s+galon",
    r"(?:size\s+|talla\s+)?(?:extra\s+large|extra\s+grande|x+l|small|medium|large|chica|mediana|grande)(?=\s|$|[?.!,])",
    r"double\s+a|triple\s+a|doble\s+a|aaa|aa",
]
SIZE_RE = re.compile(r"(?<![\w])(?:" + "|".join(_SIZE_PATTERNS) + r")(?![\w])", re.IGNORECASE)
_DAYS = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday|lunes|martes|miércoles|miercoles|jueves|viernes|sábado|sabado|domingo"
DATE_RE = re.compile(
    r"(?<![\w])(?:"
    r"(?:this|last|next|past)\s+(?:week(?:end)?|month|year|" + _DAYS + r")|"
    r"(?:esta|la)\s+semana(?:\s+pasada|\s+que\s+viene)?|(?:este|el)\s+(?:mes|fin\s+de\s+semana)(?:\s+pasado)?|"
    r"(?:la\s+)?semana\s+pasada|el\s+mes\s+pasado|pasado\s+mañana|pasado\s+manana|"
    r"day\s+after\s+tomorrow|(?:so\s+far\s+)?today|tonight|tomorrow|yesterday|hoy|ayer|mañana|manana|"
    r"(?:on\s+|el\s+|este\s+|next\s+)?(?:" + _DAYS + r")"
    r")(?![\w])",
    re.IGNORECASE,
)
STORE_RE = re.compile(
    rf"(?<![\w])(?:store|tienda|sucursal|club)\s*(?:number\s+|número\s+|numero\s+|no\.?\s*|#\s*)?{NUMBER}(?![\w])",
    re.IGNORECASE,
)
_TOKEN_RE = re.compile(r"\w+(?:['’]\w+)*|&|\+")

# keyword rules per intent, on folded text (lowercase, no accents); checked in this order
INTENT_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "associate_schedule",
        (
            "work",
            "working",
            "works",
            "shift",
            "schedule",
            "on duty",
            "clock in",
            "clocks in",
            "off today",
            "day off",
            "trabaja",
            "trabajan",
            "trabajando",
            "turno",
            "horario",
            "a que hora entra",
            "a que hora sale",
            "entra ",
            "descansa",
            "who is in",
            "who's in",
            "quien esta en",
            "quien viene",
        ),
    ),
    (
        "top_sellers",
        (
            "top sell",
            "best sell",
            "sold best",
            "sold the most",
            "selling best",
            "sells best",
            "most popular",
            "top products",
            "top items",
            "bestseller",
            "best seller",
            "sold most",
            "mas vendid",
            "mas se vend",
            "mejor vendid",
            "se vende mas",
            "se vendio mas",
            "vendio mas",
            "mas populares",
            "lo mas vendido",
            "top ventas",
            "mas ventas",
        ),
    ),
    (
        "check_stock",
        (
            "how many",
            "in stock",
            "on hand",
            "do we have",
            "do you have",
            "have any",
            "stock",
            "inventory",
            "any left",
            "out of",
            "on order",
            "sold out",
            "how much",
            "available",
            "cuantos",
            "cuantas",
            "tenemos",
            "hay ",
            "existencia",
            "inventario",
            "bodega",
            "quedan",
            "queda ",
            "disponible",
            "agotad",
            "en pedido",
            "cuanto",
        ),
    ),
    (
        "find_product",
        (
            "where",
            "which aisle",
            "what aisle",
            "find",
            "locate",
            "aisle",
            "looking for",
            "located",
            "show me",
            "donde",
            "pasillo",
            "busco",
            "buscando",
            "ubicacion",
            "encuentro",
            "encuentra",
            "encontrar",
            "ubica",
            "localiz",
            "anaquel",
        ),
    ),
)
_ES_MARKERS = frozenset(
    [
        "donde",
        "dónde",
        "el",
        "la",
        "los",
        "las",
        "de",
        "del",
        "en",
        "que",
        "qué",
        "está",
        "esta",
        "están",
        "estan",
        "tenemos",
        "hay",
        "cuántos",
        "cuantos",
        "cuántas",
        "cuantas",
        "quién",
        "quien",
        "pasillo",
        "busco",
        "por",
        "favor",
        "tienda",
        "hoy",
        "mañana",
        "ayer",
        "semana",
        "trabaja",
        "lo",
        "más",
        "mas",
        "vendido",
        "para",
        "con",
        "una",
        "unos",
        "unas",
        "es",
        "son",
        "tiene",
        "oye",
        "este",
        "oiga",
        "necesito",
        "quiero",
        "me",
        "puedes",
        "dime",
    ]
)
# retail words only Spanish queries use ("playera roja talla grande" has no function word)
_ES_MARKERS |= frozenset(
    [
        "talla",
        "playera",
        "playeras",
        "pañales",
        "leche",
        "galletas",
        "jabón",
        "jabon",
        "sección",
        "seccion",
        "existencia",
        "bodega",
        "hola",
        "gracias",
        "cuánto",
        "cuanto",
        "dame",
    ]
)
_EN_MARKERS = frozenset(
    [
        "where",
        "the",
        "is",
        "are",
        "do",
        "does",
        "we",
        "have",
        "how",
        "many",
        "what",
        "who",
        "which",
        "find",
        "in",
        "aisle",
        "please",
        "store",
        "today",
        "tomorrow",
        "week",
        "works",
        "working",
        "sold",
        "best",
        "any",
        "can",
        "you",
        "i",
        "need",
        "looking",
        "for",
        "of",
        "and",
        "to",
        "it",
        "our",
        "show",
        "me",
        "tell",
    ]
)
# a gazetteer phrase that fits several labels: which one wins (lower first)
LABEL_PRIORITY = {"BRAND": 0, "PRODUCT": 1, "PERSON": 2, "DEPARTMENT": 3, "COLOR": 4}


def fold(text: str) -> str:
    """Lowercase without accents or apostrophes; & and + read as "and". Keeps ñ."""
    text = text.lower().replace("ñ", "\0")
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.replace("\0", "ñ").replace("&", " and ").replace("+", " and ")
    text = re.sub(r"['’`´]", "", text)
    return " ".join(re.sub(r"[^\w]+|_", " ", text).split())


@dataclass(frozen=True)
class Gazetteer:
    """Plain lists of surface forms per label (the catalog's names, aliases and mishearings)."""

    brands: tuple[str, ...] = ()
    products: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    persons: tuple[str, ...] = ()
    _index: dict = field(default_factory=dict, compare=False, repr=False)

    def index(self) -> dict[tuple[str, ...], str]:
        """Folded token tuple -> label (the highest-priority label when a phrase has several)."""
        if not self._index:
            groups = (
                ("BRAND", self.brands),
                ("PRODUCT", self.products),
                ("DEPARTMENT", self.departments),
                ("COLOR", self.colors),
                ("PERSON", self.persons),
            )
            for label, phrases in groups:
                for phrase in phrases:
                    key = tuple(fold(phrase).split())
                    if not key or (len(key) == 1 and key[0] in STOPWORDS):
                        continue
                    if len(key) == 1 and len(key[0]) < 2:
                        continue
                    old = self._index.get(key)
                    if old is None or LABEL_PRIORITY[label] < LABEL_PRIORITY[old]:
                        self._index[key] = label
        return self._index

    @cached_property
    def max_len(self) -> int:
        """Words of the longest phrase (cached: looked up at every token)."""
        return max((len(k) for k in self.index()), default=1)

    @cached_property
    def first_words(self) -> frozenset[str]:
        """The words that start a phrase."""
        return frozenset(k[0] for k in self.index())

    def longest_match(self, tokens: Sequence[str], i: int) -> tuple[int, str] | None:
        """(tokens used, label) of the longest phrase starting at tokens[i], or None.

        tokens: folded tokens (one may hold several words: "&" folds to "and")."""
        head = tokens[i].split()
        if not head or head[0] not in self.first_words:
            return None  # most tokens start no phrase: one set lookup instead of max_len
        index = self.index()
        for n in range(min(self.max_len, len(tokens) - i), 0, -1):
            label = index.get(tuple(w for t in tokens[i : i + n] for w in t.split()))
            if label:
                return n, label
        return None

    def covered_words(self, text: str) -> int:
        """Words of `text` inside gazetteer phrases, matched left to right, longest first
        (the second pass's catalog feature: "tide pods" covers 2 words, "tied pods" 0)."""
        tokens, i, covered = fold(text).split(), 0, 0
        while i < len(tokens):
            match = self.longest_match(tokens, i)
            covered += match[0] if match else 0
            i += match[0] if match else 1
        return covered

    @classmethod
    def from_lists(cls, **lists: Iterable[str]) -> Gazetteer:
        return cls(**{k: tuple(dict.fromkeys(v)) for k, v in lists.items()})

    @classmethod
    def from_catalog_rows(
        cls,
        rows: Iterable[dict],
        persons: Iterable[str] = (),
        departments: Iterable[str] = (),
    ) -> Gazetteer:
        """Surface forms of catalog rows (the objects of `assistant catalog --json`): brand and
        brand_aliases; product_en/es and aliases_en/es (product lines and spoken types);
        color/color_es and their aliases; department/department_es. Persons (first names) and
        extra department aliases are not in the rows, so the caller hands them in."""
        lists: dict[str, list[str]] = {"brands": [], "products": [], "colors": []}
        depts = list(departments)
        for row in rows:
            lists["brands"] += [row.get("brand") or "", *(row.get("brand_aliases") or [])]
            lists["products"] += [row.get("product_en") or "", row.get("product_es") or ""]
            lists["products"] += [*(row.get("aliases_en") or []), *(row.get("aliases_es") or [])]
            lists["colors"] += [row.get("color") or "", row.get("color_es") or ""]
            lists["colors"] += row.get("color_aliases_en") or []
            lists["colors"] += row.get("color_aliases_es") or []
            depts += [row.get("department") or "", row.get("department_es") or ""]
        return cls.from_lists(
            **{k: [x for x in v if x] for k, v in lists.items()},
            departments=[d for d in depts if d],
            persons=list(persons),
        )

    @classmethod
    def from_catalog_jsonl(
        cls, path: str | Path, persons: Iterable[str] = (), departments: Iterable[str] = ()
    ) -> Gazetteer:
        """`from_catalog_rows` over a JSONL file (one catalog row per line)."""
        with open(path, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        return cls.from_catalog_rows(rows, persons, departments)


def detect_language(text: str, hint: str | None = None) -> str:
    """ "es" or "en" from marker words and Spanish-only characters; the hint breaks ties."""
    if hint in ("en", "es"):
        return hint
    words = re.findall(r"\w+", text.lower())
    es = sum(w in _ES_MARKERS for w in words) + 2 * len(re.findall(r"[ñ¿¡áéíóú]", text.lower()))
    en = sum(w in _EN_MARKERS for w in words)
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
