"""Seeded catalog generator: curated lists in assistant/inventory/data/ -> stores, products, stock,
sales, staff.

`generate(seed)` is deterministic for a given seed, as-of date and set of curated files, so
the database, the corpus built from it and every evaluation number can be rebuilt.
Rows are plain dicts keyed by the column names of assistant.inventory.db.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from textnorm import fold
from textnorm.numbers import spoken_numbers

# The curated lists ship inside the package (package data): an installed copy needs no checkout.
DATA_DIR = Path(__file__).resolve().parent / "data"
GENERATOR_VERSION = "1"
DEFAULT_SEED = 1234
SALES_DAYS = 28  # history long enough for "this month" / "last week"
PRODUCTS_PER_BAY = 4
COLORS_PER_LINE = 3  # colour variants kept per apparel line (keeps the catalog a sane size)
SIZES_PER_LINE = 6


@dataclass
class Catalog:
    """Everything the database is seeded with; each list holds the rows of one table."""

    version: str
    seed: int
    as_of: dt.date
    stores: list[dict] = field(default_factory=list)
    departments: list[dict] = field(default_factory=list)
    products: list[dict] = field(default_factory=list)
    product_aliases: list[dict] = field(default_factory=list)
    locations: list[dict] = field(default_factory=list)
    stock: list[dict] = field(default_factory=list)
    sales: list[dict] = field(default_factory=list)
    associates: list[dict] = field(default_factory=list)
    shifts: list[dict] = field(default_factory=list)


def load_lists(data_dir: Path = DATA_DIR) -> dict:
    """The curated JSON lists, keyed by file stem."""
    names = ("departments", "brands", "sizes", "colors", "people", "stores")
    return {n: json.loads((data_dir / f"{n}.json").read_text(encoding="utf-8")) for n in names}


def catalog_version(seed: int, data_dir: Path = DATA_DIR) -> str:
    """Generator version + hash of the curated lists + seed: equal versions mean equal catalogs."""
    digest = hashlib.sha256()
    for path in sorted(data_dir.glob("*.json")):
        digest.update(path.name.encode() + path.read_bytes())
    return f"{GENERATOR_VERSION}-{digest.hexdigest()[:12]}-s{seed}"


def slug(text: str) -> str:
    """ "La Costeña" -> "la-costena" (ids are ASCII: ñ folds to n)."""
    return fold(text, keep_enye=False).replace(" ", "-")


def brand_variants(brand: str, aliases: list[str]) -> list[str]:
    """The brand as written, its automatic spellings (no apostrophe, no accents) and curated aliases."""
    out = [brand.lower(), re.sub(r"['’.!]", "", brand.lower()), fold(brand, keep_enye=False)]
    out += [a.lower() for a in aliases]
    return _unique(out)


def _unique(items) -> list:
    seen: dict = {}
    for item in items:
        if item and item not in seen:
            seen[item] = None
    return list(seen)


@dataclass(frozen=True)
class SizeInfo:
    key: str
    display_en: str
    display_es: str
    spoken_en: tuple[str, ...]
    spoken_es: tuple[str, ...]


def expand_size(key: str, spec: dict) -> SizeInfo:
    """A size entry of sizes.json ("42 ct", "size 4", "half_gal") -> display and spoken forms."""
    if key in spec["named"]:
        named = spec["named"][key]
        return SizeInfo(
            key,
            named["display_en"],
            named["display_es"],
            tuple(named["spoken_en"]),
            tuple(named["spoken_es"]),
        )
    head, _, rest = key.partition(" ")
    if head in spec["prefixes"]:
        unit, n, gender = spec["prefixes"][head], int(rest), "n"
        forms_en, forms_es = unit["spoken_en"], unit["spoken_es"]
    else:
        unit, n = spec["units"][rest], int(head)
        gender = unit.get("gender_es", "m")
        forms_en = unit.get("spoken_en_one", unit["spoken_en"]) if n == 1 else unit["spoken_en"]
        forms_es = unit.get("spoken_es_one", unit["spoken_es"]) if n == 1 else unit["spoken_es"]
    spoken_en = [f.replace("{n}", w) for f in forms_en for w in spoken_numbers(n, "en")]
    spoken_es = [f.replace("{n}", w) for f in forms_es for w in spoken_numbers(n, "es", gender)]
    return SizeInfo(
        key,
        unit["display_en"].replace("{n}", str(n)),
        unit["display_es"].replace("{n}", str(n)),
        tuple(_unique(spoken_en)),
        tuple(_unique(spoken_es)),
    )


def _line_name_en(brand: str, line: str | None, ptype: dict) -> str:
    if not line:
        return f"{brand} {ptype['en'].title() if ptype['en'].islower() else ptype['en']}"
    type_words = set(fold(ptype["en"], keep_enye=False).split())
    if type_words & set(fold(line, keep_enye=False).split()):
        return f"{brand} {line}"
    return f"{brand} {line} {ptype['en'].title() if ptype['en'].islower() else ptype['en']}"


def _line_name_es(brand: str, line_es: str | None, ptype: dict) -> str:
    type_es = ptype["es"][:1].upper() + ptype["es"][1:]
    return f"{type_es} {brand}" + (f" {line_es}" if line_es else "")


def build_products(lists: dict, rng: random.Random) -> tuple[list[dict], list[dict]]:
    """Products (one per brand line x size x colour) and their alias rows."""
    brands, sizes, colors = lists["brands"], lists["sizes"], {c["id"]: c for c in lists["colors"]}
    products: list[dict] = []
    aliases: list[dict] = []
    for dept in lists["departments"]:
        for ptype in dept["types"]:
            size_keys = sizes["groups"][ptype["sizes"]] if ptype.get("sizes") else [None]
            for entry in ptype["brands"]:
                entry = {"brand": entry} if isinstance(entry, str) else entry
                brand, line = entry["brand"], entry.get("line")
                line_es = entry.get("line_es", line)
                if brand not in brands:
                    raise ValueError(f"brand {brand!r} of {ptype['id']} missing from brands.json")
                line_id = f"{ptype['id']}:{slug(brand)}" + (f":{slug(line)}" if line else "")
                keys = list(size_keys)
                if len(keys) > SIZES_PER_LINE:
                    keys = sorted(rng.sample(keys, SIZES_PER_LINE), key=keys.index)
                color_ids = list(ptype.get("colors") or [None])
                if len(color_ids) > COLORS_PER_LINE:
                    color_ids = sorted(rng.sample(color_ids, COLORS_PER_LINE), key=color_ids.index)
                folded = fold(line, keep_enye=False) if line else ""
                product_en = folded if line else ptype["spoken_en"][0]
                product_es = line_es.lower() if line_es else ptype["spoken_es"][0]
                aliases_en = _unique(
                    ([folded, f"{folded} {ptype['spoken_en'][0]}"] if line else [])
                    + list(ptype["spoken_en"])
                    + [ptype["en"].lower()]
                )
                aliases_es = _unique(
                    (
                        [line_es.lower(), f"{ptype['spoken_es'][0]} {line_es.lower()}"]
                        if line_es
                        else []
                    )
                    + list(ptype["spoken_es"])
                    + [ptype["es"].lower()]
                )
                b_aliases = brand_variants(brand, brands[brand]["aliases"])
                for size_key in keys:
                    size = expand_size(size_key, sizes) if size_key else None
                    for color_id in color_ids:
                        color = colors[color_id] if color_id else None
                        name_en = _line_name_en(brand, line, ptype)
                        name_es = _line_name_es(brand, line_es, ptype)
                        if color:
                            name_en += f", {color['en'].title()}"
                            name_es += f", color {color['es']}"
                        if size:
                            name_en += f", {size.display_en}"
                            name_es += f", {size.display_es}"
                        product = {
                            "sku": "",  # assigned below, after the order is fixed
                            "line": line_id,
                            "brand": brand,
                            "brand_origin": brands[brand]["origin"],
                            "name_en": name_en,
                            "name_es": name_es,
                            "product_en": product_en,
                            "product_es": product_es,
                            "type_id": ptype["id"],
                            "department_id": dept["id"],
                            "size": size.display_en if size else None,
                            "size_es": size.display_es if size else None,
                            "color": color["en"] if color else None,
                            "color_es": color["es"] if color else None,
                        }
                        products.append(product)
                        rows = [("brand", "any", a) for a in b_aliases]
                        rows += [("product", "en", a) for a in aliases_en]
                        rows += [("product", "es", a) for a in aliases_es]
                        if size:
                            rows += [("size", "en", a) for a in size.spoken_en]
                            rows += [("size", "es", a) for a in size.spoken_es]
                        if color:
                            rows += [("color", "en", a) for a in color["aliases_en"]]
                            rows += [("color", "es", a) for a in color["aliases_es"]]
                        aliases.append(rows)  # type: ignore[arg-type]
    skus = rng.sample(range(100_000_000, 999_999_999), len(products))
    alias_rows: list[dict] = []
    for product, sku, rows in zip(products, skus, aliases, strict=True):
        product["sku"] = str(sku)
        alias_rows += [
            {"sku": product["sku"], "kind": kind, "language": lang, "alias": alias}
            for kind, lang, alias in rows
        ]
    return products, alias_rows


def build_layout(store: dict, departments: list[dict], products: list[dict], rng: random.Random):
    """Departments -> contiguous aisles (order shuffled per store); products -> aisle + bay.

    Products of one type sit together, as on a real planogram; each bay holds a few.
    """
    by_dept: dict[str, list[dict]] = {d["id"]: [] for d in departments}
    for p in products:
        by_dept[p["department_id"]].append(p)
    order = [d["id"] for d in departments]
    rng.shuffle(order)
    total = len(products)
    n_aisles = max(store["aisles"], len(order))
    # aisles per department proportional to its size, at least one
    shares = {d: max(1, round(n_aisles * len(by_dept[d]) / total)) for d in order}
    rows, aisle = [], 1
    for dept_id in order:
        items = sorted(by_dept[dept_id], key=lambda p: (p["type_id"], p["brand"], p["name_en"]))
        n = shares[dept_id]
        per_aisle = math.ceil(len(items) / n)
        for i, p in enumerate(items):
            a = aisle + i // per_aisle
            bay = 1 + (i % per_aisle) // PRODUCTS_PER_BAY
            rows.append({"store_id": store["id"], "sku": p["sku"], "aisle": str(a), "bay": bay})
        aisle += n
    return rows


def generate(
    seed: int = DEFAULT_SEED, as_of: dt.date | None = None, data_dir: Path = DATA_DIR
) -> Catalog:
    """Build the whole catalog from the curated lists. as_of: last day of sales history."""
    as_of = as_of or dt.date.today()
    lists = load_lists(data_dir)
    rng = random.Random(seed)
    cat = Catalog(version=catalog_version(seed, data_dir), seed=seed, as_of=as_of)
    cat.stores = [
        {k: s[k] for k in ("id", "name", "city", "region", "country", "language", "lat", "lon")}
        for s in lists["stores"]
    ]
    cat.departments = [
        {
            "id": d["id"],
            "name_en": d["en"],
            "name_es": d["es"],
            "aliases_en": json.dumps(d["aliases_en"], ensure_ascii=False),
            "aliases_es": json.dumps(d["aliases_es"], ensure_ascii=False),
        }
        for d in lists["departments"]
    ]
    cat.products, cat.product_aliases = build_products(lists, rng)
    popularity = {p["sku"]: rng.lognormvariate(0.0, 1.0) for p in cat.products}
    for store in lists["stores"]:
        cat.locations += build_layout(store, cat.departments, cat.products, rng)
        traffic = rng.uniform(0.6, 1.4)
        for p in cat.products:
            out = rng.random() < 0.07
            on_hand = 0 if out else int(rng.triangular(1, 150, 24))
            on_order = rng.choice((12, 24, 36, 48)) if (on_hand < 12 and rng.random() < 0.7) else 0
            cat.stock.append(
                {"store_id": store["id"], "sku": p["sku"], "on_hand": on_hand, "on_order": on_order}
            )
            rate = popularity[p["sku"]] * traffic * 0.5
            for back in range(SALES_DAYS):
                units = _poisson(rng, rate)
                if units:
                    day = as_of - dt.timedelta(days=back)
                    cat.sales.append(
                        {"store_id": store["id"], "sku": p["sku"], "day": day, "units": units}
                    )
        _staff(cat, store, lists, rng)
    return cat


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method; lam is small (a few units a day)."""
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _staff(cat: Catalog, store: dict, lists: dict, rng: random.Random) -> None:
    """About 16 associates per store, names in the store's languages, 5 shifts a week each."""
    people = lists["people"]
    spanish_share = (
        0.85 if store["country"] == "MX" else (0.6 if store["language"] == "es" else 0.35)
    )
    dept_ids = [d["id"] for d in cat.departments]
    for _ in range(16):
        es = rng.random() < spanish_share
        first = rng.choice(people["first_es" if es else "first_en"])
        last = rng.choice(people["last_es" if es else "last_en"])
        associate_id = len(cat.associates) + 1
        role = rng.randrange(len(people["roles_en"]))
        cat.associates.append(
            {
                "id": associate_id,
                "store_id": store["id"],
                "first_name": first,
                "last_name": last,
                "department_id": rng.choice(dept_ids),
                "role_en": people["roles_en"][role],
                "role_es": people["roles_es"][role],
            }
        )
        start, end = rng.choice(people["shifts"])
        for weekday in sorted(rng.sample(range(7), 5)):
            cat.shifts.append(
                {
                    "associate_id": associate_id,
                    "weekday": weekday,
                    "start_time": start,
                    "end_time": end,
                }
            )
