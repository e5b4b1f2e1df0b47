"""Read the product catalog (JSON lines, as printed by `assistant catalog --json`).

Only the fields the corpus needs are read; optional ones may be missing. nlu never imports
assistant: the catalog arrives as a file.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Product:
    """One catalog product, reduced to what queries mention."""

    sku: str
    brand: str
    product_en: str  # spoken product type without brand, e.g. "pods", "diapers"
    product_es: str  # e.g. "cápsulas", "pañales"
    size: str  # catalog size string ("size 4", "64 oz", "55 in"), "" when none
    color: str  # English colour name, "" when none
    department: str
    department_es: str
    line: str  # product-line id: the unit the test split holds out
    brand_aliases: tuple[str, ...] = ()
    aliases_en: tuple[str, ...] = ()
    aliases_es: tuple[str, ...] = ()
    name_en: str = ""
    name_es: str = ""
    aisle: str = ""
    bay: str = ""
    color_es: str = ""  # Spanish colour (masculine) when the catalog gives it
    size_aliases_en: tuple[str, ...] = ()  # spoken sizes the catalog knows ("forty two count")
    size_aliases_es: tuple[str, ...] = ()


def _strip_brand(name: str, brand: str) -> str:
    """A product type from a full name when the catalog gives none ("Tide Pods 42 ct" -> "pods")."""
    text = re.sub(re.escape(brand), " ", name, flags=re.I) if brand else name
    text = re.sub(
        r"\b\d+(\.\d+)?\s*(oz|fl oz|ct|count|lb|lbs|g|kg|ml|l|gal|in|pk|pack)\b",
        " ",
        text,
        flags=re.I,
    )
    return " ".join(text.lower().split())


def _tuple(value) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value if v)


def product_from_dict(row: dict) -> Product | None:
    """A `Product` from one catalog line, or None when it has no usable product text."""
    brand = str(row.get("brand") or "").strip()
    name_en = str(row.get("name_en") or "").strip()
    name_es = str(row.get("name_es") or "").strip()
    product_en = str(row.get("product_en") or "").strip() or _strip_brand(name_en, brand)
    product_es = str(row.get("product_es") or "").strip() or _strip_brand(name_es, brand)
    if not product_en or not product_es or not row.get("sku"):
        return None
    department = str(row.get("department") or "").strip()
    return Product(
        sku=str(row["sku"]),
        brand=brand,
        product_en=product_en,
        product_es=product_es,
        size=str(row.get("size") or "").strip(),
        color=str(row.get("color") or "").strip(),
        department=department,
        department_es=str(row.get("department_es") or "").strip(),
        line=str(row.get("line") or f"{brand}|{product_en}".lower()),
        brand_aliases=_tuple(row.get("brand_aliases")),
        aliases_en=_tuple(row.get("aliases_en")),
        aliases_es=_tuple(row.get("aliases_es")),
        name_en=name_en,
        name_es=name_es,
        aisle=str(row.get("aisle") or ""),
        bay=str(row.get("bay") or ""),
        color_es=str(row.get("color_es") or "").strip(),
        size_aliases_en=_tuple(row.get("size_aliases_en")),
        size_aliases_es=_tuple(row.get("size_aliases_es")),
    )


def load_catalog(path: str | Path) -> list[Product]:
    """Products from a JSONL file, sorted by sku so that generation does not depend on file order.

    Raises:
        ValueError: when the file holds no usable product.
    """
    products: list[Product] = []
    skipped = 0
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON ({exc})") from exc
            product = product_from_dict(row)
            if product is None:
                skipped += 1
            else:
                products.append(product)
    if skipped:
        log.warning("skipped %d catalog lines without sku or product text", skipped)
    if not products:
        raise ValueError(f"{path}: no products with sku and product text")
    products.sort(key=lambda p: p.sku)
    return products
