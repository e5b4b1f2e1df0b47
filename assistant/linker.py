"""Entity linking: BRAND / PRODUCT / SIZE / COLOR spans -> ranked catalog SKUs, robust to ASR errors.

A span is compared with every spelling the catalog knows (names, aliases, curated
mishearings) three ways, keeping the best:
- spelling: rapidfuzz ratio on accent- and case-folded text ("kellogs" ~ "kelloggs");
- English sound: jellyfish metaphone keys ("collugs" ~ "kelloggs": KLKS = KLKS);
- Spanish sound: `spanish_key`, see there ("vimbo" ~ "bimbo", "yerba" ~ "hierba").
Product lines are ranked by brand and product agreement, then SKUs of a line by size and
colour agreement. When the best lines score within `ambiguity_margin` of each other the
result is ambiguous and the answer asks back with the top candidates.

Beyond the spans (issue 16):
- variants: every size and colour form the catalog uses (letter sizes, talla/size N, waist,
  group, counts, volumes, weights, colours after a comma) is looked up in the whole query, so
  an untagged "Gray, Medium" still picks the SKU, and a form inside a PRODUCT span ("Supreme
  Talla 6") is moved out of it;
- carrier words ("checa", "check", "busca") are stripped from spans;
- honesty: a brand span that names no catalog brand, or a brand heard only approximately whose
  product words fit none of its lines (and fit another product type), links nothing and says
  why (`LinkResult.missing`), so the answer can be "we don't carry X; closest: ...";
- joint n-best (`link_joint`): (SKU, hypothesis) pairs scored by hypothesis posterior, link
  score and agreement of the hypotheses' intents, summed per SKU;
- people and departments (`link_person`, `link_department`) with the same fuzzy + English +
  Spanish sound matching and the same ask-back rule.
"""

from __future__ import annotations

import functools
import json
import math
import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources

import jellyfish
import numpy as np
from rapidfuzz import fuzz, process

from asr.nbest import NBest
from assistant.inventory import Inventory, ProductRecord
from nlu.lexicon import CARRIER_WORDS, STOPWORDS
from nlu.schema import NluResult, Parser
from textnorm import fold
from textnorm.numbers import spoken_words


def spanish_key(text: str) -> str:
    """A phonetic key for Spanish (and English names said the Spanish way).

    Spanish spelling is close to phonemic, so the key only merges letters that sound the
    same in Latin-American Spanish: b/v, ll/y, silent h, c/s/z before e/i (seseo), qu/k/c
    before a/o/u, g/j before e/i, and drops doubled letters. Vowels stay: they carry most of
    the identity of short brand names. Metaphone does the English side; this catches the
    ones it gets wrong for Spanish ("ll" is not /l/, "j" is not /dʒ/, "h" is silent).
    """
    w = fold(text).replace(" ", "")
    rules = (
        ("ch", "X"), ("ll", "Y"), ("qu", "K"), ("gue", "GE"), ("gui", "GI"), ("ge", "JE"),
        ("gi", "JI"), ("ce", "SE"), ("ci", "SI"), ("sh", "X"), ("ph", "F"), ("ñ", "NY"),
    )  # fmt: skip
    for src, dst in rules:
        w = w.replace(src, dst)
    w = w.replace("h", "")
    table = str.maketrans(
        {
            "v": "B",
            "b": "B",
            "z": "S",
            "s": "S",
            "c": "K",
            "k": "K",
            "q": "K",
            "j": "J",
            "y": "Y",
            "w": "U",
            "x": "KS",
            "g": "G",
            "r": "R",
        }
    )
    w = w.translate(table).upper()
    w = re.sub(r"Y(?=[^AEIOU]|$)", "I", w)  # final / preconsonantal y is a vowel
    return re.sub(r"(.)\1+", r"\1", w)


GENERIC_LINE_BONUS = 0.05
TEXT_PHONETIC_WEIGHT = 0.85  # free-text scan: a sound-alike scores below TEXT_MIN_SCORE
TEXT_MIN_SCORE = 0.88
MIN_JOINED_CHARS = 5  # space-free comparison only for names this long ("lala" + 1)
SCORE_CACHE_SIZE = 20_000  # spans whose form scores are kept (a few MB)
QUERY_WORDS = frozenset(
    [
        "where",
        "find",
        "need",
        "want",
        "looking",
        "show",
        "tell",
        "many",
        "much",
        "have",
        "stock",
        "aisle",
        "please",
        "busco",
        "donde",
        "necesito",
        "quiero",
        "tienen",
        "tenemos",
        "pasillo",
        "ayuda",
    ]
)


@functools.cache
def _number_words() -> tuple[re.Pattern, dict[str, str]]:
    words: dict[str, str] = {}
    for n in range(1000, -1, -1):
        for w in (spoken_words(n, "en"), *(spoken_words(n, "es", g) for g in "mfn")):
            words[fold(w)] = str(n)
    alternation = "|".join(sorted(words, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternation})\b"), words


@functools.lru_cache(maxsize=16384)  # catalog forms are rewritten on every size comparison
def digits(text: str) -> str:
    """Folded text with number words as digits: "talla cuatro" -> "talla 4"."""
    pattern, words = _number_words()
    return pattern.sub(lambda m: words[m.group(0)], text)


