"""The gazetteer/rule baseline parser: language, intents, spans with exact offsets."""

from __future__ import annotations

import pytest

from nlu.baseline import BaselineParser, detect_language
from nlu.gazetteer import Gazetteer
from nlu.schema import Parser

GAZ = Gazetteer.from_lists(
    brands=[
        "Tide",
        "tied",
        "Huggies",
        "u diez",
        "Kellogg's",
        "collugs",
        "Lala",
        "Samsung",
        "M&M's",
        "Coca-Cola",
        "all",
        "Nike",
    ],
    products=[
        "pods",
        "diapers",
        "pañales",
        "frosted flakes",
        "leche deslactosada",
        "tv",
        "running shoes",
        "detergente",
        "cereal",
    ],
    departments=["electronics", "electrónica", "lácteos", "garden center", "jardinería", "cereal"],
    colors=["blue", "azul", "roja"],
    persons=["Maria", "María", "Juan", "John Smith"],
)


@pytest.fixture(scope="module")
def parser():
    return BaselineParser(GAZ)


def spans(result):
    return [(e.label, e.text) for e in result.entities]


def test_is_a_parser(parser):
    assert isinstance(parser, Parser)
    assert len(parser.parse_batch(["where is tide", "hola"], None)) == 2


@pytest.mark.parametrize(
    ("text", "language", "intent", "expected"),
    [
        (
            "where can I find tied pods",
            "en",
            "find_product",
            [("BRAND", "tied"), ("PRODUCT", "pods")],
        ),
        (
            "¿Dónde están los PAÑALES U Diez?",
            "es",
            "find_product",
            [("PRODUCT", "PAÑALES"), ("BRAND", "U Diez")],
        ),
        (
            "how many Huggies diapers size four do we have in stock",
            "en",
            "check_stock",
            [("BRAND", "Huggies"), ("PRODUCT", "diapers"), ("SIZE", "size four")],
        ),
        (
            "busco la leche deslactosada Lala de un litro",
            "es",
            "find_product",
            [("PRODUCT", "leche deslactosada"), ("BRAND", "Lala"), ("SIZE", "un litro")],
        ),
        (
            "is the Samsung fifty five inch TV in stock at store 12",
            "en",
            "check_stock",
            [
                ("BRAND", "Samsung"),
                ("SIZE", "fifty five inch"),
                ("PRODUCT", "TV"),
                ("STORE", "store 12"),
            ],
        ),
        (
            "what sold best in electronics this week",
            "en",
            "top_sellers",
            [("DEPARTMENT", "electronics"), ("DATE", "this week")],
        ),
        (
            "¿qué es lo más vendido en cereal hoy?",
            "es",
            "top_sellers",
            [("DEPARTMENT", "cereal"), ("DATE", "hoy")],
        ),
        (
            "¿quién trabaja en jardinería hoy?",
            "es",
            "associate_schedule",
            [("DEPARTMENT", "jardinería"), ("DATE", "hoy")],
        ),
        (
            "when does Maria work tomorrow",
            "en",
            "associate_schedule",
            [("PERSON", "Maria"), ("DATE", "tomorrow")],
        ),
        (
            "¿a qué hora entra Juan el viernes?",
            "es",
            "associate_schedule",
            [("PERSON", "Juan"), ("DATE", "el viernes")],
        ),
        (
            "do you have M&M's family size",
            "en",
            "check_stock",
            [("BRAND", "M&M's"), ("SIZE", "family size")],
        ),
        (
            "playera roja talla grande nike",
            "es",
            "find_product",
            [("COLOR", "roja"), ("SIZE", "talla grande"), ("BRAND", "nike")],
        ),
        ("what's the weather", "en", "out_of_scope", []),
        ("cuéntame un chiste", "es", "out_of_scope", []),
    ],
)
def test_parse(parser, text, language, intent, expected):
    result = parser.parse(text)
    assert result.language == language
    assert result.intent == intent
    assert spans(result) == expected
    for e in result.entities:
        assert text[e.start : e.end] == e.text


def test_stopword_aliases_are_ignored(parser):
    # "all" is a detergent brand, but not in "do we have all of them"
    assert ("BRAND", "all") not in spans(parser.parse("do we have all of them"))


def test_language_hint_and_detection():
    assert detect_language("¿cuántos hay?") == "es"
    assert detect_language("where is it") == "en"
    assert detect_language("tide pods", "es") == "es"


def test_empty_gazetteer_still_parses_regex_entities():
    result = BaselineParser().parse("how many in store 5 this week")
    assert ("STORE", "store 5") in spans(result) and ("DATE", "this week") in spans(result)


def test_gazetteer_from_catalog_jsonl(tmp_path):
    import json

    rows = [
        {
            "brand": "Huggies",
            "brand_aliases": ["huggies", "hugis"],
            "product_en": "diapers",
            "product_es": "pañales",
            "aliases_en": ["diapers", "diaper"],
            "aliases_es": ["pañales", "pañal"],
            "color": None,
            "color_es": None,
            "department": "Baby",
            "department_es": "Bebés",
        },
        {
            "brand": "Adidas",
            "brand_aliases": [],
            "product_en": "hoodie",
            "product_es": "sudadera",
            "aliases_en": [],
            "aliases_es": ["sudadera con capucha"],
            "color": "red",
            "color_es": "rojo",
            "color_aliases_es": ["roja"],
            "department": "Apparel",
            "department_es": "Ropa",
        },
    ]
    path = tmp_path / "catalog.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", "utf-8")
    g = Gazetteer.from_catalog_jsonl(path, persons=["María"], departments=["baby aisle"])
    assert g.brands == ("Huggies", "huggies", "hugis", "Adidas")
    assert "sudadera con capucha" in g.products and "pañal" in g.products
    assert g.colors == ("red", "rojo", "roja")
    assert g.departments == ("baby aisle", "Baby", "Bebés", "Apparel", "Ropa")
    got = BaselineParser(g).parse("cuántos pañales hugis tiene María en bebés")
    spans = {(e.label, e.text) for e in got.entities}
    assert {("PRODUCT", "pañales"), ("BRAND", "hugis"), ("PERSON", "María")} <= spans
    assert ("DEPARTMENT", "bebés") in spans
