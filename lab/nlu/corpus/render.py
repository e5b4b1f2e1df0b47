"""Render one template with a product (and names, dates, departments) into a labelled query.

A query is assembled from pieces (a word, a punctuation mark, or a whole entity), so every
surface change (case, accents, number words, mishearing) is made piece by piece and the
entity offsets stay exact by construction.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from lab.nlu.corpus.catalog import Product
from lab.nlu.corpus.noise import mishear, spoken_size
from textnorm import strip_accents
from textnorm.numbers import words

ENTITY_SLOTS = ("BRAND", "PRODUCT", "SIZE", "COLOR", "DEPARTMENT", "DATE", "PERSON", "STORE")
_SLOT_RE = re.compile(r"(\{[A-Za-z]+[<>]?\})")
_OPT_RE = re.compile(r"\[([^\[\]]*)\]")
_ALT_RE = re.compile(r"\(([^()]*\|[^()]*)\)")
_AGREE_RE = re.compile(r"<([^<>|]*)\|([^<>|]*)>")  # <plural|singular>, agreeing with the product
_WORD_RE = re.compile(r"\s+|[¿¡]|[,?!.]|[^\s,?!.¿¡]+")
_FEM_NOUNS = {
    "leche",
    "carne",
    "sal",
    "miel",
    "llave",
    "crema",
    "luz",
    "tv",
    "televisión",
    "pantalla",
}


@dataclass
class Piece:
    text: str
    label: str | None = None  # entity label, None for plain words
    glue: bool = False  # no space before this piece
    kind: str = "word"  # word | punct | open (¿ ¡) | filler


@dataclass
class Rendered:
    """A rendered query before serialisation."""

    text: str
    entities: list[dict]
    noisy: bool
    mentions: dict = field(default_factory=dict)  # brand/size/color flags for sku lookup


@dataclass(frozen=True)
class Template:
    id: str  # "en.find_product.3"
    language: str
    intent: str
    text: str

    @property
    def slots(self) -> set[str]:
        return {m[1:-1].rstrip("<>") for m in _SLOT_RE.findall(self.text)}

    def needs(self) -> set[str]:
        """Product attributes the template cannot render without."""
        slots = self.slots
        out = {s for s in ("SIZE", "COLOR", "BRAND") if s in slots}
        if "BP" in slots:
            out.add("BRAND")
        return out

    @property
    def labels(self) -> set[str]:
        """Entity labels this template can produce (optional chunks included)."""
        slots = self.slots
        out = {s for s in slots if s in ENTITY_SLOTS}
        if "ITEM" in slots:
            out |= {"BRAND", "PRODUCT", "SIZE", "COLOR"}
        if "BP" in slots:
            out |= {"BRAND", "PRODUCT"}
        return out

    @property
    def uses_product(self) -> bool:
        return bool(self.slots & {"ITEM", "BP", "BRAND", "PRODUCT", "SIZE", "COLOR"})


def es_gender_number(product_es: str) -> tuple[bool, bool]:
    """(feminine, plural) of a Spanish product phrase, judged from its head noun's ending."""
    head = product_es.lower().split()[0] if product_es.strip() else ""
    plural = head.endswith("s") and len(head) > 3
    stem = head[:-1] if plural else head
    if plural and stem.endswith("e") and not stem.endswith(("te", "de", "che", "ne", "le", "re")):
        stem = stem[:-1]  # "pantalones" -> "pantalon"
    feminine = stem in _FEM_NOUNS or stem.endswith(("a", "ión", "ion", "dad", "tud", "umbre"))
    return feminine, plural


def en_plural_noun(product_en: str) -> bool:
    """Whether an English product phrase is plural ("pods", "running shoes"; not "glass")."""
    last = product_en.lower().split()[-1] if product_en.strip() else ""
    return last.endswith("s") and not last.endswith(("ss", "us", "is"))