def english_key(text: str) -> str:
    return " ".join(jellyfish.metaphone(word) for word in fold(text).split())


@dataclass(frozen=True)
class Candidate:
    """A catalog product the spans may mean; scores in [0, 1]."""

    product: ProductRecord
    score: float
    brand_score: float | None = None
    product_score: float | None = None
    size_score: float | None = None
    color_score: float | None = None

    @property
    def sku(self) -> str:
        return self.product.sku


@dataclass(frozen=True)
class LinkResult:
    """Ranked candidates (best first) and whether the top ones are too close to choose."""

    candidates: tuple[Candidate, ...] = ()
    ambiguous: bool = False
    source: str = "spans"  # spans | text | nbest | joint
    # Why nothing was linked, when the query names something the catalog lacks:
    # {"reason": "brand" | "brand_product", "brand": ..., "product": ..., "type": type id or None}
    missing: dict | None = None
    size: str | None = None  # the size / colour words the query gave (span or found in text)
    color: str | None = None
    support: float = 1.0  # joint n-best: share of the hypotheses' weight behind the best line
    hypothesis: int = 0  # joint n-best: the hypothesis that carries the best SKU most

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    def lines(self, limit: int = 3) -> list[Candidate]:
        """The best candidate of each distinct product line, best first."""
        seen, out = set(), []
        for c in self.candidates:
            if c.product.line not in seen:
                seen.add(c.product.line)
                out.append(c)
        return out[:limit]


@dataclass(frozen=True)
class LinkerConfig:
    min_span_score: float = 0.72  # below this a span matches nothing
    min_score: float = 0.6  # candidates below this are dropped
    ambiguity_margin: float = 0.04  # top lines closer than this: ask back
    phonetic_weight: float = 0.92  # a sound match counts a little less than a spelling match
    max_candidates: int = 10
    # brands and lines scoring this far below the best match of the same span are dropped
    # ("doritos" is Doritos at 1.0; Tide at 0.79 by sound must not compete)
    relative_margin: float = 0.12
    exact_brand: float = 0.97  # a brand heard this well is trusted without product agreement
    type_match: float = 0.85  # product words this close to a product type name that type
    # joint n-best: posterior temperature (scores are length-normalized log-probabilities)
    nbest_temperature: float = 1.0
    min_support: float = 0.35  # joint: the best line needs this share of the weight
    person_min: float = 0.8  # a person span this close to a roster name links it
    person_ask: float = 0.75  # between person_ask and person_min: ask back ("do you mean")
    department_min: float = 0.75


class _Forms:
    """Folded spellings of one kind with their phonetic keys, for vectorised matching."""

    def __init__(self, owners: dict[str, set[str]]):
        # owners: folded form -> ids (brand names or line ids or skus)
        self.forms = sorted(owners)
        self.owners = [owners[f] for f in self.forms]
        self.en = [english_key(f) for f in self.forms]
        self.es = [spanish_key(f) for f in self.forms]
        # ASR joins and splits names ("tidepods", "leche la la"): compare without spaces too
        self.joined = [f.replace(" ", "") for f in self.forms]
        # The hypotheses of one n-best list share most of their words and n-grams, and a
        # speculative final and its endpoint's decode often read the same text: each span is
        # matched against the forms once. (span, weight) -> scores; the forms never change.
        self._cache: dict[tuple[str, float], dict[str, float]] = {}
        self._lock = threading.Lock()

    def scores(self, span: str, weight: float) -> dict[str, float]:
        """id -> best similarity of `span` to any of its forms (a fresh dict: callers add to it)."""
        return defaultdict(float, self.many([span], weight)[0])

    def many(self, spans: list[str], weight: float) -> list[dict[str, float]]:
        """`scores` of each span (shared dicts: read them, do not change them); the spans not
        seen before are matched together, one rapidfuzz cdist per kind of form."""
        with self._lock:
            known = {s: self._cache.get((s, weight)) for s in spans}
        todo = [s for s, found in known.items() if found is None]
        if todo:
            fresh = self._match(todo, weight)
            known.update(fresh)
            with self._lock:
                if len(self._cache) + len(fresh) > SCORE_CACHE_SIZE:
                    self._cache.clear()
                self._cache.update({(s, weight): v for s, v in fresh.items()})
        return [known[s] for s in spans]

    def _match(self, spans: list[str], weight: float) -> dict[str, dict[str, float]]:
        best: dict[str, dict[str, float]] = {s: defaultdict(float) for s in spans}
        passes: list[tuple[list[str], list[str], float]] = [
            ([], self.forms, 1.0), ([], self.joined, 1.0), ([], self.en, weight), ([], self.es, weight)
        ]  # fmt: skip
        for span in spans:
            query = fold(span)
            if not query:
                continue
            joined = query.replace(" ", "")
            keys = (
                query,
                joined if len(joined) >= MIN_JOINED_CHARS else "",
                english_key(query),
                spanish_key(query),
            )
            for (todo, _choices, w), q in zip(passes, keys, strict=True):
                # a short word sounds like too many names ("can" ~ "gain": both KN)
                if len(q) < 2 or (w != 1.0 and (len(q.replace(" ", "")) < 3 or len(query) < 4)):
                    continue
                todo.append((span, q))
        for todo, choices, w in passes:
            if not todo:
                continue
            # process.extract(q, choices, scorer=fuzz.ratio, limit=40, score_cutoff=60) of each
            # query, as one matrix: the same scores, the same 40 best (ties by form order)
            matrix = process.cdist(
                [q for _, q in todo], choices, scorer=fuzz.ratio, score_cutoff=60,
                dtype=np.float64, workers=1,
            )  # fmt: skip
            for (span, _q), row in zip(todo, matrix, strict=True):
                hits = np.flatnonzero(row)
                top = hits[np.lexsort((hits, -row[hits]))[:40]]
                scores = best[span]
                for idx, score in zip(top.tolist(), row[top].tolist(), strict=True):
                    for owner in self.owners[idx]:
                        scores[owner] = max(scores[owner], w * score / 100.0)
        return {s: dict(v) for s, v in best.items()}


