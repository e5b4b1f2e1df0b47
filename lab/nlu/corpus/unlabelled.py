"""The unlabelled pool for distillation: catalog text, unlabelled queries, everyday sentences.

Only train-split product lines and templates feed it, so a model distilled on it has still
never seen a test product or wording.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from importlib import resources

from textnorm import strip_accents

CATALOG_SHARE = 0.25  # at most this share of the pool is catalog text
EVERYDAY_SHARE = 0.2


def _catalog_lines(products, rng: random.Random) -> list[str]:
    """Names and short shelf-label sentences, EN and ES, for every product given."""
    out = []
    for p in products:
        dept_es = p.department_es or p.department
        out += [
            p.name_en,
            p.name_es,
            f"{p.brand} {p.product_en} {p.size}",
            f"{p.product_es} {p.brand} {p.size}",
        ]
        where_en = f" in aisle {p.aisle} bay {p.bay}" if p.aisle else ""
        where_es = f" en el pasillo {p.aisle} sección {p.bay}" if p.aisle else ""
        out.append(f"{p.name_en or p.product_en} is sold in {p.department.lower()}{where_en}")
        out.append(f"{p.name_es or p.product_es} se vende en {dept_es.lower()}{where_es}")
    lines = [" ".join(x.split()) for x in out if x and x.strip()]
    return [x.lower() if rng.random() < 0.7 else x for x in lines]


def _everyday(n: int, rng: random.Random, spanish_share: float) -> list[str]:
    data = json.loads(
        resources.files("lab.nlu.corpus").joinpath("data/everyday.json").read_text("utf-8")
    )
    out = []
    for _ in range(n):
        d = data["es" if rng.random() < spanish_share else "en"]
        if rng.random() < 0.15:
            s = rng.choice(d["sentences"])
        else:
            s = " ".join(
                x
                for x in (
                    rng.choice(d["subjects"]),
                    rng.choice(d["predicates"]),
                    rng.choice(d["times"]),
                )
                if x
            )
        if rng.random() < 0.2:
            s = strip_accents(s, keep_enye=True)
        out.append(s)
    return out


def unlabelled_pool(n, rng, renderer, templates, pools, people, spanish_share) -> Iterator[str]:
    """`n` lines of text, shuffled. Queries come from held-in templates with more fillers."""
    catalog = _catalog_lines(pools.products, rng)
    rng.shuffle(catalog)
    catalog = catalog[: int(n * CATALOG_SHARE)]
    everyday = _everyday(int(n * EVERYDAY_SHARE), rng, spanish_share)
    by_lang = {
        "en": [t for t in templates if t.language == "en"],
        "es": [t for t in templates if t.language == "es"],
    }
    queries = []
    for _ in range(n - len(catalog) - len(everyday)):
        lang = "es" if rng.random() < spanish_share else "en"
        for _ in range(20):
            t = rng.choice(by_lang[lang])
            product = pools.pick(t.needs(), rng) if t.uses_product else None
            if product is not None or not t.uses_product:
                break
        queries.append(renderer.render(t, product, people, extra_fillers=0.35).text)
    lines = catalog + everyday + queries
    rng.shuffle(lines)
    yield from lines
