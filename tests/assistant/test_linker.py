"""Phonetic keys and linking of misheard brands (SQLite only: the linker is backend-agnostic)."""

from __future__ import annotations

import pytest
from inventory_db import sqlite_url  # noqa: F401

from assistant.inventory import Inventory
from assistant.linker import Linker, digits, english_key, spanish_key


def test_spanish_key_merges_same_sounds():
    assert spanish_key("vimbo") == spanish_key("bimbo")
    assert spanish_key("hierba") == spanish_key("ierba")
    assert spanish_key("cerveza") == spanish_key("servesa")
    assert spanish_key("queso") == spanish_key("keso")
    assert spanish_key("gerber") == spanish_key("jerber")
    assert spanish_key("pollo") == spanish_key("poyo")
    assert spanish_key("tide") != spanish_key("gain")


def test_english_key_and_digits():
    assert english_key("collugs") == english_key("kelloggs")
    assert digits("talla cuatro") == "talla 4"
    assert digits("fifty five inch") == "55 inch"
    assert digits("cuarenta y dos piezas") == "42 piezas"


@pytest.fixture(scope="module")
def linker(sqlite_url):  # noqa: F811
    return Linker(Inventory(sqlite_url))


@pytest.mark.parametrize(
    ("brand", "product", "line"),
    [
        ("tied", "pods", "pods:tide:pods"),
        ("collugs", "frosted flakes", "cereal:kelloggs:frosted-flakes"),
        ("kellox", "zucaritas", "cereal:kelloggs:frosted-flakes"),
        ("u diez", "pañales", "diapers:huggies"),
        ("hugis", "diapers", "diapers:huggies"),
        ("vimbo", "pan", "bread:bimbo"),
        ("downey", "fabric softener", "softener:downy"),
        ("coca cola", None, "soda:coca-cola"),
    ],
)
def test_misheard_brands(linker, brand, product, line):
    result = linker.link_spans(brand, product)
    assert result.best is not None and result.best.product.line == line


def test_size_and_colour_pick_the_sku(linker):
    result = linker.link_spans("samsung", "tv", size="fifty five inch")
    assert result.best.product.brand == "Samsung" and result.best.product.size == "55 in"
    result = linker.link_spans("levis", "501", size="size 32", color="black")
    assert result.best.product.color == "black" and result.best.product.size == "Waist 32"


def test_text_fallback_without_spans(linker):
    result = linker.link_text("uh i need the tied pods please")
    assert result.best.product.line == "pods:tide:pods" and result.source == "text"


def test_product_only_is_ambiguous(linker):
    result = linker.link_spans(None, "diapers")
    assert result.ambiguous and len(result.lines(3)) == 3