@dataclass(frozen=True)
class PersonLink:
    """Associates a PERSON mention may mean, best first; ask: too close or too unsure."""

    associates: tuple = ()
    score: float = 0.0
    ask: bool = False


def _prune(scores: dict[str, float], floor: float, margin: float) -> dict[str, float]:
    """Scores at least `floor` and within `margin` of the best."""
    kept = {k: v for k, v in scores.items() if v >= floor}
    if not kept:
        return {}
    top = max(kept.values())
    return {k: v for k, v in kept.items() if v >= top - margin}


def _alternation(forms: set[str]) -> re.Pattern | None:
    """One regex matching any of `forms` as whole words, longest first."""
    forms = {f for f in forms if f.strip()}
    if not forms:
        return None
    alt = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    return re.compile(rf"(?<![\w])(?:{alt})(?![\w])")


@functools.cache
def _curated_type_names() -> dict[str, tuple[str, ...]]:
    """type id -> EN/ES names and spoken forms, from the curated departments list."""
    raw = json.loads(
        resources.files("assistant.inventory").joinpath("data/departments.json").read_text("utf-8")
    )
    out = {}
    for dep in raw:
        for t in dep["types"]:
            out[t["id"]] = (t["en"], t["es"], *t.get("spoken_en", ()), *t.get("spoken_es", ()))
    return out


