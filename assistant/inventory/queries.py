"""`Inventory`: the read API answers are built from (products, locations, stock, sales, schedules).

Opens the database read-only; every failure to reach or query it becomes
`InventoryUnavailable`, which the CLI prints as a clean message and the server sends as an
error event.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from assistant.env import database_url
from assistant.inventory import db
from assistant.inventory.db import InventoryUnavailable, open_engine

T = TypeVar("T")
SLOW_FAILURE_S = 1.0  # a database error that took longer: the server hangs (connect timeout)


@dataclass(frozen=True)
class Store:
    id: str
    name: str
    city: str
    country: str
    language: str
    lat: float
    lon: float


@dataclass(frozen=True)
class Department:
    id: str
    name_en: str
    name_es: str
    aliases_en: tuple[str, ...]
    aliases_es: tuple[str, ...]

    def name(self, language: str) -> str:
        return self.name_es if language == "es" else self.name_en


@dataclass(frozen=True)
class ProductRecord:
    """One catalog product (a SKU), as stored."""

    sku: str
    line: str
    brand: str
    name_en: str
    name_es: str
    product_en: str
    product_es: str
    type_id: str
    department_id: str
    size: str | None
    size_es: str | None
    color: str | None
    color_es: str | None

    def name(self, language: str) -> str:
        return self.name_es if language == "es" else self.name_en


@dataclass(frozen=True)
class Associate:
    id: int
    store_id: str
    first_name: str
    last_name: str
    department_id: str
    role_en: str
    role_es: str

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True)
class Shift:
    associate: Associate
    weekday: int  # 0 = Monday
    start: str  # "HH:MM"
    end: str


def _guarded(method: Callable[..., T]) -> Callable[..., T]:
    """Turn any database failure into InventoryUnavailable with the redacted URL."""

    @functools.wraps(method)
    def wrapper(self: Inventory, *args, **kwargs):
        if time.monotonic() < self._hung_until:  # it hung a moment ago: do not wait again
            raise InventoryUnavailable(
                f"inventory database unreachable ({self.redacted_url}): it did not answer "
                f"a moment ago; retried within {self.hung_retry_s:g} s"
            )
        started = time.monotonic()
        try:
            return method(self, *args, **kwargs)
        except InventoryUnavailable:
            raise
        except SQLAlchemyError as error:
            # Pooled connections may hold a dead server's socket or a replaced file: start
            # afresh, so that the next call reconnects (recovery without a restart).
            self.reset()
            if time.monotonic() - started > SLOW_FAILURE_S:
                # A failure that took a connect timeout: the next callers (start-up's
                # gazetteer, phrases, linker; queued answers) fail at once for a while.
                self._hung_until = time.monotonic() + self.hung_retry_s
            first = str(getattr(error, "orig", error) or error).strip().splitlines()
            raise InventoryUnavailable(
                f"inventory database unreachable ({self.redacted_url}): "
                f"{first[0] if first else error.__class__.__name__}; "
                "check that it is running and initialised (`assistant db init`)"
            ) from error

    return wrapper


def _km(a: Store, b: Store) -> float:
    """Great-circle distance in km (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 6371.0 * 2 * math.asin(math.sqrt(h))


class Inventory:
    """Read-only queries over the inventory database (SQLite or PostgreSQL)."""

    def __init__(self, url: str | None = None, engine: Engine | None = None):
        self.url = url or database_url()
        # A URL that does not parse fails at first use, as InventoryUnavailable (a server
        # degrades to db_unavailable; the CLI prints the message).
        self.redacted_url = db.redact(self.url)
        self._engine = engine
        self._engine_lock = threading.Lock()
        self.hung_retry_s = 10.0  # after a slow failure, fail at once for this long
        self._hung_until = 0.0
        self._products: dict[str, ProductRecord] | None = None
        self._stores: dict[str, Store] | None = None
        self._departments: dict[str, Department] | None = None

    @property
    def engine(self) -> Engine:
        with self._engine_lock:
            if self._engine is None:
                self._engine = open_engine(self.url, read_only=True)
            return self._engine

    def reset(self) -> None:
        """Drop the pooled connections (the engine stays); the next query connects afresh."""
        with self._engine_lock:
            engine = self._engine
        if engine is not None:
            engine.dispose()

    def close(self) -> None:
        """Dispose of the engine; the next query opens a new one."""
        with self._engine_lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    def _rows(self, statement) -> list:
        with self.engine.connect() as conn:
            return list(conn.execute(statement))

    # -- catalog -----------------------------------------------------------------------------

    @_guarded
    def check(self) -> str:
        """The seeded catalog version; raises InventoryUnavailable when the DB is missing/empty."""
        version = db.seeded_version(self.engine)
        if version is None:
            # seeded_version hides errors; ask again so a dead server says why
            self._rows(select(db.meta.c.value).limit(1))
            raise InventoryUnavailable(
                f"inventory database at {self.redacted_url} is empty; run `assistant db init`"
            )
        return version

    @_guarded
    def as_of(self) -> dt.date:
        """The last day of sales history: "today" for top-seller questions."""
        rows = self._rows(select(db.meta.c.value).where(db.meta.c.key == "as_of"))
        return dt.date.fromisoformat(rows[0][0]) if rows else dt.date.today()

    @_guarded
    def stores(self) -> dict[str, Store]:
        if self._stores is None:
            t = db.stores
            rows = self._rows(
                select(t.c.id, t.c.name, t.c.city, t.c.country, t.c.language, t.c.lat, t.c.lon)
            )
            self._stores = {r.id: Store(*r) for r in rows}
        return self._stores

    def store(self, store_id: str) -> Store | None:
        return self.stores().get(str(store_id))

    @_guarded
    def departments(self) -> dict[str, Department]:
        """Every department by id (cached, as the catalog: every product hit names one)."""
        if self._departments is None:
            t = db.departments
            rows = self._rows(select(t).order_by(t.c.id))
            self._departments = {
                r.id: Department(
                    r.id,
                    r.name_en,
                    r.name_es,
                    tuple(json.loads(r.aliases_en or "[]")),
                    tuple(json.loads(r.aliases_es or "[]")),
                )
                for r in rows
            }
        return self._departments

    @_guarded
    def products(self) -> dict[str, ProductRecord]:
        """Every product by SKU (cached: the catalog does not change while serving)."""
        if self._products is None:
            t = db.products
            cols = [t.c[f] for f in ProductRecord.__dataclass_fields__]
            self._products = {
                r.sku: ProductRecord(*r) for r in self._rows(select(*cols).order_by(t.c.sku))
            }
        return self._products

    def product(self, sku: str) -> ProductRecord | None:
        return self.products().get(str(sku))

    @_guarded
    def aliases(self) -> list[tuple[str, str, str, str]]:
        """All alias rows as (sku, kind, language, alias)."""
        t = db.product_aliases
        return [
            tuple(r)
            for r in self._rows(select(t.c.sku, t.c.kind, t.c.language, t.c.alias).order_by(t.c.id))
        ]

    # -- store facts -------------------------------------------------------------------------

    @_guarded
    def location(self, sku: str, store_id: str) -> tuple[str, int] | None:
        """(aisle, bay) of a product in a store, None when the store does not carry it."""
        t = db.locations
        rows = self._rows(
            select(t.c.aisle, t.c.bay).where(t.c.sku == str(sku), t.c.store_id == str(store_id))
        )
        return (rows[0].aisle, rows[0].bay) if rows else None

    @_guarded
    def stock(self, sku: str, store_id: str) -> tuple[int, int] | None:
        """(on_hand, on_order) units."""
        t = db.stock
        rows = self._rows(
            select(t.c.on_hand, t.c.on_order).where(
                t.c.sku == str(sku), t.c.store_id == str(store_id)
            )
        )
        return (rows[0].on_hand, rows[0].on_order) if rows else None

    @_guarded
    def nearby_stock(
        self, sku: str, store_id: str, limit: int = 3
    ) -> list[tuple[Store, float, int]]:
        """Other stores holding the product, nearest first: (store, distance km, on hand)."""
        here = self.store(store_id)
        t = db.stock
        rows = self._rows(
            select(t.c.store_id, t.c.on_hand).where(
                t.c.sku == str(sku), t.c.store_id != str(store_id), t.c.on_hand > 0
            )
        )
        stores = self.stores()
        found = [
            (stores[r.store_id], _km(here, stores[r.store_id]) if here else 0.0, r.on_hand)
            for r in rows
            if r.store_id in stores
        ]
        return sorted(found, key=lambda x: (x[1], x[0].id))[:limit]

    @_guarded
    def top_sellers(
        self,
        store_id: str,
        start: dt.date,
        end: dt.date,
        department_id: str | None = None,
        limit: int = 5,
    ) -> list[tuple[ProductRecord, int]]:
        """Best-selling products by units sold in [start, end], optionally in one department."""
        s, p = db.sales, db.products
        units = func.sum(s.c.units).label("units")
        query = (
            select(s.c.sku, units)
            .join(p, p.c.sku == s.c.sku)
            .where(s.c.store_id == str(store_id), s.c.day >= start, s.c.day <= end)
            .group_by(s.c.sku)
            .order_by(units.desc(), s.c.sku)
            .limit(limit)
        )
        if department_id:
            query = query.where(p.c.department_id == department_id)
        products = self.products()
        return [(products[r.sku], int(r.units)) for r in self._rows(query)]

    @_guarded
    def associates(self, store_id: str) -> list[Associate]:
        t = db.associates
        rows = self._rows(select(t).where(t.c.store_id == str(store_id)).order_by(t.c.id))
        return [Associate(*r) for r in rows]

    @_guarded
    def all_associate_names(self) -> list[str]:
        t = db.associates
        return sorted(
            {
                f"{r.first_name} {r.last_name}"
                for r in self._rows(select(t.c.first_name, t.c.last_name))
            }
        )

    @_guarded
    def shifts(self, store_id: str, weekday: int, department_id: str | None = None) -> list[Shift]:
        """Who works in a store on a weekday (optionally in one department), by start time."""
        a, s = db.associates, db.shifts
        query = (
            select(a, s.c.weekday, s.c.start_time, s.c.end_time)
            .join(s, s.c.associate_id == a.c.id)
            .where(a.c.store_id == str(store_id), s.c.weekday == weekday)
            .order_by(s.c.start_time, a.c.id)
        )
        if department_id:
            query = query.where(a.c.department_id == department_id)
        return [
            Shift(Associate(*r[:7]), r.weekday, r.start_time, r.end_time) for r in self._rows(query)
        ]

    @_guarded
    def week(self, associate_id: int) -> list[tuple[int, str, str]]:
        """An associate's weekly pattern: (weekday, start, end)."""
        s = db.shifts
        rows = self._rows(
            select(s.c.weekday, s.c.start_time, s.c.end_time)
            .where(s.c.associate_id == associate_id)
            .order_by(s.c.weekday)
        )
        return [tuple(r) for r in rows]

    @_guarded
    def catalog_rows(self, store_id: str) -> list[dict]:
        """`assistant catalog --json` lines for one store (DESIGN.md fields + extensions)."""
        p, loc, st = db.products, db.locations, db.stock
        query = (
            select(p, loc.c.aisle, loc.c.bay, st.c.on_hand, st.c.on_order)
            .outerjoin(loc, (loc.c.sku == p.c.sku) & (loc.c.store_id == str(store_id)))
            .outerjoin(st, (st.c.sku == p.c.sku) & (st.c.store_id == str(store_id)))
            .order_by(p.c.department_id, p.c.line, p.c.sku)
        )
        depts = self.departments()
        aliases: dict[str, dict[tuple[str, str], list[str]]] = {}
        for sku, kind, lang, alias in self.aliases():
            aliases.setdefault(sku, {}).setdefault((kind, lang), []).append(alias)
        out = []
        for r in self._rows(query):
            a = aliases.get(r.sku, {})
            out.append(
                {
                    "sku": r.sku,
                    "brand": r.brand,
                    "name_en": r.name_en,
                    "name_es": r.name_es,
                    "size": r.size,
                    "department": depts[r.department_id].name_en,
                    "aisle": r.aisle,
                    "bay": r.bay,
                    "on_hand": r.on_hand,
                    # extensions for the corpus generator and the linker
                    "on_order": r.on_order,
                    "line": r.line,
                    "type": r.type_id,
                    "department_id": r.department_id,
                    "department_es": depts[r.department_id].name_es,
                    "product_en": r.product_en,
                    "product_es": r.product_es,
                    "size_es": r.size_es,
                    "color": r.color,
                    "color_es": r.color_es,
                    "brand_origin": r.brand_origin,
                    "brand_aliases": a.get(("brand", "any"), []),
                    "aliases_en": a.get(("product", "en"), []),
                    "aliases_es": a.get(("product", "es"), []),
                    "size_aliases_en": a.get(("size", "en"), []),
                    "size_aliases_es": a.get(("size", "es"), []),
                    "color_aliases_en": a.get(("color", "en"), []),
                    "color_aliases_es": a.get(("color", "es"), []),
                }
            )
        return out
