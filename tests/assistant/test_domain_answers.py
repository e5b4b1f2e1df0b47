"""Inventory, linker and answers on the same seeded catalog in SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from inventory_db import AS_OF, inventory_url, postgres_url, sqlite_url  # noqa: F401

from asr.nbest import Hypothesis, NBest
from assistant.inventory import Inventory, InventoryUnavailable
from assistant.pipeline import build_assistant


@pytest.fixture(scope="session")
def bundle(inventory_url):  # noqa: F811
    return build_assistant(inventory_url, prefer_learned=False)


def _line(bundle, line_id):
    return [p for p in bundle.inventory.products().values() if p.line == line_id]


def test_catalog_size_and_departments(bundle):
    inv = bundle.inventory
    assert len(inv.products()) >= 1000
    assert len(inv.departments()) >= 15
    assert len(inv.stores()) >= 3
    assert all(d.name_en and d.name_es for d in inv.departments().values())
    assert inv.as_of() == AS_OF


def test_catalog_rows_contract(bundle):
    rows = bundle.inventory.catalog_rows("1")
    assert len(rows) == len(bundle.inventory.products())
    for key in (
        "sku",
        "brand",
        "name_en",
        "name_es",
        "size",
        "department",
        "aisle",
        "bay",
        "on_hand",
    ):
        assert key in rows[0]
    tide = next(r for r in rows if r["line"] == "pods:tide:pods")
    assert tide["product_en"] == "pods" and "tied" in tide["brand_aliases"]


def test_tied_pods_location(bundle):
    out = bundle.ask("where can I find tied pods", "1")
    assert out["intent"]["name"] == "find_product"
    answer = out["answer"]
    assert answer["kind"] == "location" and answer["language"] == "en"
    hit = answer["products"][0]
    assert hit["brand"] == "Tide" and "Pods" in hit["name"]
    aisle, bay = bundle.inventory.location(hit["sku"], "1")
    assert (hit["aisle"], hit["bay"]) == (aisle, bay)
    assert f"aisle {aisle}, bay {bay}" in answer["text"]


def test_panales_u_diez_in_spanish(bundle):
    out = bundle.ask("¿dónde están los pañales u diez?", "1")
    answer = out["answer"]
    assert answer["language"] == "es" and answer["kind"] == "location"
    assert answer["products"][0]["brand"] == "Huggies"
    assert "pasillo" in answer["text"] and "Pañales" in answer["text"]


def test_collugs_frosted_flakes(bundle):
    result = bundle.linker.link(bundle.parser.parse("collugs frosted flakes"))
    assert result.best.product.line == "cereal:kelloggs:frosted-flakes"


def test_stock_with_size_both_languages(bundle):
    out = bundle.ask("how many Huggies diapers size four do we have", "2")
    hit = out["answer"]["products"][0]
    assert (
        out["answer"]["kind"] == "stock" and hit["brand"] == "Huggies" and hit["size"] == "Size 4"
    )
    on_hand, on_order = bundle.inventory.stock(hit["sku"], "2")
    assert hit["on_hand"] == on_hand and hit["on_order"] == on_order
    es = bundle.ask("¿cuántos pañales Huggies talla cuatro tenemos?", "2")["answer"]
    assert es["language"] == "es" and es["products"][0]["sku"] == hit["sku"]
    assert "existencia" in es["text"] or "agotado" in es["text"]


def test_out_of_stock_lists_nearby_stores(bundle):
    inv = bundle.inventory
    answerer = bundle.answerer
    # find a product that is out in store 1 and on hand elsewhere
    sku = next(s for s in inv.products() if inv.stock(s, "1")[0] == 0 and inv.nearby_stock(s, "1"))
    p = inv.product(sku)
    from nlu.schema import Entity, NluResult

    nlu = NluResult(
        "x",
        "en",
        "check_stock",
        1.0,
        (
            Entity("BRAND", p.brand, 0, 1),
            Entity("PRODUCT", p.product_en, 0, 1),
            Entity("SIZE", p.size or "", 0, 1),
            Entity("COLOR", p.color or "", 0, 1),
        ),
    )
    answer = answerer.answer(nlu, "1")
    assert answer.kind == "stock"
    if answer.products[0].sku == sku:
        assert "nearby" in answer.details and answer.details["nearby"][0]["on_hand"] > 0


def test_ambiguous_asks_back(bundle):
    # a brand with many kinds of product: which one is a real question
    answer = bundle.ask("where is the great value", "1")["answer"]
    assert answer["kind"] == "ambiguous"
    assert len(answer["candidates"]) >= 2 and "?" in answer["text"]
    assert len({c["name"] for c in answer["candidates"]}) >= 2


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("where are the diapers", "location"),
        ("dónde están los pañales", "location"),
        ("how many diapers do we have", "stock"),
        ("¿cuántos pañales quedan?", "stock"),
    ],
)
def test_product_type_without_brand_answers_for_every_brand(bundle, query, kind):
    """No brand said: every line of the type fits, so the answer covers them, not a question."""
    answer = bundle.ask(query, "1")["answer"]
    assert answer["kind"] == kind
    brands = {p["brand"] for p in answer["products"]}
    assert len(brands) >= 2
    for p in answer["products"]:
        assert p["brand"] in answer["text"] and str(p["aisle"]) in answer["text"]


def test_not_found_offers_closest(bundle):
    answer = bundle.ask("where can I find the zorblax flimwidget", "1")["answer"]
    assert answer["kind"] in ("not_found", "out_of_scope")
    if answer["kind"] == "not_found":
        assert answer["candidates"]


@pytest.mark.parametrize(
    ("text", "language", "department"),
    [
        ("what sold best in electronics this week", "en", "electronics"),
        ("¿qué es lo más vendido en lácteos hoy?", "es", "dairy"),
    ],
)
def test_top_sellers(bundle, text, language, department):
    answer = bundle.ask(text, "1")["answer"]
    assert answer["kind"] == "top_sellers" and answer["language"] == language
    assert answer["department"] == department
    products = bundle.inventory.products()
    units = [p["units_sold"] for p in answer["products"]]
    assert units == sorted(units, reverse=True)
    assert all(products[p["sku"]].department_id == department for p in answer["products"])
    start, end = dt.date.fromisoformat(answer["start"]), dt.date.fromisoformat(answer["end"])
    expected = bundle.inventory.top_sellers("1", start, end, department, limit=5)
    assert [p["sku"] for p in answer["products"]] == [p.sku for p, _ in expected]


def test_schedule_by_person_and_department(bundle):
    inv = bundle.inventory
    person = inv.associates("1")[0]
    nlu = bundle.parser.parse(f"when does {person.first_name} work tomorrow", "en")
    answer = bundle.answerer.answer(nlu, "1", today=AS_OF)
    assert answer.kind == "schedule"
    assert any(e["name"].startswith(person.first_name) for e in answer.details["schedule"])
    day = AS_OF + dt.timedelta(days=1)
    es = bundle.answerer.answer(
        bundle.parser.parse("¿quién trabaja en jardinería mañana?"), "1", today=AS_OF
    )
    assert es.language == "es" and es.kind == "schedule" and es.details["department"] == "garden"
    expected = [s.associate.full_name for s in inv.shifts("1", day.weekday(), "garden")]
    assert [e["name"] for e in es.details["schedule"]] == expected


def test_out_of_scope_both_languages(bundle):
    assert bundle.ask("what's the weather like", "1")["answer"]["kind"] == "out_of_scope"
    es = bundle.ask("cuéntame un chiste", "1")["answer"]
    assert es["kind"] == "out_of_scope" and es["language"] == "es"


def test_nbest_rescues_a_bad_best_hypothesis(bundle):
    nbest = NBest(
        (
            Hypothesis("where can i find the", score=-0.2),
            Hypothesis("where can i find tide pods", score=-0.5),
        ),
        "en",
    )
    nlu = bundle.parser.parse(nbest.text, "en")
    answer = bundle.answerer.answer(nlu, "1", nbest=nbest)
    assert answer.products and answer.products[0].brand == "Tide"


def test_database_down_is_a_clean_error():
    inv = Inventory("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(InventoryUnavailable, match="unreachable"):
        inv.products()
    with pytest.raises(InventoryUnavailable, match="assistant db init"):
        Inventory("sqlite:////nonexistent/dir/inventory.sqlite").products()


def test_assistant_opens_read_only(inventory_url):  # noqa: F811
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    inv = Inventory(inventory_url)
    with pytest.raises(SQLAlchemyError), inv.engine.begin() as conn:
        conn.execute(text("DELETE FROM meta"))
    assert inv.check()