class Linker:
    """Spans -> SKUs over the inventory's catalog (index built on first use)."""

    def __init__(self, inventory: Inventory, config: LinkerConfig | None = None):
        self.inventory = inventory
        self.config = config or LinkerConfig()
        self._built = False
        self._people: dict[str, tuple[_Forms, dict]] = {}

    def _build(self) -> None:
        if self._built:
            return
        products = self.inventory.products()
        brand_forms: dict[str, set[str]] = defaultdict(set)
        line_forms: dict[str, set[str]] = defaultdict(set)
        # names that carry the brand ("gamesa chokis cookies"): said whole, they name a line
        named_forms: dict[str, set[str]] = defaultdict(set)
        self._size_forms: dict[str, set[str]] = defaultdict(set)
        self._color_forms: dict[str, set[str]] = defaultdict(set)
        self._lines: dict[str, list[ProductRecord]] = defaultdict(list)
        self._line_brand: dict[str, str] = {}
        self._line_type: dict[str, str] = {}
        for p in products.values():
            self._lines[p.line].append(p)
            self._line_brand[p.line] = p.brand
            self._line_type[p.line] = p.type_id
            brand_forms[fold(p.brand)].add(p.brand)
            line_forms[fold(p.product_en)].add(p.line)
            line_forms[fold(p.product_es)].add(p.line)
            # the whole name as said: "tide pods", "leche lala", "lala leche"
            for name in (
                f"{p.brand} {p.product_en}",
                f"{p.brand} {p.product_es}",
                f"{p.product_es} {p.brand}",
            ):
                line_forms[fold(name)].add(p.line)
                named_forms[fold(name)].add(p.line)
            # and as written on the shelf label, before the size: "gildan t-shirts"
            for name in (p.name_en, p.name_es):
                head = name.split(",")[0]
                line_forms[fold(head)].add(p.line)
                named_forms[fold(head)].add(p.line)
            for f in (p.size, p.size_es):
                if f:
                    self._size_forms[p.sku].add(fold(f))
            for f in (p.color, p.color_es):
                if f:
                    self._color_forms[p.sku].add(fold(f))
        for sku, kind, _lang, alias in self.inventory.aliases():
            p = products[sku]
            if kind == "brand":
                brand_forms[fold(alias)].add(p.brand)
            elif kind == "product":
                line_forms[fold(alias)].add(p.line)
            elif kind == "size":
                self._size_forms[sku].add(fold(alias))
            elif kind == "color":
                self._color_forms[sku].add(fold(alias))
        self._brands = _Forms(brand_forms)
        self._named_lines = {f: ls.pop() for f, ls in named_forms.items() if len(ls) == 1}
        self._named_re = _alternation({f for f in self._named_lines if " " in f})
        self._products = _Forms(line_forms)
        self._brand_lines: dict[str, list[str]] = defaultdict(list)
        for line, brand in self._line_brand.items():
            self._brand_lines[brand].append(line)
        # product types (for "we don't carry X; closest <type>") from the curated lists,
        # restricted to the types this catalog has
        type_forms: dict[str, set[str]] = defaultdict(set)
        present = set(self._line_type.values())
        for type_id, names in _curated_type_names().items():
            if type_id in present:
                for n in names:
                    type_forms[fold(n)].add(type_id)
        for p in products.values():
            type_forms[fold(p.product_en)].add(p.type_id) if p.line.count(":") == 1 else None
        self._types = _Forms(type_forms)
        # closest(): every product's EN names then ES names, folded once
        listed = list(products.values())
        names = [fold(p.name_en) for p in listed] + [fold(p.name_es) for p in listed]
        self._closest_choices = (listed, names)
        # every variant form, for finding untagged sizes and colours in a query
        self._variant_re = {
            kind: _alternation({digits(f) for fs in forms.values() for f in fs})
            for kind, forms in (("size", self._size_forms), ("color", self._color_forms))
        }
        self._built = True

    # -- public ------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Build the catalog index now (about 0.5 s) rather than inside the first answer.

        Raises InventoryUnavailable when the database cannot be read.
        """
        self._build()

    def variants_in(self, text: str) -> tuple[str | None, str | None]:
        """The size and colour words of the catalog found in `text` (digits for numbers)."""
        self._build()
        query = digits(fold(text))
        out = []
        for kind in ("size", "color"):
            pattern = self._variant_re[kind]
            found = [m.group(0) for m in pattern.finditer(query)] if pattern else []
            out.append(" ".join(found) or None)
        return out[0], out[1]

    def named_line(self, text: str) -> str | None:
        """The product line whose full name (brand included) the text says word for word.

        "Gamesa Chokis Cookies, 14 oz" names Gamesa Chokis, not the plain Gamesa Cookies
        line that the spans alone would favour; the longest name said wins, and two
        different names of the same length settle nothing.
        """
        self._build()
        if self._named_re is None:
            return None
        found = {m.group(0) for m in self._named_re.finditer(fold(text))}
        if not found:
            return None
        longest = max(len(f) for f in found)
        lines = {self._named_lines[f] for f in found if len(f) == longest}
        return lines.pop() if len(lines) == 1 else None

    def _variant(self, kind: str, span: str | None, found: str | None) -> str | None:
        """The size (or colour) words to match: the span when it is a catalog form, else
        the catalog forms found in the text ("[half]SIZE" in "..., Half Gallon")."""
        if not (span and found):
            return span or found
        said = digits(fold(span))
        if said != found and f" {said} " in f" {found} ":
            return found  # "[grande]SIZE" of "Extra grande": the longer form said
        pattern = self._variant_re[kind]
        return span if pattern and pattern.fullmatch(said) else found

    def _clean_span(self, span: str | None) -> str | None:
        """A span without carrier words and without the size/colour forms inside it."""
        if not span:
            return None
        words = [w for w in fold(span).split() if w not in CARRIER_WORDS]
        text = " ".join(words)
        numeric = digits(text)
        for kind in ("size", "color"):
            pattern = self._variant_re[kind]
            if pattern and pattern.search(numeric):
                stripped = " ".join(pattern.sub(" ", numeric).split())
                # a span that is only a size/colour is no product ("[large]PRODUCT"); number
                # words stay words unless a size was cut out ("u diez" is Huggies misheard)
                if stripped:
                    text = numeric = stripped
        return text if len(text.replace(" ", "")) >= 2 else None

    def link(self, nlu: NluResult) -> LinkResult:
        """Candidates for the BRAND/PRODUCT/SIZE/COLOR spans of a parse (all of each label)."""
        self._build()
        spans = {
            label: " ".join(e.text for e in nlu.entities if e.label == label) or None
            for label in ("BRAND", "PRODUCT", "SIZE", "COLOR")
        }
        found_size, found_color = self.variants_in(nlu.text)
        size = self._variant("size", spans["SIZE"], found_size)
        color = self._variant("color", spans["COLOR"], found_color)
        named = self.named_line(nlu.text)
        if named is not None:
            score = 1.0 + self._generic_bonus(named)
            ranked = self._rank({named: (score, 1.0, 1.0)}, size, color, "spans")
            return LinkResult(ranked.candidates, False, "spans", None, size, color)
        brand = self._clean_span(spans["BRAND"])
        product = self._clean_span(spans["PRODUCT"])
        if not (brand or product):
            return self.link_text(nlu.text, size=size, color=color)
        result = self.link_spans(brand, product, size, color)
        if result.candidates and not result.ambiguous:
            return result
        # The spans may cut a misheard name apart ("pañales [u] [diez]") or join two
        # ("[tidepods]"): a scan of the whole text settles what the spans left open.
        scanned = self.link_text(nlu.text, size=size, color=color)
        if scanned.candidates and (
            not result.candidates
            or (not scanned.ambiguous and scanned.best.score >= result.best.score)
        ):
            if result.missing and not self._scan_confirms(scanned, brand):
                return result  # the scan found some other product: the brand is still missing
            heard = result.best.brand_score if result.candidates else None
            if (
                heard
                and heard >= self.config.exact_brand
                and not self._scan_confirms(scanned, brand)
            ):
                # the spans name a catalog brand exactly ("[champion]BRAND"); another brand
                # elsewhere in the text ("Schick stock ...": "check" misheard) does not win
                return result
            return scanned
        return result

    def _scan_confirms(self, scanned: LinkResult, brand: str | None) -> bool:
        """The text scan's best line carries the brand words the spans gave ("air max")."""
        if not brand or scanned.best is None:
            return False
        p = scanned.best.product
        names = set(fold(f"{p.brand} {p.name_en} {p.name_es}").replace("-", " ").split())
        return all(w in names for w in fold(brand).replace("-", " ").split())

    def link_spans(
        self,
        brand: str | None,
        product: str | None,
        size: str | None = None,
        color: str | None = None,
    ) -> LinkResult:
        self._build()
        cfg = self.config
        brand_scores = self._brands.scores(brand, cfg.phonetic_weight) if brand else {}
        line_scores = self._products.scores(product, cfg.phonetic_weight) if product else {}
        if brand and len(brand.split()) > 1 and max(brand_scores.values(), default=0) < 0.9:
            # a span that took a neighbour with it ("[cereal kellogg's]BRAND"): its parts
            words = brand.split()
            for n in range(len(words) - 1, 0, -1):
                for i in range(len(words) - n + 1):
                    part = " ".join(words[i : i + n])
                    for b, sc in self._brands.scores(part, cfg.phonetic_weight).items():
                        brand_scores[b] = max(brand_scores.get(b, 0.0), 0.97 * sc)
        brand_scores = _prune(brand_scores, cfg.min_span_score, cfg.relative_margin)
        line_scores = _prune(line_scores, cfg.min_span_score, cfg.relative_margin)
        if brand and product and not brand_scores and not line_scores:
            # the "brand" may be the product's name and vice versa, or both one phrase
            result = self.link_text(f"{brand} {product}", size=size, color=color)
            if result.candidates and self._scan_confirms(result, brand):
                return result
            return self._missing(brand, product, size, color, "brand_product")
        if brand and not brand_scores:
            # a brand the catalog does not have ("Ozark Trail", "Doritoz" is not this case:
            # it is close to Doritos); products of that type are the closest items
            if product:
                joined = self.link_text(f"{brand} {product}", size=size, color=color)
                if joined.candidates and self._scan_confirms(joined, brand):
                    return joined
            return self._missing(brand, product, size, color, "brand")
        lines: dict[str, tuple[float, float | None, float | None]] = {}
        if brand_scores and line_scores:
            for line, ps in line_scores.items():
                bs = brand_scores.get(self._line_brand[line], 0.0)
                lines[line] = (0.5 * bs + 0.5 * ps + self._generic_bonus(line), bs, ps)
            # a known brand with a product word we could not place (a line name heard wrong)
            for b, bs in brand_scores.items():
                for line in self._brand_lines[b]:
                    if line not in lines:
                        lines[line] = (0.5 * bs + 0.2, bs, None)
            best_brand = max(brand_scores.values())
            agreed = any(line_scores.get(ln) for b in brand_scores for ln in self._brand_lines[b])
            if not agreed and best_brand < cfg.exact_brand:
                # "Ozark camping chair": heard like Ozarka, but Ozarka sells no chairs; the
                # product words are the surer half, so do not assert the brand's water
                return self._missing(brand, product, size, color, "brand_product")
        elif brand_scores:
            for b, bs in brand_scores.items():
                for line in self._brand_lines[b]:
                    lines[line] = (bs + self._generic_bonus(line), bs, None)
            if product and max(brand_scores.values()) < cfg.exact_brand:
                # the product words fit no line at all and the brand was heard only
                # approximately ("Ozark" ~ Ozarka + "camping chair"): not the brand's water
                return self._missing(brand, product, size, color, "brand_product")
        else:
            for line, ps in line_scores.items():
                lines[line] = (ps + self._generic_bonus(line), None, ps)
        result = self._rank(lines, size, color, "spans")
        return LinkResult(result.candidates, result.ambiguous, "spans", None, size, color)

    def product_type(self, product: str | None) -> str | None:
        """The catalog product type the words name ("camping chair": None; "papitas": chips)."""
        if not product:
            return None
        self._build()
        scores = self._types.scores(product, self.config.phonetic_weight)
        best = max(scores.items(), key=lambda kv: (kv[1], kv[0]), default=(None, 0.0))
        return best[0] if best[1] >= self.config.type_match else None

    def _missing(self, brand, product, size, color, reason: str) -> LinkResult:
        return LinkResult(
            source="spans",
            missing={
                "reason": reason,
                "brand": brand,
                "product": product,
                "type": self.product_type(product),
            },
            size=size,
            color=color,
        )

    def closest_of_type(self, type_id: str, limit: int = 3) -> list[ProductRecord]:
        """One product of each of the first `limit` lines of a product type."""
        self._build()
        lines = sorted(ln for ln, t in self._line_type.items() if t == type_id)
        return [sorted(self._lines[ln], key=lambda p: p.sku)[0] for ln in lines[:limit]]

    def line_products(self, line: str) -> list[ProductRecord]:
        self._build()
        return list(self._lines.get(line, ()))

    def _generic_bonus(self, line: str) -> float:
        """A product word that fits a brand's plain line and its named sub-lines ("huggies
        diapers": Huggies Diapers vs Huggies Little Movers) means the plain line."""
        return GENERIC_LINE_BONUS if line.count(":") == 1 else 0.0

    def link_text(self, text: str, size: str | None = None, color: str | None = None) -> LinkResult:
        """No usable spans: look for a brand and a product anywhere in the text (n-grams)."""
        self._build()
        words = fold(text).split()
        grams = [" ".join(words[i : i + n]) for n in (1, 2, 3) for i in range(len(words) - n + 1)]
        grams = [
            g
            for g in grams
            if len(g) >= 3
            and not all(w in STOPWORDS or w in QUERY_WORDS or w in CARRIER_WORDS for w in g.split())
        ]
        best_brand: tuple[float, str | None] = (0.0, None)
        best_product: tuple[float, str | None] = (0.0, None)
        # free text is full of words that sound like some brand ("find" ~ Fanta): here a
        # sound-alike alone is not enough, the spelling must be close too
        weight = TEXT_PHONETIC_WEIGHT
        brands, products = self._brands.many(grams, weight), self._products.many(grams, weight)
        for g, brand, product in zip(grams, brands, products, strict=True):
            bs = max(brand.values(), default=0.0)
            ps = max(product.values(), default=0.0)
            # longer grams must earn their place: a tie goes to the earlier, shorter one
            if bs > best_brand[0] + 1e-9 and bs >= TEXT_MIN_SCORE:
                best_brand = (bs, g)
            if ps > best_product[0] + 1e-9 and ps >= TEXT_MIN_SCORE:
                best_product = (ps, g)
        if not (best_brand[1] or best_product[1]):
            return LinkResult(source="text", size=size, color=color)
        result = self.link_spans(best_brand[1], best_product[1], size, color)
        return LinkResult(result.candidates, result.ambiguous, "text", result.missing, size, color)

    def link_nbest(self, nbest: NBest, parser: Parser | None = None) -> LinkResult:
        """Search every hypothesis, weighting each by its posterior under the n-best scores.

        DESIGN.md: the n-best list is worth more than its best line. A SKU found in several
        readings adds up; the weights are a softmax over the hypotheses' scores.
        """
        hyps = nbest.hypotheses
        if not hyps:
            return LinkResult(source="nbest")
        top = max(h.score for h in hyps)
        weights = [math.exp(h.score - top) for h in hyps]
        total = sum(weights)
        merged: dict[str, float] = defaultdict(float)
        by_sku: dict[str, Candidate] = {}
        for h, w in zip(hyps, weights, strict=True):
            result = (
                self.link(parser.parse(h.text, nbest.language))
                if parser
                else self.link_text(h.text)
            )
            for c in result.candidates:
                merged[c.sku] += c.score * w / total
                by_sku.setdefault(c.sku, c)
        ranked = sorted(merged, key=lambda s: (-merged[s], s))
        cands = tuple(
            Candidate(
                by_sku[s].product,
                merged[s],
                by_sku[s].brand_score,
                by_sku[s].product_score,
                by_sku[s].size_score,
                by_sku[s].color_score,
            )
            for s in ranked[: self.config.max_candidates]
        )
        return LinkResult(cands, self._is_ambiguous(cands), "nbest")

    def posteriors(self, nbest: NBest) -> list[float]:
        """Softmax of the hypotheses' scores at `nbest_temperature` (sums to 1)."""
        hyps = nbest.hypotheses
        if not hyps:
            return []
        t = self.config.nbest_temperature
        top = max(h.score for h in hyps)
        weights = [math.exp((h.score - top) / t) for h in hyps]
        total = sum(weights)
        return [w / total for w in weights]

    def link_joint(
        self, nlus: list[NluResult], weights: list[float], intent: str | None = None
    ) -> LinkResult:
        """Joint understanding: the SKU the whole n-best list supports best.

        Every hypothesis is linked from its own parse; a (SKU, hypothesis) pair scores
        weight x link score (spelling and sound agreement of its spans) x agreement (1 when
        the hypothesis' intent is a product intent and, given `intent`, the chosen one; 0.5
        otherwise). Pairs add up per SKU; the best SKU's line needs `min_support` of the
        list's weight, else the result is empty (with `missing` when the best-weighted
        hypotheses name something the catalog lacks).
        """
        merged: dict[str, float] = defaultdict(float)
        line_mass: dict[str, float] = defaultdict(float)
        # hypotheses that name a product type and no brand ("where's the dog food") back
        # the type, not one of its lines: their support is counted per type as well
        type_mass: dict[str, float] = defaultdict(float)
        carrier: dict[str, tuple[float, int]] = {}
        by_sku: dict[str, Candidate] = {}
        results: list[LinkResult] = []
        for i, (nlu, w) in enumerate(zip(nlus, weights, strict=True)):
            result = self.link(nlu)
            results.append(result)
            if not result.candidates:
                continue
            agree = 1.0 if nlu.intent in ("find_product", "check_stock") else 0.5
            if intent and nlu.intent != intent:
                agree *= 0.7
            top_line = result.candidates[0].product.line
            if result.candidates[0].brand_score is None:
                type_mass[result.candidates[0].product.type_id] += w * agree
            seen_lines = set()
            for c in result.candidates:
                pair = w * agree * c.score
                merged[c.sku] += pair
                if c.product.line not in seen_lines:
                    seen_lines.add(c.product.line)
                    # a hypothesis backs its best line fully; close runners-up a little
                    line_mass[c.product.line] += (
                        w * agree * (1.0 if c.product.line == top_line else 0.25)
                    )
                if pair > carrier.get(c.sku, (0.0, 0))[0]:
                    carrier[c.sku] = (pair, i)
                by_sku.setdefault(c.sku, c)
        if not merged:
            missing = next((r.missing for r in results if r.missing), None)
            first = results[0] if results else LinkResult()
            return LinkResult(source="joint", missing=missing, size=first.size, color=first.color)
        ranked = sorted(merged, key=lambda s: (-merged[s], s))
        best = by_sku[ranked[0]]
        total = max(sum(weights), 1e-9)
        support = line_mass[best.product.line] / total
        hyp = carrier[ranked[0]][1]
        ambiguous = None
        if support < self.config.min_support:
            kind = max(type_mass, key=lambda t: (type_mass[t], t), default=None)
            if kind is None or type_mass[kind] / total < self.config.min_support:
                missing = results[0].missing if results else None
                return LinkResult(
                    source="joint", missing=missing, support=round(support, 4), hypothesis=hyp
                )
            # the list agrees on the type only: its lines, for the answer to cover or ask
            ranked = [s for s in ranked if by_sku[s].product.type_id == kind]
            best, support, ambiguous = by_sku[ranked[0]], type_mass[kind] / total, True
            hyp = carrier[ranked[0]][1]
        scale = max(merged[ranked[0]], 1e-9) / max(best.score, 1e-9)
        cands = tuple(
            Candidate(
                by_sku[s].product,
                round(merged[s] / scale, 4),
                by_sku[s].brand_score,
                by_sku[s].product_score,
                by_sku[s].size_score,
                by_sku[s].color_score,
            )
            for s in ranked[: self.config.max_candidates * 3]
        )
        chosen = results[hyp]
        return LinkResult(
            cands,
            self._is_ambiguous(cands) if ambiguous is None else ambiguous,
            "joint",
            None,
            chosen.size,
            chosen.color,
            round(support, 4),
            hyp,
        )

    def closest(self, text: str, limit: int = 3, min_score: float = 0.0) -> list[ProductRecord]:
        """Catalog products whose names look most like `text` (for "not found" answers);
        min_score in [0, 1]: offer nothing that looks less alike."""
        self._build()
        products, names = self._closest_choices
        out, seen = [], set()
        for _n, _s, idx in process.extract(
            fold(text),
            names,
            scorer=fuzz.token_set_ratio,
            limit=limit * 8,
            score_cutoff=100 * min_score,
        ):
            p = products[idx % len(products)]
            if p.line not in seen:
                seen.add(p.line)
                out.append(p)
            if len(out) == limit:
                break
        return out

    # -- people and departments ----------------------------------------------------------------

    def _roster(self, store: str) -> tuple[_Forms, dict]:
        if store not in self._people:
            staff = {str(a.id): a for a in self.inventory.associates(store)}
            owners: dict[str, set[str]] = defaultdict(set)
            for aid, a in staff.items():
                for form in (a.full_name, a.first_name):
                    owners[fold(form)].add(aid)
            self._people[store] = (_Forms(owners), staff)
        return self._people[store]

    def link_person(self, span: str, store: str) -> PersonLink:
        """Associates of `store` a PERSON span may name: spelling, English and Spanish sound.

        "Marie" -> María (same metaphone), "karma" -> Carmen (KRM ~ KRMN). Above `person_min`
        the best ones link (several when within `ambiguity_margin`: ask which); between
        `person_ask` and `person_min` they are offered as a question; below, nothing.
        """
        forms, staff = self._roster(store)
        cfg = self.config
        words = [w for w in fold(span).split() if w not in CARRIER_WORDS]
        if not words:
            return PersonLink()
        scores = forms.scores(" ".join(words), cfg.phonetic_weight)
        # a full name said as first + last also scores each word on its own
        if len(words) > 1:
            for w in words:
                for aid, sc in forms.scores(w, cfg.phonetic_weight).items():
                    scores[aid] = max(scores.get(aid, 0.0), 0.9 * sc)
        head = words[0]
        for aid in list(scores):
            first = fold(staff[aid].first_name)
            # Spanish names carry gender in the last vowel: Alejandra is not Alejandro
            if head[-1] in "ao" and first[-1] in "ao" and head[-1] != first[-1]:
                scores[aid] *= 0.8
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        if not ranked or ranked[0][1] < cfg.person_ask:
            return PersonLink()
        top = ranked[0][1]
        close = [(staff[a], s) for a, s in ranked if s >= top - cfg.ambiguity_margin][:3]
        if top >= cfg.person_min:
            return PersonLink(tuple(a for a, _ in close), round(top, 4), len(close) > 1)
        return PersonLink(tuple(a for a, _ in close), round(top, 4), True)

    def find_person(self, text: str, store: str) -> PersonLink:
        """No PERSON span: a roster name heard well anywhere in the text (1-2 word grams)."""
        words = [w for w in fold(text).split() if w not in STOPWORDS and w not in QUERY_WORDS]
        best = PersonLink()
        for n in (1, 2):
            for i in range(len(words) - n + 1):
                gram = " ".join(words[i : i + n])
                if len(gram) < 4:
                    continue
                found = self.link_person(gram, store)
                if (
                    found.associates
                    and not found.ask
                    and found.score >= max(TEXT_MIN_SCORE, best.score + 1e-9)
                ):
                    best = found
        return best

    def link_department(self, span: str) -> tuple[str | None, tuple[str, ...]]:
        """(department id, close alternatives) a DEPARTMENT span names; (None, ()) if none."""
        if not hasattr(self, "_departments"):
            owners: dict[str, set[str]] = defaultdict(set)
            for d in self.inventory.departments().values():
                for name in (d.name_en, d.name_es, *d.aliases_en, *d.aliases_es):
                    owners[fold(name)].add(d.id)
            self._departments = _Forms(owners)
        words = [w for w in fold(span).split() if w not in CARRIER_WORDS]
        scores = self._departments.scores(" ".join(words), self.config.phonetic_weight)
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        if not ranked or ranked[0][1] < self.config.department_min:
            return None, ()
        top = ranked[0][1]
        close = tuple(d for d, s in ranked[1:3] if s >= top - self.config.ambiguity_margin)
        return ranked[0][0], close

    # -- ranking -----------------------------------------------------------------------------

    def _rank(
        self,
        lines: dict[str, tuple[float, float | None, float | None]],
        size: str | None,
        color: str | None,
        source: str,
    ) -> LinkResult:
        cands: list[Candidate] = []
        for line, (score, bs, ps) in lines.items():
            if score >= self.config.min_score:
                cands.extend(self.variants(line, size, color, score, bs, ps))
        cands.sort(key=lambda c: (-c.score, c.product.line, c.product.sku))
        cands = cands[: self.config.max_candidates * 3]
        return LinkResult(tuple(cands), self._is_ambiguous(cands), source)

    def variants(
        self,
        line: str,
        size: str | None,
        color: str | None,
        score: float = 1.0,
        brand_score: float | None = None,
        product_score: float | None = None,
    ) -> list[Candidate]:
        """Every SKU of `line` scored by the size and colour words' agreement, best first;
        `score` is the line's own (brand and product agreement)."""
        self._build()
        out = []
        for p in self._lines.get(line, ()):
            # an attribute the SKU does not have (colour of milk) neither helps nor hurts
            size_forms = self._size_forms.get(p.sku, ())
            color_forms = self._color_forms.get(p.sku, ())
            ss = self._attr_score(size, size_forms) if size and size_forms else None
            cs = self._attr_score(color, color_forms) if color and color_forms else None
            final = score
            # size and colour reorder the SKUs of a line and break ties between lines
            if ss is not None:
                final += 0.2 * (ss - 0.5)
            if cs is not None:
                final += 0.06 * (cs - 0.5)
            out.append(Candidate(p, round(final, 4), brand_score, product_score, ss, cs))
        return sorted(out, key=lambda c: (-c.score, c.product.sku))

    def _is_ambiguous(self, cands) -> bool:
        best_by_line: dict[str, float] = {}
        for c in cands:
            best_by_line.setdefault(c.product.line, c.score)
        scores = sorted(best_by_line.values(), reverse=True)
        return len(scores) > 1 and scores[0] - scores[1] < self.config.ambiguity_margin

    @staticmethod
    def _attr_score(span: str, forms) -> float:
        if not forms:
            return 0.0
        query = digits(fold(span))
        numbers = set(re.findall(r"\d+", query))
        best = max(fuzz.ratio(query, digits(f)) for f in forms) / 100.0
        padded = f" {query} "
        for f in forms:
            form = digits(f)
            fn = set(re.findall(r"\d+", form))
            if form == query:
                best = 1.0
            elif f" {form} " in padded:
                # "color negro" holds "negro"; "extra large" holds "large" too, but less of
                # it than the form "extra large" does: the longer form scores higher
                best = max(best, 0.9 + 0.09 * len(form) / max(len(query), 1))
            elif numbers and fn == numbers and not re.sub(r"[\d\s]", "", query):
                best = max(best, 0.95)  # "11" for "talla 11"
        if numbers and not any(numbers & set(re.findall(r"\d+", f)) for f in forms):
            best = min(best, 0.5)  # "size 4" must not match "size 5" however alike they look
        return best
