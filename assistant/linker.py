"""Entity linking: BRAND / PRODUCT / SIZE / COLOR spans -> ranked catalog SKUs, robust to ASR errors.

A span is compared with every spelling the catalog knows (names, aliases, curated
mishearings) three ways, keeping the best:
- spelling: rapidfuzz ratio on accent- and case-folded text ("kellogs" ~ "kelloggs");
- English sound: jellyfish metaphone keys ("collugs" ~ "kelloggs": KLKS = KLKS);
- Spanish sound: `spanish_key`, see there ("vimbo" ~ "bimbo", "yerba" ~ "hierba").
Product lines are ranked by brand and product agreement, then SKUs of a line by size and
colour agreement. When the best lines score within `ambiguity_margin` of each other the
result is ambiguous and the answer asks back with the top candidates.
"""

from __future__ import annotations

import functools
import math
import re
from collections import defaultdict
from dataclasses import dataclass

import jellyfish
from rapidfuzz import fuzz, process

from asr.nbest import NBest
from assistant.inventory import Inventory, ProductRecord
from nlu.lexicon import STOPWORDS
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
    source: str = "spans"  # spans | text | nbest

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

    def scores(self, span: str, weight: float) -> dict[str, float]:
        """id -> best similarity of `span` to any of its forms."""
        query = fold(span)
        if not query:
            return {}
        best: dict[str, float] = defaultdict(float)
        joined = query.replace(" ", "")
        passes = (
            (query, self.forms, 1.0),
            (joined if len(joined) >= MIN_JOINED_CHARS else "", self.joined, 1.0),
            (english_key(query), self.en, weight),
            (spanish_key(query), self.es, weight),
        )
        for q, choices, w in passes:
            # a short word sounds like too many names ("can" ~ "gain": both KN)
            if len(q) < 2 or (w != 1.0 and (len(q.replace(" ", "")) < 3 or len(query) < 4)):
                continue
            for _form, score, idx in process.extract(
                q, choices, scorer=fuzz.ratio, limit=40, score_cutoff=60
            ):
                for owner in self.owners[idx]:
                    best[owner] = max(best[owner], w * score / 100.0)
        return best


