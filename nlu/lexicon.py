"""The baseline parser's word lists and patterns (EN/ES), data only.

- STOPWORDS: surface forms too common to name an entity on their own;
- NUMBER, SIZE_RE, DATE_RE, STORE_RE: sizes, dates and store numbers, in digits or words;
- INTENT_RULES: keyword rules per intent, on folded text (textnorm.fold);
- ES_MARKERS, EN_MARKERS: words that mark a query's language.
"""

from __future__ import annotations

import re

from textnorm import strip_accents
from textnorm.numbers import ONES_TENS_HUNDREDS


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Surface forms too common to be entity names on their own ("on" as a mishearing of onn.,
# "all" the detergent): a gazetteer phrase of one such token is ignored.
STOPWORDS = _words(
    "a an the on in at of to for and or is are do does did we you i it its my me our us be "
    "have has had all any some can get where what who which how many much when why this "
    "that these those there here with from by up out off not no yes please thanks one two "
    "game tie don del de la las el los un una uno en y o que por para con sin se su sus mi "
    "es son al lo le les nos hay como cual donde quien cuando mas más muy ya si sí bien "
    "bueno hola post joy glad premium secret action moderna nor boss caro centro bolt alive "
    "clarity craft bear bare buyer took tuck loves dub acts lace scot cielo rome sest bits "
    "beets cat chic duct olé ax bounds nam nan vale crust cress dov don't ciel roma"
)

# Command and carrier words that are never part of a product, brand or person name, though a
# parser may tag them ("[checa] si hay Tide", "[check] the Huggies"): the linker strips them.
CARRIER_WORDS = frozenset(
    strip_accents(w)
    for w in _words(
        "check checa checar chequea checame revisa revisar busca buscar busco find look "
        "locate show tell ask see verifica verificar fijate mira dime dame please porfa "
        "favor thanks gracias hey oye ok okay um uh eh este pues like so the los las la el "
        # "llévame a la mantequilla", "hay pedido de sopa": a request, not a product
        "llevame llevenme muestrame ensename ubicacion pedido"
    )
)

# Number words a size or count may be spoken with: textnorm.numbers' tables (so the corpus
# and the parser agree), their accentless spellings, and the words the tables do not list.
_NUM_WORDS = ONES_TENS_HUNDREDS + [
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
_NUM_WORDS += [strip_accents(w) for w in _NUM_WORDS]
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
    rf"(?:size|talla|número|numero|etapa|stage|group|grupo|waist|cintura)\s+{NUMBER}",
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
ES_MARKERS = _words(
    "donde dónde el la los las de del en que qué está esta están estan tenemos hay cuántos "
    "cuantos cuántas cuantas quién quien pasillo busco por favor tienda hoy mañana ayer "
    "semana trabaja lo más mas vendido para con una unos unas es son tiene oye este oiga "
    "necesito quiero me puedes dime"
)
# retail words only Spanish queries use ("playera roja talla grande" has no function word)
ES_MARKERS |= _words(
    "talla playera playeras pañales leche galletas jabón jabon sección seccion existencia "
    "bodega hola gracias cuánto cuanto dame"
)
EN_MARKERS = _words(
    "where the is are do does we have how many what who which find in aisle please store "
    "today tomorrow week works working sold best any can you i need looking for of and to "
    "it our show me tell"
)
