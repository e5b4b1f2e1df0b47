"""ASR-style surface forms: spoken sizes and numbers, misheard brands.

Everything takes an explicit `random.Random` so that a seed fixes the whole corpus.
"""

from __future__ import annotations

import random
import re

from textnorm.numbers import decimal_words, words

# unit (lowercase catalog spelling) -> (EN singular, EN plural, ES singular, ES plural, ES feminine)
_UNITS: dict[str, tuple[str, str, str, str, bool]] = {
    "oz": ("ounce", "ounces", "onza", "onzas", True),
    "fl oz": ("fluid ounce", "fluid ounces", "onza líquida", "onzas líquidas", True),
    "lb": ("pound", "pounds", "libra", "libras", True),
    "lbs": ("pound", "pounds", "libra", "libras", True),
    "g": ("gram", "grams", "gramo", "gramos", False),
    "gr": ("gram", "grams", "gramo", "gramos", False),
    "kg": ("kilo", "kilos", "kilo", "kilos", False),
    "ml": ("milliliter", "milliliters", "mililitro", "mililitros", False),
    "l": ("liter", "liters", "litro", "litros", False),
    "lt": ("liter", "liters", "litro", "litros", False),
    "gal": ("gallon", "gallons", "galón", "galones", False),
    "ct": ("count", "count", "pieza", "piezas", True),
    "count": ("count", "count", "pieza", "piezas", True),
    "pk": ("pack", "pack", "paquete", "paquetes", False),
    "pack": ("pack", "pack", "paquete", "paquetes", False),
    "in": ("inch", "inch", "pulgada", "pulgadas", True),
    "inch": ("inch", "inch", "pulgada", "pulgadas", True),
    '"': ("inch", "inch", "pulgada", "pulgadas", True),
    "ft": ("foot", "feet", "pie", "pies", False),
    "w": ("watt", "watts", "watt", "watts", False),
    "gb": ("gigabyte", "gigabytes", "giga", "gigas", False),
    "tb": ("terabyte", "terabytes", "tera", "teras", False),
    "qt": ("quart", "quarts", "cuarto", "cuartos", False),
    "pt": ("pint", "pints", "pinta", "pintas", True),
    "rolls": ("roll", "rolls", "rollo", "rollos", False),
    "roll": ("roll", "rolls", "rollo", "rollos", False),
    "v": ("volt", "volts", "volt", "volts", False),
    "yd": ("yard", "yards", "yarda", "yardas", True),
    "sheets": ("sheet", "sheets", "hoja", "hojas", True),
    "pieces": ("piece", "pieces", "pieza", "piezas", True),
    "pcs": ("piece", "pieces", "pieza", "piezas", True),
    "mg": ("milligram", "milligrams", "miligramo", "miligramos", False),
}
# size prefix -> (EN word, ES word): "Stage 2" -> "stage two" / "etapa dos"
_PREFIXES = {
    "size": ("size", "talla"),
    "talla": ("size", "talla"),
    "stage": ("stage", "etapa"),
    "etapa": ("stage", "etapa"),
    "group": ("group", "grupo"),
    "grupo": ("group", "grupo"),
    "waist": ("size", "talla"),
    "cintura": ("size", "talla"),
}
# named sizes (lower-case catalog text) -> (EN, ES)
_NAMED = {
    "half gallon": ("half gallon", "medio galón"),
    "family size": ("family size", "tamaño familiar"),
    "party size": ("party size", "tamaño fiesta"),
    "king size": ("king size", "tamaño king"),
    "queen size": ("queen size", "tamaño queen"),
    "twin size": ("twin size", "individual"),
    "aa": ("double a", "doble a"),
    "aaa": ("triple a", "triple a"),
}
_LETTER_SIZES = {
    "xs": ("extra small", "extra chica"),
    "s": ("small", "chica"),
    "m": ("medium", "mediana"),
    "l": ("large", "grande"),
    "xl": ("extra large", "extra grande"),
    "xxl": ("double extra large", "doble extra grande"),
    "small": ("small", "chica"),
    "medium": ("medium", "mediana"),
    "large": ("large", "grande"),
}
_SIZE_RE = re.compile(
    r"^(?:(size|talla|stage|etapa|group|grupo|waist|cintura)\s+)?(\d+(?:\.\d+)?)\s*(.*)$", re.I
)


def _number(value: str, language: str, as_words: bool, feminine: bool = False) -> str:
    if not as_words:
        return value
    if "." in value:
        return decimal_words(value, language)
    n = int(value)
    text = words(n, language, apocope=True)
    if language == "es" and feminine and text.endswith("un"):
        text = text[:-2] + "una"  # "una libra", "veintiuna piezas"
    if language == "es" and text.endswith("veintiún") and feminine:
        text = text[: -len("veintiún")] + "veintiuna"
    return text