class Renderer:
    """Fills templates; one instance per corpus build (holds the lexicon and the RNG)."""

    def __init__(self, lexicon: dict, departments: list[tuple[str, str]], rng: random.Random):
        self.lex = lexicon
        self.rng = rng
        lex_depts = [tuple(d) for d in lexicon["departments"]]
        self.departments = departments or lex_depts
        self.lex_departments = lex_depts
        self.colors = {c[0]: (c[1], c[2]) for c in lexicon["colors"]}

    # -- small choosers -------------------------------------------------------------------
    def _words(self, text: str, kind: str = "word") -> list[Piece]:
        return [Piece(w, kind=kind) for w in text.split()]

    def _filler(self, lang: str) -> list[Piece]:
        return self._words(self.rng.choice(self.lex["fillers"][lang]), "filler")

    def _number(self, n: int, lang: str, as_words: bool) -> str:
        return words(n, lang) if as_words else str(n)

    # -- slots ----------------------------------------------------------------------------
    def _entity(self, text: str, label: str) -> Piece:
        return Piece(" ".join(text.split()), label=label)

    def _brand(self, p: Product, ctx: dict) -> Piece:
        # "onn.", "L.O.L. Surprise!": a span never ends in punctuation (ANNOTATION.md)
        text = p.brand.strip(".!?,;:' ")
        if self.rng.random() < ctx["p_mishear_brand"]:
            heard = mishear(text.lower(), self.rng, tuple(a.lower() for a in p.brand_aliases))
            if heard != text.lower():
                ctx["noisy"] = True
                text = heard.title() if ctx["cased"] else heard
        ctx["mentions"]["brand"] = True
        return self._entity(text, "BRAND")

    def _product(self, p: Product, ctx: dict) -> Piece:
        lang = ctx["lang"]
        text = p.product_en if lang == "en" else p.product_es
        aliases = p.aliases_en if lang == "en" else p.aliases_es
        # Aliases that repeat the brand would put the brand inside the PRODUCT span.
        aliases = [a for a in aliases if not p.brand or p.brand.lower() not in a.lower()]
        if aliases and self.rng.random() < 0.2:
            text = self.rng.choice(aliases)
        text = text.lower()
        if self.rng.random() < ctx["p_mishear_product"]:
            heard = mishear(text, self.rng)
            if heard != text:
                ctx["noisy"] = True
                text = heard
        ctx["mentions"]["product"] = True
        return self._entity(text, "PRODUCT")

    def _size(self, p: Product, ctx: dict) -> list[Piece]:
        ctx["mentions"]["size"] = True
        aliases = p.size_aliases_en if ctx["lang"] == "en" else p.size_aliases_es
        if aliases and self.rng.random() < 0.5:
            # the catalog's own spoken forms; drop a leading "de" that belongs outside the span
            text = re.sub(r"^(de|of)\s+", "", self.rng.choice(aliases).lower())
        else:
            text = spoken_size(p.size, ctx["lang"], self.rng, ctx["as_words"])
        return [self._entity(text, "SIZE")]

    def _color(self, p: Product, ctx: dict) -> Piece:
        ctx["mentions"]["color"] = True
        en = p.color.lower()
        if ctx["lang"] == "en":
            return self._entity(en, "COLOR")
        masc, fem = self.colors.get(en, (p.color_es.lower() or en, p.color_es.lower() or en))
        return self._entity(fem if ctx["feminine"] else masc, "COLOR")

    def _item(self, p: Product, ctx: dict, brand_required: bool = False) -> list[Piece]:
        """A product mention: PRODUCT plus, maybe, BRAND, SIZE and COLOR in a natural order."""
        rng, lang = self.rng, ctx["lang"]
        with_brand = bool(p.brand) and (brand_required or rng.random() < 0.85)
        with_size = bool(p.size) and not brand_required and rng.random() < 0.4
        with_color = bool(p.color) and not brand_required and rng.random() < 0.5
        b = [self._brand(p, ctx)] if with_brand else []
        prod = [self._product(p, ctx)]
        c = [self._color(p, ctx)] if with_color else []
        s = self._size(p, ctx) if with_size else []
        r = rng.random()
        if lang == "en":
            unit_size = bool(s) and not s[0].text.startswith("size")
            if unit_size and r < 0.3:
                return c + b + s + prod  # "samsung fifty five inch tv"
            if c and r < 0.45:
                return b + prod + self._words("in") + c + s  # "nike shoes in black"
            if b and r < 0.52:
                return c + prod + self._words(rng.choice(["from", "by"])) + b + s
            return c + b + prod + s
        de_size = (self._words("de") if s and rng.random() < 0.3 else []) + s
        if r < 0.45:
            return prod + b + c + de_size  # "pañales huggies talla cuatro"
        if r < 0.7:
            return b + prod + c + de_size  # "huggies pañales"
        if b and r < 0.85:
            return prod + c + self._words(rng.choice(["de", "marca"])) + b + de_size
        return prod + c + de_size + b

    def _bp(self, p: Product, ctx: dict) -> list[Piece]:
        b, prod = [self._brand(p, ctx)], [self._product(p, ctx)]
        if ctx["lang"] == "es" and self.rng.random() < 0.5:
            return prod + b
        return b + prod

    def _art(self, ctx: dict, prev: Piece | None) -> list[Piece]:
        if ctx["lang"] == "en":
            return self._words("the") if self.rng.random() < 0.55 else []
        if self.rng.random() < 0.2:
            return []
        fem, plural = ctx["feminine"], ctx["plural"]
        art = ("las" if fem else "los") if plural else ("la" if fem else "el")
        if art == "el" and prev is not None and prev.label is None and prev.text in ("de", "a"):
            prev.text = "del" if prev.text == "de" else "al"
            return []
        return self._words(art)

    def _date(self, ctx: dict, prev: Piece | None, tense: str = "") -> list[Piece]:
        """A DATE; `tense` "<" excludes future dates (sales), ">" excludes past ones (shifts)."""
        lang = ctx["lang"]
        excluded = self.lex["date_tense"][lang].get({"<": "future", ">": "past"}.get(tense, ""), [])
        date = self.rng.choice([d for d in self.lex["dates"][lang] if d not in excluded])
        prep = self.lex["date_preps"][lang].get(date)
        out = []
        if (
            prep
            and (prev is None or prev.text not in ("on", "for", "from"))
            and self.rng.random() < 0.7
        ):
            out = self._words(prep)
        if lang == "en" and date.startswith("the "):
            # "the day after tomorrow": the article stays outside the span (ANNOTATION.md);
            # Spanish keeps its article inside, as in the guide's "[el viernes]".
            out, date = out + self._words("the"), date[4:]
        return out + [self._entity(date, "DATE")]

    def _person(self, ctx: dict) -> Piece:
        rng, lang = self.rng, ctx["lang"]
        pool_lang = lang if rng.random() < 0.75 else ("es" if lang == "en" else "en")
        names = ctx["people"][pool_lang]
        name = rng.choice(names)
        while name in ctx["used_names"] and len(names) > len(ctx["used_names"]):
            name = rng.choice(names)
        ctx["used_names"].add(name)
        if rng.random() < 0.2:
            name = f"{name} {rng.choice(self.lex['last_names'][pool_lang])}"
        return self._entity(name if ctx["cased"] else name.lower(), "PERSON")

    def _store(self, ctx: dict) -> Piece:
        rng, lang = self.rng, ctx["lang"]
        n = rng.choice([rng.randint(1, 99), rng.randint(100, 999), rng.randint(1000, 9999)])
        num = self._number(n, lang, ctx["as_words"] and n < 1000)
        head = rng.choice(
            ["store", "store", "store number"]
            if lang == "en"
            else ["tienda", "tienda", "sucursal", "tienda número"]
        )
        return self._entity(f"{head} {num}", "STORE")

    def _department(self, ctx: dict) -> Piece:
        p: Product | None = ctx["product"]
        if p is not None and p.department and self.rng.random() < 0.9:
            # "where are the diapers in baby": the product's own department, mostly
            en, es = p.department, p.department_es or p.department
        else:
            pool = self.departments if self.rng.random() < 0.8 else self.lex_departments
            en, es = self.rng.choice(pool)
        return self._entity((en if ctx["lang"] == "en" else es).lower(), "DEPARTMENT")

    # -- template expansion ------------------------------------------------------------------
    def _expand_choices(self, text: str, plural: bool) -> str:
        text = _AGREE_RE.sub(lambda m: m.group(1) if plural else m.group(2), text)
        text = _OPT_RE.sub(lambda m: m.group(1) if self.rng.random() < 0.4 else "", text)
        return _ALT_RE.sub(lambda m: self.rng.choice(m.group(1).split("|")), text)

    def _literal(self, text: str, pieces: list[Piece], after_entity: bool) -> None:
        # Only an entity slot glues to the text right after it ("{PERSON}'s"); a literal
        # after {pre}, {art} or {f} always starts a new word.
        space_before = not after_entity
        for m in _WORD_RE.finditer(text):
            tok = m.group(0)
            if tok.isspace():
                space_before = True
                continue
            if tok in "¿¡":
                pieces.append(Piece(tok, kind="open", glue=not space_before and bool(pieces)))
            elif tok in ",?!.":
                pieces.append(Piece(tok, kind="punct", glue=True))
            else:
                pieces.append(Piece(tok, glue=not space_before and bool(pieces)))
            space_before = False

    def _slot(self, name: str, p: Product | None, ctx: dict, pieces: list[Piece]) -> list[Piece]:
        rng, lang = self.rng, ctx["lang"]
        prev = pieces[-1] if pieces else None
        if name == "pre":
            if rng.random() >= 0.35:
                return []
            r = rng.random()
            if r < 0.4:
                out = self._filler(lang)
            elif r < 0.85:
                out = self._words(rng.choice(self.lex["polite_prefix"][lang]), "filler")
            else:
                out = self._filler(lang) + self._words(
                    rng.choice(self.lex["polite_prefix"][lang]), "filler"
                )
            return out + ([Piece(",", kind="punct", glue=True)] if rng.random() < 0.5 else [])
        if name == "post":
            if rng.random() >= 0.2:
                return []
            return [Piece(",", kind="punct", glue=True)] + self._words(
                rng.choice(self.lex["polite_suffix"][lang]), "filler"
            )
        if name == "f":
            return self._filler(lang) if rng.random() < 0.3 else []
        if name == "art":
            return self._art(ctx, prev)
        if name == "cuantos":
            return self._words("cuántas" if ctx["feminine"] else "cuántos")
        if name == "ITEM":
            return self._item(p, ctx)
        if name == "BP":
            return self._bp(p, ctx)
        if name == "BRAND":
            return [self._brand(p, ctx)]
        if name == "PRODUCT":
            return [self._product(p, ctx)]
        if name == "SIZE":
            return self._size(p, ctx)
        if name == "COLOR":
            return [self._color(p, ctx)]
        if name.startswith("DATE"):
            return self._date(ctx, prev, name[4:])
        if name == "PERSON":
            return [self._person(ctx)]
        if name == "STORE":
            return [self._store(ctx)]
        if name == "DEPARTMENT":
            return [self._department(ctx)]
        raise ValueError(f"unknown slot {{{name}}}")

    def render(
        self,
        template: Template,
        product: Product | None,
        people: dict[str, list[str]],
        extra_fillers: float = 0.0,
    ) -> Rendered:
        """Fill `template` with `product` (None for templates without product slots).

        Args:
            people: first names by language ("en"/"es") this split may use.
            extra_fillers: added probability of a hesitation filler at a word boundary
                (the unlabelled pool uses more fillers than the labelled sets).
        """
        rng, lang = self.rng, template.language
        feminine, plural = es_gender_number(product.product_es) if product else (False, False)
        ctx = {
            "lang": lang,
            "cased": rng.random() < 0.3,  # Whisper's own style: sentence case and punctuation
            "as_words": rng.random() < 0.5,
            "p_mishear_brand": 0.3,
            "p_mishear_product": 0.05,
            "noisy": False,
            "mentions": {},
            "feminine": feminine,
            "plural": plural,
            "people": people,
            "used_names": set(),
            "product": product,
        }
        pieces: list[Piece] = []
        after_entity = False
        en_plural = product is not None and en_plural_noun(product.product_en)
        agree_plural = plural if lang == "es" else en_plural
        for part in _SLOT_RE.split(self._expand_choices(template.text, agree_plural)):
            if not part:
                continue
            if _SLOT_RE.fullmatch(part):
                name = part[1:-1]
                new = self._slot(name, product, ctx, pieces)
                for piece in new[:1]:
                    piece.glue = piece.kind == "punct"
                pieces.extend(new)
                after_entity = bool(new) and name.rstrip("<>") in ("ITEM", "BP", *ENTITY_SLOTS)
            else:
                self._literal(part, pieces, after_entity)
                after_entity = False
        pieces = self._disfluencies(pieces, lang, 0.08 + extra_fillers)
        pieces = self._surface(pieces, ctx)
        return self._assemble(pieces, ctx)

    def _disfluencies(self, pieces: list[Piece], lang: str, p_filler: float) -> list[Piece]:
        rng = self.rng
        if rng.random() < p_filler and len(pieces) > 2:
            at = rng.randrange(1, len(pieces))
            if not pieces[at].glue and pieces[at - 1].kind != "open":
                pieces = pieces[:at] + self._filler(lang) + pieces[at:]
        if rng.random() < 0.03:
            plain = [i for i, x in enumerate(pieces) if x.label is None and x.kind == "word"]
            if plain:
                i = rng.choice(plain)
                pieces.insert(i, Piece(pieces[i].text, glue=pieces[i].glue))
                pieces[i + 1].glue = False
        return pieces

    def _surface(self, pieces: list[Piece], ctx: dict) -> list[Piece]:
        """Case, punctuation and accents, the way an ASR system writes them."""
        rng, lang = self.rng, ctx["lang"]
        r = rng.random()
        punct = "full" if ctx["cased"] or r < 0.15 else ("end" if r < 0.3 else "none")
        drop_open = lang == "es" and rng.random() < 0.3
        drop_accents = rng.random() < (0.25 if lang == "es" else 0.05)
        out: list[Piece] = []
        for i, piece in enumerate(pieces):
            if piece.kind in ("punct", "open"):
                last = i == len(pieces) - 1
                if (
                    punct == "none"
                    or (punct == "end" and not last)
                    or (piece.kind == "open" and drop_open)
                ):
                    if piece.kind == "open" and i + 1 < len(pieces):
                        pieces[i + 1].glue = False
                    continue
            if piece.label is None or piece.label not in ("BRAND", "PERSON") or not ctx["cased"]:
                piece.text = piece.text.lower()
            if drop_accents:
                piece.text = strip_accents(piece.text, keep_enye=rng.random() < 0.7)
                ctx["noisy"] = ctx["noisy"] or lang == "es"
            out.append(piece)
        if punct == "end" and out and out[-1].kind != "punct":
            out.append(Piece("?" if rng.random() < 0.8 else ".", kind="punct", glue=True))
        if ctx["cased"] and out:
            first = next((x for x in out if x.kind != "open"), None)
            if first is not None and first.text:
                first.text = first.text[0].upper() + first.text[1:]
        return out

    def _assemble(self, pieces: list[Piece], ctx: dict) -> Rendered:
        text = ""
        entities = []
        prev: Piece | None = None
        for piece in pieces:
            if not piece.text:
                continue
            if text and not piece.glue and not (prev is not None and prev.kind == "open"):
                text += " "
            start = len(text)
            text += piece.text
            if piece.label:
                entities.append(
                    {"label": piece.label, "start": start, "end": len(text), "text": piece.text}
                )
            prev = piece
        return Rendered(text=text, entities=entities, noisy=ctx["noisy"], mentions=ctx["mentions"])
