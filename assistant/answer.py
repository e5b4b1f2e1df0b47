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
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from asr.nbest import NBest
from assistant.dates import PERIOD_NAMES, WEEKDAYS, day_of, period_of
from assistant.inventory import Inventory, ProductRecord
from assistant.linker import Linker, LinkResult
from nlu.schema import NluResult, Parser
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

    def __init__(self, inventory: Inventory, linker: Linker, parser: Parser | None = None):
        self.inventory = inventory
        self.linker = linker
        self.parser = parser  # re-parses n-best alternatives; None: text n-gram search

    def answer(
        self,
        nlu: NluResult,
        store: str = "1",
        nbest: NBest | None = None,
        today: dt.date | None = None,
    ) -> Answer:
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
        result = self.linker.link(nlu)
        if not result.candidates and nbest is not None and len(nbest.hypotheses) > 1:
            result = self.linker.link_nbest(nbest, self.parser)
        return result

    # -- product questions -------------------------------------------------------------------

    def _product(self, nlu: NluResult, lang: str, store: str, nbest: NBest | None) -> Answer:
        result = self._link(nlu, nbest)
        if not result.candidates:
            query = (
                " ".join(e.text for e in nlu.entities if e.label in ("BRAND", "PRODUCT"))
                or nlu.text
            )
            close = tuple(self._hit(p, store, lang) for p in self.linker.closest(query))
            names = _join([c.name for c in close], lang, "or")
            text = _say(
                lang,
                f"I couldn't find that in the catalog. Closest items: {names}.",
                f"No encontré ese producto en el catálogo. Lo más parecido: {names}.",
            )
            return Answer(text, lang, nlu.intent, "not_found", candidates=close, store=store)
        if result.ambiguous:
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
            return Answer(text, lang, nlu.intent, "ambiguous", candidates=hits, store=store)
        best = result.best
        assert best is not None
        if nlu.intent == "find_product":
            hit = self._hit(best.product, store, lang)
            if hit.aisle is None:
                text = _say(
                    lang,
                    f"{hit.name} is not carried in this store.",
                    f"{hit.name} no se maneja en esta tienda.",
                )
                return Answer(text, lang, nlu.intent, "not_found", candidates=(hit,), store=store)
            text = _say(
                lang,
                f"{hit.name} is in aisle {hit.aisle}, bay {hit.bay} ({hit.department}).",
                f"{hit.name} está en el pasillo {hit.aisle}, sección {hit.bay} ({hit.department}).",
            )
            return Answer(text, lang, nlu.intent, "location", products=(hit,), store=store)
        return self._stock(nlu, lang, store, result)

    def _stock(self, nlu: NluResult, lang: str, store: str, result: LinkResult) -> Answer:
        best = result.best
        assert best is not None
        # no size asked: every size of the line (a few); a size asked: that SKU
        if best.size_score is None:
            same_line = [
                c.product for c in result.candidates if c.product.line == best.product.line
            ][:4]
        else:
            same_line = [best.product]
        hits = tuple(self._hit(p, store, lang) for p in same_line)
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
        details: dict = {}
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
        departments = self.inventory.departments()
        forms = {}
        for d in departments.values():
            for name in (d.name_en, d.name_es, *d.aliases_en, *d.aliases_es):
                forms[fold(name)] = d.id
        match = process.extractOne(fold(phrase), list(forms), scorer=fuzz.ratio, score_cutoff=75)
        return forms[match[0]] if match else None

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
        if person:
            staff = self.inventory.associates(store)
            names = {a.id: fold(a.full_name) for a in staff}
            query = fold(person.text)
            scored = sorted(
                (
                    (max(fuzz.ratio(query, n), fuzz.ratio(query, n.split()[0])), aid)
                    for aid, n in names.items()
                ),
                reverse=True,
            )
            matches = [aid for s, aid in scored if s >= 80 and s >= scored[0][0] - 1]
            if not matches:
                text = _say(
                    lang,
                    f"I can't find {person.text} in this store's schedule.",
                    f"No encuentro a {person.text} en los horarios de esta tienda.",
                )
                return Answer(text, lang, nlu.intent, "schedule", store=store, details=details)
            lines, entries = [], []
            by_id = {a.id: a for a in staff}
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