def spoken_size(size: str, language: str, rng: random.Random, as_words: bool) -> str:
    """How a catalog size is said in a query (the SIZE span text, unit and "size"/"talla" included).

    Examples: "size 4" -> "size four" | "talla 4"; "64 oz" -> "sixty four ounce" | "64 onzas";
    "55 in" -> "fifty five inch" | "55 pulgadas"; unknown shapes are returned lower-cased.
    """
    raw = " ".join(size.lower().split())
    m = _SIZE_RE.match(raw)
    if m is None:
        letter = re.sub(r"^(size|talla)\s+", "", raw)
        if letter in _LETTER_SIZES:
            en, es = _LETTER_SIZES[letter]
            word = en if language == "en" else es
            return (
                f"{'size' if language == 'en' else 'talla'} {word}" if rng.random() < 0.6 else word
            )
        if raw in _NAMED:
            en, es = _NAMED[raw]
            if language == "en" and raw in ("aa", "aaa") and rng.random() < 0.5:
                return raw
            return en if language == "en" else es
        return raw
    prefix, value, unit = m.group(1), m.group(2), m.group(3).strip().rstrip(".")
    if prefix or not unit:  # clothing and shoe sizes, diaper sizes, baby-food stages
        en_word, es_word = _PREFIXES.get((prefix or "size").lower(), ("size", "talla"))
        if value.endswith(".5"):
            whole = _number(value[:-2], language, as_words)
            num = f"{whole} and a half" if language == "en" else f"{whole} y medio"
            if not as_words:
                num = value
        else:
            num = _number(value, language, as_words)
        return f"{en_word if language == 'en' else es_word} {num}"
    unit_key = unit.lower()
    if unit_key not in _UNITS:
        return f"{_number(value, language, as_words)} {unit_key}"
    en1, en2, es1, es2, fem = _UNITS[unit_key]
    one = value in ("1", "1.0")
    if language == "en":
        # Spoken English often keeps the singular as an adjective ("sixty four ounce bottle").
        name = en1 if one or rng.random() < 0.5 else en2
        if rng.random() < 0.15 and unit_key not in ('"', "in", "inch"):
            name = unit_key  # Whisper writes "64 oz"
        return f"{_number(value, language, as_words)} {name}"
    if value == "1.5" and unit_key in ("l", "lt", "kg") and rng.random() < 0.4:
        return f"{es1} y medio"
    name = es1 if one else es2
    return f"{_number(value, language, as_words, feminine=fem)} {name}"


# Whisper-like confusions: sounds that it writes one way or another.
_RULES: list[tuple[str, str]] = [
    ("ph", "f"),
    ("ck", "k"),
    ("c(?=[aou])", "k"),
    ("k", "c"),
    ("gg", "g"),
    ("ll", "l"),
    ("tt", "t"),
    ("ss", "s"),
    ("ee", "ea"),
    ("ea", "ee"),
    ("oo", "u"),
    ("ie", "y"),
    ("y$", "ie"),
    ("ai", "ay"),
    ("ay", "ai"),
    ("ou", "ow"),
    ("x", "ks"),
    ("qu", "kw"),
    ("v", "b"),
    ("b", "v"),
    ("z", "s"),
    ("s$", ""),
    ("'s", "s"),
    ("^h", ""),
    ("tion", "shun"),
    ("ide", "ied"),
    ("ite", "ight"),
    ("er$", "ur"),
    ("or$", "er"),
    ("ei", "ie"),
    ("th", "d"),
    ("^w", "gu"),
    ("j", "h"),
    ("ñ", "n"),
    ("e$", ""),
    ("i", "ee"),
    ("u", "oo"),
    ("a$", "ah"),
]
# a split must not start with a function word: "de tergent" would read as "de" + "tergent"
_STOP_PREFIXES = set(
    [
        "de",
        "la",
        "el",
        "en",
        "un",
        "lo",
        "the",
        "in",
        "on",
        "an",
        "at",
        "to",
        "al",
        "le",
        "es",
        "for",
        "a",
        "of",
        "by",
        "los",
        "las",
        "del",
        "una",
        "from",
    ]
)
_VOWEL_SWAP = {"a": "e", "e": "i", "i": "e", "o": "u", "u": "o"}


def corrupt_word(word: str, rng: random.Random) -> str:
    """One plausible mishearing of a word ("tide" -> "tied", "colgate" -> "col gate")."""
    for _ in range(6):
        choice = rng.random()
        if choice < 0.15 and len(word) >= 6 and " " not in word:
            # split at a consonant-vowel boundary in the middle, the way Whisper splits names
            cuts = [
                i
                for i in range(2, len(word) - 2)
                if word[i] not in "aeiou"
                and word[i + 1] in "aeiou"
                and word[:i] not in _STOP_PREFIXES
            ]
            if cuts:
                i = rng.choice(cuts)
                return f"{word[:i]} {word[i:]}"
        elif choice < 0.3:
            vowels = [i for i, c in enumerate(word) if c in _VOWEL_SWAP]
            if vowels:
                i = rng.choice(vowels)
                out = word[:i] + _VOWEL_SWAP[word[i]] + word[i + 1 :]
                if out != word:
                    return out
        rules = [(p, r) for p, r in _RULES if re.search(p, word)]
        if rules:
            pattern, repl = rng.choice(rules)
            matches = list(re.finditer(pattern, word))
            m = rng.choice(matches)
            out = word[: m.start()] + repl + word[m.end() :]
            if out.strip() and out != word:
                return out
    return word


def mishear(text: str, rng: random.Random, aliases: tuple[str, ...] = ()) -> str:
    """A misheard rendering of a brand or product: a catalog alias when there is one, else a
    phonetic corruption of one of its words. May return `text` unchanged for very short words."""
    if aliases and rng.random() < 0.6:
        alias = " ".join(rng.choice(aliases).strip("'-.!?,;: ").split())
        if alias and alias.split()[0] not in _STOP_PREFIXES:
            return alias
    parts = text.split(" ")
    candidates = [i for i, w in enumerate(parts) if len(w) >= 3]
    if not candidates:
        return text
    i = rng.choice(candidates)
    original = parts[i]
    for _ in range(5):
        parts[i] = corrupt_word(original, rng)
        # "levi's" minus its final s must not leave a dangling apostrophe at the span edge
        out = " ".join(" ".join(parts).strip("'-.!?,;: ").split())
        # nor may a span start with what reads as an article or preposition ("for mula")
        if out and out.split()[0] not in _STOP_PREFIXES:
            return out
    return text