class Linker:
    """Spans -> SKUs over the inventory's catalog (index built on first use)."""

    def __init__(self, inventory: Inventory, config: LinkerConfig | None = None):
        self.inventory = inventory
        self.config = config or LinkerConfig()
        self._built = False

    def _build(self) -> None:
        if self._built:
            return
        products = self.inventory.products()
        brand_forms: dict[str, set[str]] = defaultdict(set)
        line_forms: dict[str, set[str]] = defaultdict(set)
        self._size_forms: dict[str, set[str]] = defaultdict(set)
        self._color_forms: dict[str, set[str]] = defaultdict(set)
        self._lines: dict[str, list[ProductRecord]] = defaultdict(list)
        self._line_brand: dict[str, str] = {}
        for p in products.values():
            self._lines[p.line].append(p)
            self._line_brand[p.line] = p.brand
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
            for field in (p.size, p.size_es):
                if field:
                    self._size_forms[p.sku].add(fold(field))
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
        self._products = _Forms(line_forms)
        self._brand_lines: dict[str, list[str]] = defaultdict(list)
        for line, brand in self._line_brand.items():
            self._brand_lines[brand].append(line)
        self._built = True

    # -- public ------------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Build the catalog index now (about 0.5 s) rather than inside the first answer.

        Raises InventoryUnavailable when the database cannot be read.
        """
        self._build()

    def link(self, nlu: NluResult) -> LinkResult:
        """Candidates for the BRAND/PRODUCT/SIZE/COLOR spans of a parse (first of each)."""
        spans = {
            label: " ".join(e.text for e in nlu.entities if e.label == label) or None
            for label in ("BRAND", "PRODUCT", "SIZE", "COLOR")
        }
        if not (spans["BRAND"] or spans["PRODUCT"]):
            return self.link_text(nlu.text, size=spans["SIZE"], color=spans["COLOR"])
        result = self.link_spans(spans["BRAND"], spans["PRODUCT"], spans["SIZE"], spans["COLOR"])
        if result.candidates and not result.ambiguous:
            return result
        # The spans may cut a misheard name apart ("pañales [u] [diez]") or join two
        # ("[tidepods]"): a scan of the whole text settles what the spans left open.
        scanned = self.link_text(nlu.text, size=spans["SIZE"], color=spans["COLOR"])
        if scanned.candidates and (
            not result.candidates
            or (not scanned.ambiguous and scanned.best.score >= result.best.score)
        ):
            return scanned
        return result

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
        brand_scores = {b: s for b, s in brand_scores.items() if s >= cfg.min_span_score}
        line_scores = {ln: s for ln, s in line_scores.items() if s >= cfg.min_span_score}
        if brand and product and not brand_scores and not line_scores:
            # the "brand" may be the product's name and vice versa, or both one phrase
            return self.link_text(f"{brand} {product}", size=size, color=color)
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
        elif brand_scores:
            for b, bs in brand_scores.items():
                for line in self._brand_lines[b]:
                    lines[line] = (bs + self._generic_bonus(line), bs, None)
        else:
            for line, ps in line_scores.items():
                lines[line] = (ps + self._generic_bonus(line), None, ps)
        return self._rank(lines, size, color, "spans")

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
            if len(g) >= 3 and not all(w in STOPWORDS or w in QUERY_WORDS for w in g.split())
        ]
        best_brand: tuple[float, str | None] = (0.0, None)
        best_product: tuple[float, str | None] = (0.0, None)
        # free text is full of words that sound like some brand ("find" ~ Fanta): here a
        # sound-alike alone is not enough, the spelling must be close too
        weight = TEXT_PHONETIC_WEIGHT
        for g in grams:
            bs = max(self._brands.scores(g, weight).values(), default=0.0)
            ps = max(self._products.scores(g, weight).values(), default=0.0)
            # longer grams must earn their place: a tie goes to the earlier, shorter one
            if bs > best_brand[0] + 1e-9 and bs >= TEXT_MIN_SCORE:
                best_brand = (bs, g)
            if ps > best_product[0] + 1e-9 and ps >= TEXT_MIN_SCORE:
                best_product = (ps, g)
        if not (best_brand[1] or best_product[1]):
            return LinkResult(source="text")
        result = self.link_spans(best_brand[1], best_product[1], size, color)
        return LinkResult(result.candidates, result.ambiguous, "text")

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

    def closest(self, text: str, limit: int = 3) -> list[ProductRecord]:
        """Catalog products whose names look most like `text` (for "not found" answers)."""
        self._build()
        products = list(self.inventory.products().values())
        names = [fold(p.name_en) for p in products] + [fold(p.name_es) for p in products]
        out, seen = [], set()
        for _n, _s, idx in process.extract(
            fold(text), names, scorer=fuzz.token_set_ratio, limit=limit * 8
        ):
            p = products[idx % len(products)]
            if p.line not in seen:
                seen.add(p.line)
                out.append(p)
            if len(out) == limit:
                break
        return out

    # -- ranking -----------------------------------------------------------------------------

    def _rank(
        self,
        lines: dict[str, tuple[float, float | None, float | None]],
        size: str | None,
        color: str | None,
        source: str,
    ) -> LinkResult:
        cfg = self.config
        cands: list[Candidate] = []
        for line, (score, bs, ps) in lines.items():
            if score < cfg.min_score:
                continue
            for p in self._lines[line]:
                ss = self._attr_score(size, self._size_forms.get(p.sku, ())) if size else None
                cs = self._attr_score(color, self._color_forms.get(p.sku, ())) if color else None
                final = score
                # size and colour reorder the SKUs of a line and break ties between lines
                if ss is not None:
                    final += 0.2 * (ss - 0.5)
                if cs is not None:
                    final += 0.06 * (cs - 0.5)
                cands.append(Candidate(p, round(final, 4), bs, ps, ss, cs))
        cands.sort(key=lambda c: (-c.score, c.product.line, c.product.sku))
        cands = cands[: cfg.max_candidates * 3]
        return LinkResult(tuple(cands), self._is_ambiguous(cands), source)

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
        if numbers and not any(numbers & set(re.findall(r"\d+", f)) for f in forms):
            best = min(best, 0.5)  # "size 4" must not match "size 5" however alike they look
        return best
