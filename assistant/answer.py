"""Answers in the associate's language: NluResult + store -> Answer (text + structured products).

`Answerer(inventory, linker).answer(nlu, store, nbest=None)` handles every intent:
location (aisle, bay, department), stock (on hand, on order, nearby stores), top sellers
(department, period), associate schedules, out of scope, not found (closest items) and
ambiguous (asks back with the top candidates). assistant.pipeline.build_assistant wires
parser + linker + answerer once; the server runs answers through assistant.answer_stage.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from dataclasses import dataclass, field, replace

from asr.nbest import NBest
from assistant.dates import PERIOD_NAMES, WEEKDAYS, day_of, period_of
from assistant.inventory import Inventory, ProductRecord
from assistant.linker import Candidate, Linker, LinkResult
from nlu.schema import Entity, NluResult, Parser
from textnorm import fold

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProductHit:
    """A product with where it is and how many there are in the asked store."""

    sku: str
    brand: str
    name: str
    size: str | None
    aisle: str | None
    bay: int | None
    on_hand: int | None
    on_order: int | None
    department: str
    units_sold: int | None = None  # top sellers only

    def to_dict(self) -> dict:
        out = {
            "sku": self.sku,
            "brand": self.brand,
            "name": self.name,
            "size": self.size,
            "aisle": self.aisle,
            "bay": self.bay,
            "on_hand": self.on_hand,
            "on_order": self.on_order,
            "department": self.department,
        }
        if self.units_sold is not None:
            out["units_sold"] = self.units_sold
        return out


@dataclass(frozen=True)
class Answer:
    """What the associate is told. kind: location | stock | top_sellers | schedule |
    out_of_scope | not_found | ambiguous | no_store."""

    text: str
    language: str
    intent: str
    kind: str
    products: tuple[ProductHit, ...] = ()
    candidates: tuple[ProductHit, ...] = ()
    store: str = ""
    details: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        """DESIGN.md: {"text", "language", "products": [...]} plus intent, kind, candidates."""
        return {
            "text": self.text,
            "language": self.language,
            "intent": self.intent,
            "kind": self.kind,
            "store": self.store,
            "products": [p.to_dict() for p in self.products],
            "candidates": [c.to_dict() for c in self.candidates],
            **self.details,
        }


def _say(language: str, en: str, es: str) -> str:
    return es if language == "es" else en


class Answerer:
    """NluResult -> Answer, from the inventory; one verb: `answer`."""

    def __init__(
        self,
        inventory: Inventory,
        linker: Linker,
        parser: Parser | None = None,
        joint: bool = True,
    ):
        self.inventory = inventory
        self.linker = linker
        self.parser = parser  # re-parses n-best alternatives; None: text n-gram search
        # True: intent and SKU decided from every hypothesis of the n-best list together
        # (Linker.link_joint); False: the top hypothesis, then the n-best only when it links
        # nothing (the behaviour before issue 16, kept for the evaluation's comparison)
        self.joint = joint
        # the joint state of the answer in progress, per thread: the server answers on
        # several threads at once with one Answerer (assistant.answer_stage)
        self._calls = threading.local()

    def joint_intent(self, nlus: list[NluResult], weights: list[float]) -> str:
        """The intent with the most posterior-weighted confidence over the hypotheses."""
        mass: dict[str, float] = {}
        for nlu, w in zip(nlus, weights, strict=True):
            mass[nlu.intent] = mass.get(nlu.intent, 0.0) + w * nlu.intent_score
        return max(mass, key=lambda k: (mass[k], k == nlus[0].intent))

    def answer(
        self,
        nlu: NluResult,
        store: str = "1",
        nbest: NBest | None = None,
        today: dt.date | None = None,
        nlus: list[NluResult] | None = None,
    ) -> Answer:
        """nlus: the parses of every hypothesis of `nbest` (one batched call); parsed here
        with `parser` when absent and the answer is joint."""
        self._calls.joint = None
        if self.joint and nbest is not None and len(nbest.hypotheses) > 1:
            if nlus is None and self.parser is not None:
                nlus = self.parser.parse_batch(
                    [h.text for h in nbest.hypotheses], [nbest.language] * len(nbest.hypotheses)
                )
            if nlus is not None and len(nlus) == len(nbest.hypotheses):
                weights = self.linker.posteriors(nbest)
                intent = self.joint_intent(nlus, weights)
                if intent != nlu.intent:
                    nlu = replace(nlu, intent=intent)
                self._calls.joint = (nlus, weights)
        lang = nlu.language if nlu.language in ("en", "es") else "en"
        store = self._store(nlu, store)
        if self.inventory.store(store) is None:
            known = ", ".join(sorted(self.inventory.stores()))
            text = _say(
                lang,
                f"I don't know store {store}. Stores: {known}.",
                f"No conozco la tienda {store}. Tiendas: {known}.",
            )
            return Answer(text, lang, nlu.intent, "no_store", store=store)
        if nlu.intent in ("find_product", "check_stock"):
            return self._product(nlu, lang, store, nbest)
        if nlu.intent == "top_sellers":
            return self._top_sellers(nlu, lang, store)
        if nlu.intent == "associate_schedule":
            return self._schedule(nlu, lang, store, today or dt.date.today())
        text = _say(
            lang,
            "Sorry, I can only help with where products are, stock, top sellers and schedules.",
            "Lo siento, solo puedo ayudar con ubicación de productos, existencias, lo más vendido y horarios.",
        )
        return Answer(text, lang, nlu.intent, "out_of_scope", store=store)

    # -- helpers -----------------------------------------------------------------------------

    def _store(self, nlu: NluResult, default: str) -> str:
        mention = nlu.first("STORE")
        if mention:
            number = re.search(r"\d+", mention.text)
            if number and self.inventory.store(number.group(0)):
                return number.group(0)
        return str(default)

    def _hit(self, p: ProductRecord, store: str, lang: str, units: int | None = None) -> ProductHit:
        where = self.inventory.location(p.sku, store)
        stock = self.inventory.stock(p.sku, store)
        dept = self.inventory.departments()[p.department_id]
        return ProductHit(
            p.sku,
            p.brand,
            p.name(lang),
            p.size_es if lang == "es" else p.size,
            where[0] if where else None,
            where[1] if where else None,
            stock[0] if stock else None,
            stock[1] if stock else None,
            dept.name(lang),
            units,
        )

    def _link(self, nlu: NluResult, nbest: NBest | None) -> LinkResult:
        state = getattr(self._calls, "joint", None)
        if state is not None:
            nlus, weights = state
            return self.linker.link_joint(nlus, weights, nlu.intent)
        result = self.linker.link(nlu)
        if not result.candidates and nbest is not None and len(nbest.hypotheses) > 1:
            result = self.linker.link_nbest(nbest, self.parser)
        return result

    # -- product questions -------------------------------------------------------------------

    def _product(self, nlu: NluResult, lang: str, store: str, nbest: NBest | None) -> Answer:
        result = self._link(nlu, nbest)
        details: dict = {}
        if result.source == "joint":
            details["understood_from"] = {
                "hypothesis": result.hypothesis,
                "support": result.support,
            }
        if not result.candidates:
            return self._not_found(nlu, lang, store, result, details)
        if result.ambiguous:
            kind = self._product_type_answer(nlu, lang, store, result, details)
            if kind is not None:
                return kind
            lines = result.lines(3)
            hits = tuple(self._hit(c.product, store, lang) for c in lines)
            aisles = {(h.aisle, h.department) for h in hits}
            names = _join([h.name for h in hits], lang, "or")
            if nlu.intent == "find_product" and len(aisles) == 1 and hits[0].aisle:
                # every candidate sits in the same aisle: answer that and still ask which one
                text = _say(
                    lang,
                    f"Those are in aisle {hits[0].aisle} ({hits[0].department}). Which one do you mean: {names}?",
                    f"Están en el pasillo {hits[0].aisle} ({hits[0].department}). ¿Cuál busca: {names}?",
                )
            else:
                text = _say(
                    lang, f"Which one do you mean: {names}?", f"¿Cuál de estos busca: {names}?"
                )
            return Answer(
                text, lang, nlu.intent, "ambiguous", candidates=hits, store=store, details=details
            )
        best = result.best
        assert best is not None
        fits = _fits([c for c in result.candidates if c.product.line == best.product.line])
        asked = [w for w in (result.size, result.color) if w]
        if not fits:
            return self._variant_missing(nlu, lang, store, best.product, asked, details)
        if nlu.intent == "find_product":
            hits = tuple(self._hit(c.product, store, lang) for c in fits)
            hit = hits[0]
            if hit.aisle is None:
                text = _say(
                    lang,
                    f"{hit.name} is not carried in this store.",
                    f"{hit.name} no se maneja en esta tienda.",
                )
                return Answer(
                    text,
                    lang,
                    nlu.intent,
                    "not_found",
                    candidates=(hit,),
                    store=store,
                    details=details,
                )
            aisles = {h.aisle for h in hits if h.aisle}
            if len(hits) > 1 and len(aisles) == 1:
                # the product line, not one variant: "Gildan T-Shirts are in aisle 15, bay 8"
                name = _line_name(best.product, lang)
                details["variants"] = len(hits)
                bay = _bays(hits)
                text = _say(
                    lang,
                    f"{name}: aisle {hit.aisle}, bay {bay} ({hit.department}).",
                    f"{name}: pasillo {hit.aisle}, sección {bay} ({hit.department}).",
                )
                return Answer(
                    text, lang, nlu.intent, "location", products=hits, store=store, details=details
                )
            if len(hits) > 1:
                names = _join([h.name for h in hits[:3]], lang, "or")
                text = _say(
                    lang, f"Which one do you mean: {names}?", f"¿Cuál de estos busca: {names}?"
                )
                return Answer(
                    text,
                    lang,
                    nlu.intent,
                    "ambiguous",
                    candidates=hits[:3],
                    store=store,
                    details=details,
                )
            text = _say(
                lang,
                f"{hit.name} is in aisle {hit.aisle}, bay {hit.bay} ({hit.department}).",
                f"{hit.name} está en el pasillo {hit.aisle}, sección {hit.bay} ({hit.department}).",
            )
            return Answer(
                text, lang, nlu.intent, "location", products=(hit,), store=store, details=details
            )
        return self._stock(nlu, lang, store, [c.product for c in fits], details)

    def _product_type_answer(
        self, nlu: NluResult, lang: str, store: str, result: LinkResult, details: dict
    ) -> Answer | None:
        """A product type asked for with no brand ("where are the socks?", "are there more
        buns in the back?"): every line of the type fits equally, so answer for all of them
        (their aisles; the stock of each) instead of asking which brand. None when a brand
        counted in the link, the top lines are of different types, none of them has the
        size asked, or they lie in more than three aisles."""
        lines = result.lines(limit=12)
        top = lines[0].score
        lines = [c for c in lines if c.score >= top - self.linker.config.ambiguity_margin]
        if any(c.brand_score is not None for c in lines):
            return None
        if len({c.product.type_id for c in lines}) != 1:
            return None
        # a brand the parse missed but the text says ("the tv by onn"): only its lines
        said = [c for c in lines if _says(nlu.text, c.product.brand)]
        lines = said or lines
        by_line = {
            c.product.line: _fits(self.linker.variants(c.product.line, result.size, result.color))
            for c in lines
        }
        by_line = {line: fits for line, fits in by_line.items() if fits}
        if not by_line:
            return None
        details["product_type"] = lines[0].product.type_id
        first = lines[0].product
        name = first.product_es if lang == "es" else first.product_en
        name = name[:1].upper() + name[1:]
        if nlu.intent == "check_stock":
            return self._type_stock(nlu, lang, store, name, by_line, details)
        hits = tuple(self._hit(c.product, store, lang) for fits in by_line.values() for c in fits)
        placed = [h for h in hits if h.aisle]
        aisles = list(dict.fromkeys(h.aisle for h in placed))  # best line's first
        if not placed or len(aisles) > 3:
            return None
        parts = []
        for aisle in aisles:
            here = [h for h in placed if h.aisle == aisle]
            bay = _bays(here)
            brands = _join(sorted({h.brand for h in here}), lang)
            parts.append(
                _say(
                    lang,
                    f"aisle {aisle}, bay {bay} ({here[0].department}: {brands})",
                    f"pasillo {aisle}, sección {bay} ({here[0].department}: {brands})",
                )
            )
        details["variants"] = len(placed)
        return Answer(
            f"{name}: {'; '.join(parts)}.",
            lang,
            nlu.intent,
            "location",
            products=tuple(placed),
            store=store,
            details=details,
        )

    def _type_stock(
        self,
        nlu: NluResult,
        lang: str,
        store: str,
        name: str,
        by_line: dict[str, list[Candidate]],
        details: dict,
    ) -> Answer:
        """Stock of a product type: one SKU per line when the size and colour pin it down
        (that SKU's stock), else each line's total over the variants that fit."""
        if all(len(fits) == 1 for fits in by_line.values()):
            return self._stock(nlu, lang, store, [f[0].product for f in by_line.values()], details)
        parts, hits = [], []
        for fits in list(by_line.values())[:5]:
            hit = self._hit(fits[0].product, store, lang)
            units = sum((self.inventory.stock(c.sku, store) or (0, 0))[0] for c in fits)
            where = (
                _say(lang, f", aisle {hit.aisle}", f", pasillo {hit.aisle}") if hit.aisle else ""
            )
            parts.append(
                _say(
                    lang,
                    f"{hit.brand} {units} in {len(fits)} variants{where}",
                    f"{hit.brand} {units} en {len(fits)} variantes{where}",
                )
            )
            hits.append(hit)
        details["variants"] = sum(len(f) for f in by_line.values())
        text = _say(lang, f"{name} on hand: ", f"{name} en existencia: ") + "; ".join(parts) + "."
        return Answer(
            text, lang, nlu.intent, "stock", products=tuple(hits), store=store, details=details
        )

    def _not_found(
        self, nlu: NluResult, lang: str, store: str, result: LinkResult, details: dict
    ) -> Answer:
        """Honest: nothing in the catalog is what was asked; name it and offer the closest."""
        missing = result.missing
        if missing:
            said = " ".join(
                e.text for e in nlu.entities if e.label in ("BRAND", "PRODUCT")
            ) or " ".join(w for w in (missing.get("brand"), missing.get("product")) if w)
            type_id = missing.get("type")
            # the same product type from other brands; else only names that look alike
            close_products = (
                self.linker.closest_of_type(type_id)
                if type_id
                else self.linker.closest(missing.get("product") or said, min_score=0.7)
            )
            close = tuple(self._hit(p, store, lang) for p in close_products)
            names = _join([c.name for c in close], lang, "or")
            details["not_carried"] = missing
            text = _say(lang, f"We don't carry {said}.", f"No manejamos {said}.")
            if close:
                text += _say(lang, f" Closest items: {names}.", f" Lo más parecido: {names}.")
            return Answer(
                text, lang, nlu.intent, "not_found", candidates=close, store=store, details=details
            )
        query = (
            " ".join(e.text for e in nlu.entities if e.label in ("BRAND", "PRODUCT")) or nlu.text
        )
        close = tuple(self._hit(p, store, lang) for p in self.linker.closest(query))
        names = _join([c.name for c in close], lang, "or")
        text = _say(
            lang,
            f"I couldn't find that in the catalog. Closest items: {names}.",
            f"No encontré ese producto en el catálogo. Lo más parecido: {names}.",
        )
        return Answer(
            text, lang, nlu.intent, "not_found", candidates=close, store=store, details=details
        )

    def _variant_missing(
        self,
        nlu: NluResult,
        lang: str,
        store: str,
        product: ProductRecord,
        asked: list[str],
        details: dict,
    ) -> Answer:
        """The line exists, but not in the size/colour asked: say so and list what there is."""
        variants = self.linker.line_products(product.line)
        hits = tuple(self._hit(p, store, lang) for p in sorted(variants, key=_variant_order)[:6])
        name = _line_name(product, lang)
        have = _join(
            sorted({_variant_label(p, lang) for p in variants if _variant_label(p, lang)}), lang
        )
        want = " ".join(asked)
        details["not_carried"] = {"reason": "variant", "line": product.line, "asked": want}
        text = _say(
            lang,
            f"We don't have {name} in {want}. We have: {have}.",
            f"No tenemos {name} en {want}. Tenemos: {have}.",
        )
        return Answer(
            text, lang, nlu.intent, "not_found", candidates=hits, store=store, details=details
        )

    def _stock(
        self,
        nlu: NluResult,
        lang: str,
        store: str,
        products: list[ProductRecord],
        details: dict | None = None,
    ) -> Answer:
        details = dict(details or {})
        # one variant asked: that SKU; the line (or the variants that fit): a few of them
        hits = tuple(self._hit(p, store, lang) for p in products[:4])
        parts = []
        for h in hits:
            label = h.name
            if h.on_hand:
                part = _say(
                    lang, f"{label}: {h.on_hand} on hand", f"{label}: {h.on_hand} en existencia"
                )
            else:
                part = _say(lang, f"{label}: out of stock", f"{label}: agotado")
            if h.on_order:
                part += _say(lang, f", {h.on_order} on order", f", {h.on_order} en pedido")
            if h.aisle:
                part += _say(
                    lang,
                    f" (aisle {h.aisle}, bay {h.bay})",
                    f" (pasillo {h.aisle}, sección {h.bay})",
                )
            parts.append(part)
        text = "; ".join(parts) + "."
        if len(products) > len(hits):
            total = sum((self.inventory.stock(p.sku, store) or (0, 0))[0] for p in products)
            details["variants"] = len(products)
            text += _say(
                lang,
                f" {len(products)} variants, {total} on hand in all.",
                f" {len(products)} variantes, {total} en existencia en total.",
            )
        first = hits[0]
        if not first.on_hand:
            nearby = self.inventory.nearby_stock(first.sku, store, limit=2)
            if nearby:
                near = _join([f"{s.name} ({n})" for s, _km, n in nearby], lang)
                text += _say(
                    lang,
                    f" Nearby stores with stock: {near}.",
                    f" Tiendas cercanas con existencia: {near}.",
                )
                details["nearby"] = [
                    {"store": s.id, "name": s.name, "distance_km": round(km, 1), "on_hand": n}
                    for s, km, n in nearby
                ]
        return Answer(text, lang, nlu.intent, "stock", products=hits, store=store, details=details)

    # -- top sellers -------------------------------------------------------------------------

    def _department(self, phrase: str) -> str | None:
        """The department a phrase names (spelling and sound, Linker.link_department)."""
        return self.linker.link_department(phrase)[0]

    def _period(self, nlu: NluResult) -> str:
        date = nlu.first("DATE")
        return period_of(date.text if date else "")

    def _top_sellers(self, nlu: NluResult, lang: str, store: str) -> Answer:
        dept_id = None
        mention = nlu.first("DEPARTMENT") or nlu.first("PRODUCT")
        if mention:
            dept_id = self._department(mention.text)
            if dept_id is None and mention.label == "PRODUCT":
                linked = self.linker.link_spans(None, mention.text)
                dept_id = linked.best.product.department_id if linked.best else None
        period = self._period(nlu)
        end = self.inventory.as_of()
        start, end = {
            "today": (end, end),
            "yesterday": (end - dt.timedelta(days=1), end - dt.timedelta(days=1)),
            "this_week": (end - dt.timedelta(days=6), end),
            "last_week": (end - dt.timedelta(days=13), end - dt.timedelta(days=7)),
            "this_month": (end - dt.timedelta(days=27), end),
        }[period]
        rows = self.inventory.top_sellers(store, start, end, dept_id, limit=5)
        hits = tuple(self._hit(p, store, lang, units) for p, units in rows)
        dept = (
            self.inventory.departments()[dept_id].name(lang)
            if dept_id
            else _say(lang, "the whole store", "toda la tienda")
        )
        when = PERIOD_NAMES[period][1 if lang == "es" else 0]
        details = {
            "department": dept_id,
            "period": period,
            "start": start.isoformat(),
            "end": end.isoformat(),
        }
        if not hits:
            text = _say(lang, f"No sales in {dept} {when}.", f"No hay ventas en {dept} {when}.")
            return Answer(text, lang, nlu.intent, "top_sellers", store=store, details=details)
        listing = _join([f"{h.name} ({h.units_sold})" for h in hits[:3]], lang)
        text = _say(
            lang,
            f"Top sellers in {dept} {when}: {listing}.",
            f"Lo más vendido en {dept} {when}: {listing}.",
        )
        return Answer(
            text, lang, nlu.intent, "top_sellers", products=hits, store=store, details=details
        )

    # -- schedules ---------------------------------------------------------------------------

    def _day(self, nlu: NluResult, today: dt.date) -> dt.date:
        date = nlu.first("DATE")
        return day_of(date.text if date else "", today)

    def _schedule(self, nlu: NluResult, lang: str, store: str, today: dt.date) -> Answer:
        day = self._day(nlu, today)
        dayname = WEEKDAYS[lang][day.weekday()]
        person = nlu.first("PERSON")
        dept_mention = nlu.first("DEPARTMENT")
        dept_id = self._department(dept_mention.text) if dept_mention else None
        details: dict = {"date": day.isoformat(), "weekday": day.weekday(), "department": dept_id}
        linked = None
        if person:
            linked = self.linker.link_person(person.text, store)
        elif dept_id is None:
            # no PERSON span ("a qué hora entra cuantereces"): a roster name heard well
            linked = self.linker.find_person(nlu.text, store)
            person = nlu if linked.associates else None
        if person:
            said = person.text if isinstance(person, Entity) else ""
            if not linked.associates:
                text = _say(
                    lang,
                    f"I can't find {said} in this store's schedule.",
                    f"No encuentro a {said} en los horarios de esta tienda.",
                )
                return Answer(text, lang, nlu.intent, "schedule", store=store, details=details)
            if linked.ask:
                names = _join([a.full_name for a in linked.associates], lang, "or")
                details["people"] = [a.full_name for a in linked.associates]
                text = _say(lang, f"Who do you mean: {names}?", f"¿A quién se refiere: {names}?")
                return Answer(text, lang, nlu.intent, "ambiguous", store=store, details=details)
            matches = [a.id for a in linked.associates]
            lines, entries = [], []
            by_id = {a.id: a for a in linked.associates}
            for aid in matches[:3]:
                a = by_id[aid]
                shift = next(
                    ((s, e) for wd, s, e in self.inventory.week(aid) if wd == day.weekday()), None
                )
                if shift:
                    lines.append(
                        _say(
                            lang,
                            f"{a.full_name} works {dayname} from {shift[0]} to {shift[1]}",
                            f"{a.full_name} trabaja el {dayname} de {shift[0]} a {shift[1]}",
                        )
                    )
                else:
                    lines.append(
                        _say(
                            lang,
                            f"{a.full_name} is off on {dayname}",
                            f"{a.full_name} descansa el {dayname}",
                        )
                    )
                entries.append(
                    {
                        "name": a.full_name,
                        "start": shift[0] if shift else None,
                        "end": shift[1] if shift else None,
                    }
                )
            details["schedule"] = entries
            return Answer(
                "; ".join(lines) + ".", lang, nlu.intent, "schedule", store=store, details=details
            )
        shifts = self.inventory.shifts(store, day.weekday(), dept_id)
        dept = (
            self.inventory.departments()[dept_id].name(lang)
            if dept_id
            else _say(lang, "the store", "la tienda")
        )
        details["schedule"] = [
            {"name": s.associate.full_name, "start": s.start, "end": s.end} for s in shifts
        ]
        if not shifts:
            text = _say(
                lang,
                f"Nobody is scheduled in {dept} on {dayname}.",
                f"Nadie tiene turno en {dept} el {dayname}.",
            )
        else:
            who = _join([f"{s.associate.full_name} ({s.start}-{s.end})" for s in shifts[:6]], lang)
            text = _say(
                lang,
                f"Working in {dept} on {dayname}: {who}.",
                f"Trabajan en {dept} el {dayname}: {who}.",
            )
        return Answer(text, lang, nlu.intent, "schedule", store=store, details=details)


def _join(items: list[str], lang: str, conjunction: str = "and") -> str:
    """["a", "b", "c"] -> "a, b and c" ("y" in Spanish); conjunction "or" -> "or"/"o"."""
    if len(items) <= 1:
        return "".join(items)
    word = _say(lang, " or ", " o ") if conjunction == "or" else _say(lang, " and ", " y ")
    return ", ".join(items[:-1]) + word + items[-1]


VARIANT_MATCH = 0.9  # a SKU's size/colour this close to the query's words is the one asked


def _bays(hits) -> str:
    """The bay, or the range of bays, of products in one aisle: "8" or "3-10"."""
    bays = sorted({h.bay for h in hits if h.bay is not None})
    return str(bays[0]) if len(bays) == 1 else f"{bays[0]}-{bays[-1]}"


def _says(text: str, name: str) -> bool:
    """Whether `text` holds `name` as whole words, ignoring case, accents and punctuation."""
    words = lambda t: re.sub(r"[^\w]+", " ", fold(t)).split()  # noqa: E731
    said, want = words(text), words(name)
    n = len(want)
    return n > 0 and any(said[i : i + n] == want for i in range(len(said) - n + 1))


def _fits(line: list[Candidate]) -> list[Candidate]:
    """The SKUs of one line the query's size and colour allow (all of them when it gave
    none): at least VARIANT_MATCH, and only the best-matching form when several pass
    ("extra large" is Extra Large, not also Large)."""
    fits = list(line)
    for attr in ("size_score", "color_score"):
        fits = [c for c in fits if getattr(c, attr) is None or getattr(c, attr) >= VARIANT_MATCH]
        scores = [getattr(c, attr) for c in fits if getattr(c, attr) is not None]
        if scores:
            top = max(scores)
            fits = [c for c in fits if getattr(c, attr) is None or getattr(c, attr) >= top - 1e-6]
    return fits


def _line_name(p: ProductRecord, lang: str) -> str:
    """The product line's name without its variant: "Gildan T-Shirts", "Pañales Huggies"."""
    return p.name(lang).split(",")[0]


def _variant_label(p: ProductRecord, lang: str) -> str:
    parts = [p.color_es if lang == "es" else p.color, p.size_es if lang == "es" else p.size]
    return " ".join(x for x in parts if x)


def _variant_order(p: ProductRecord) -> tuple:
    return (p.color or "", p.size or "", p.sku)
