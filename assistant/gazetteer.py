"""The baseline parser's gazetteer, from the inventory (or the curated lists when it is down)."""

from __future__ import annotations

import logging

from assistant.inventory import Inventory, InventoryUnavailable
from nlu.gazetteer import Gazetteer

log = logging.getLogger(__name__)


def build_gazetteer(inventory: Inventory | None) -> Gazetteer:
    """Brands, products, departments, colours and associates' names as plain lists."""
    if inventory is not None:
        try:
            return _from_inventory(inventory)
        except InventoryUnavailable as error:
            log.warning("gazetteer from the curated lists (inventory unavailable: %s)", error)
    return _from_lists()


def _from_inventory(inventory: Inventory) -> Gazetteer:
    lists: dict[str, list[str]] = {"brands": [], "products": [], "colors": []}
    kinds = {"brand": "brands", "product": "products", "color": "colors"}
    for _sku, kind, _lang, alias in inventory.aliases():
        if kind in kinds:
            lists[kinds[kind]].append(alias)
    for product in inventory.products().values():
        lists["brands"].append(product.brand)
    departments = []
    for d in inventory.departments().values():
        departments += [d.name_en, d.name_es, *d.aliases_en, *d.aliases_es]
    persons = []
    for name in inventory.all_associate_names():
        persons += [name, name.split()[0]]
    return Gazetteer.from_lists(departments=departments, persons=persons, **lists)


def _from_lists() -> Gazetteer:
    from assistant.inventory.catalog import brand_variants, load_lists

    data = load_lists()
    brands = [a for b, spec in data["brands"].items() for a in brand_variants(b, spec["aliases"])]
    products, departments = [], []
    for d in data["departments"]:
        departments += [d["en"], d["es"], *d["aliases_en"], *d["aliases_es"]]
        for t in d["types"]:
            products += [t["en"], t["es"], *t["spoken_en"], *t["spoken_es"]]
            products += [b.get("line", "") for b in t["brands"] if isinstance(b, dict)]
            products += [b.get("line_es", "") for b in t["brands"] if isinstance(b, dict)]
    colors = [a for c in data["colors"] for a in c["aliases_en"] + c["aliases_es"]]
    people = data["people"]
    persons = people["first_en"] + people["first_es"]
    return Gazetteer.from_lists(
        brands=brands,
        products=[p for p in products if p],
        departments=departments,
        colors=colors,
        persons=persons,
    )
