"""Issue 16: the quoted failures as tests. Spans are given by hand where the issue quotes a
parse (deterministic); through the student the checks are tolerant (right or asks back, never
another product)."""

from __future__ import annotations

import pytest
from inventory_db import sqlite_url  # noqa: F401

from asr.nbest import Hypothesis, NBest
from assistant.pipeline import build_assistant
from lab.nlu.heard import project, project_cache
from nlu.schema import Entity, NluResult


@pytest.fixture(scope="module")
def bundle(sqlite_url):  # noqa: F811
    return build_assistant(sqlite_url)


def _nlu(text, intent, *spans, lang="en"):
    ents = []
    for label, words in spans:
        start = text.index(words)
        ents.append(Entity(label, words, start, start + len(words)))
    return NluResult(text, lang, intent, 1.0, tuple(ents))


@pytest.mark.parametrize(
    "nlu, sku_name",
    [
        (_nlu("are we out of Gildan T-Shirts, Gray, Medium", "check_stock", ("BRAND", "Gildan"), ("PRODUCT", "T-Shirts"), ("COLOR", "Gray")), "Gildan T-Shirts, Gray, Medium"),
        (_nlu("do we have Adidas Hoodie Gray Large", "check_stock", ("BRAND", "Adidas"), ("PRODUCT", "Hoodie")), "Adidas Hoodie, Gray, Large"),
        (_nlu("cuántos Pañales Huggies Supreme Talla 6 tenemos", "check_stock", ("BRAND", "Huggies"), ("PRODUCT", "Supreme Talla 6"), lang="es"), "Pañales Huggies Supreme, Talla 6"),
        (_nlu("is the EverStart Car Battery, Group 24 in stock", "check_stock", ("BRAND", "EverStart"), ("PRODUCT", "Car Battery")), "EverStart Car Battery, Group 24"),
        (_nlu("do we have Levi's 501 Blue Waist 32", "check_stock", ("BRAND", "Levi's"), ("PRODUCT", "501")), "Levi's 501 Jeans, Blue, Waist 32"),
    ],
)  # fmt: skip
def test_variant_named_is_the_variant_answered(bundle, nlu, sku_name):
    answer = bundle.answerer.answer(nlu, "1")
    assert answer.kind == "stock"
    assert answer.products[0].name == sku_name and len(answer.products) == 1


def test_no_variant_answers_the_line(bundle):
    answer = bundle.answerer.answer(
        _nlu("where are the Gildan T-Shirts", "find_product", ("BRAND", "Gildan"), ("PRODUCT", "T-Shirts")), "1"
    )  # fmt: skip
    assert answer.kind in ("location", "ambiguous")
    assert all("Gildan T-Shirts" in p.name for p in answer.products + answer.candidates)


def test_variant_the_line_lacks_is_not_another_variant(bundle):
    answer = bundle.answerer.answer(
        _nlu("do we have Huggies diapers size 9", "check_stock", ("BRAND", "Huggies"), ("PRODUCT", "diapers"), ("SIZE", "size 9")), "1"
    )  # fmt: skip
    assert answer.kind == "not_found" and not answer.products


def test_boundaries_and_carrier_words(bundle):
    link = bundle.linker.link
    r = link(
        _nlu(
            "where can I find 3M Duct Tape",
            "find_product",
            ("BRAND", "3M Duct"),
            ("PRODUCT", "Tape"),
        )
    )
    assert r.best.product.brand == "3M"
    r = link(_nlu("where are the Air Max", "find_product", ("PRODUCT", "Air"), ("BRAND", "Max")))
    assert r.best is None or "Air Max" in r.best.product.name_en
    r = link(
        _nlu("checa los Tide Pods", "check_stock", ("PRODUCT", "checa los Tide Pods"), lang="es")
    )
    assert r.best.product.line == "pods:tide:pods"


@pytest.mark.parametrize(
    "nlu",
    [
        _nlu("dónde están los totopos Doritos", "find_product", ("PRODUCT", "totopos"), ("BRAND", "Doritos"), lang="es"),
        _nlu("where is the Ozark Trail camping chair", "find_product", ("BRAND", "Ozark"), ("PRODUCT", "Trail"), ("PRODUCT", "camping chair")),
        _nlu("where is the Ozark Trail camping chair", "find_product", ("BRAND", "Ozark Trail"), ("PRODUCT", "camping chair")),
    ],
)  # fmt: skip
def test_never_another_product_asserted(bundle, nlu):
    answer = bundle.answerer.answer(nlu, "1")
    if answer.kind in ("location", "stock"):
        assert answer.products[0].brand == "Doritos"
    else:
        assert answer.kind in ("not_found", "ambiguous")
        if answer.kind == "not_found" and "Ozark" in nlu.text:
            assert "Ozark" in answer.text and "Ozarka" not in answer.text.split("Closest")[0]


def test_brand_the_catalog_lacks_offers_the_same_type(bundle):
    answer = bundle.answerer.answer(
        _nlu("where are the Quorblax potato chips", "find_product", ("BRAND", "Quorblax"), ("PRODUCT", "potato chips")), "1"
    )  # fmt: skip
    assert answer.kind == "not_found" and answer.candidates
    assert all(bundle.inventory.product(c.sku).type_id == "chips" for c in answer.candidates)


def test_misheard_people_link_to_the_roster(bundle):
    # store 3 has María Hernández; "Marie" sounds the same (metaphone MR)
    answer = bundle.answerer.answer(
        _nlu("when does Marie work tomorrow", "associate_schedule", ("PERSON", "Marie")), "3"
    )
    assert answer.kind in ("schedule", "ambiguous") and "María" in answer.text
    # a held-out name is not someone else: Alejandra is not Alejandro
    link = bundle.linker.link_person("Alejandra", "1")
    assert not link.associates or link.ask


def test_departments_by_sound(bundle):
    assert bundle.linker.link_department("electronica")[0] == "electronics"
    assert bundle.linker.link_department("jardineria")[0] is not None


@pytest.mark.parametrize(
    "nlu, sku_name",
    [
        # the full catalog name said word for word names that line, not the plain one
        (_nlu("show me where Gamesa Chokis Cookies, 14 oz is", "find_product", ("BRAND", "Gamesa"), ("PRODUCT", "Cookies"), ("SIZE", "14 oz")), "Gamesa Chokis Cookies, 14 oz"),
        (_nlu("where's the Tidy Cats Cat Litter, 20 lb?", "find_product", ("BRAND", "Tidy Cats Cat"), ("PRODUCT", "Litter"), ("SIZE", "20 lb")), "Tidy Cats Cat Litter, 20 lb"),
        # a size span cut short: the catalog form the text holds is the size
        (_nlu("Show me where the Breyers Ice Cream, Half Gallon is", "find_product", ("BRAND", "Breyers"), ("PRODUCT", "Ice Cream"), ("SIZE", "Half")), "Breyers Ice Cream, Half Gallon"),
        (_nlu("Quedan Calcetines Fruit of the Loom, color negro, Extra grande?", "check_stock", ("PRODUCT", "Calcetines"), ("BRAND", "Fruit of the Loom"), ("COLOR", "negro"), ("SIZE", "grande"), lang="es"), "Calcetines Fruit of the Loom, color negro, Extra grande"),
        # sizes as people say them ("fluid ounces" for "fl oz")
        (_nlu("is the Rockstar energy drink sixteen fluid ounces out of stock", "check_stock", ("BRAND", "Rockstar"), ("PRODUCT", "energy drink"), ("SIZE", "sixteen fluid ounces")), "Rockstar Energy Drink, 16 fl oz"),
    ],
)  # fmt: skip
def test_names_and_sizes_as_written_pick_the_sku(bundle, nlu, sku_name):
    answer = bundle.answerer.answer(nlu, "1")
    assert answer.kind in ("location", "stock")
    assert [p.name for p in answer.products] == [sku_name]


def test_type_agreed_by_the_nbest_answers_the_type(bundle):
    """Two of three hypotheses name dog food and no brand: each dog food line gets a small
    share of their weight, below the support a line needs, but the list agrees on the type."""
    texts = (
        "show me where to dump foodies",
        "show me where the dog food is",
        "where's the dog food",
    )
    nbest = NBest(tuple(Hypothesis(t, score=-0.6 - 0.02 * i) for i, t in enumerate(texts)), "en")
    nlus = [
        _nlu(texts[0], "find_product", ("PRODUCT", "dump foodies")),
        _nlu(texts[1], "find_product", ("PRODUCT", "dog food")),
        _nlu(texts[2], "find_product", ("PRODUCT", "dog food")),
    ]
    per_line = bundle.linker.link_joint(nlus[:1] + nlus[1:2] + nlus[:1], [1 / 3] * 3)
    assert not per_line.candidates  # one hypothesis of three: too little for the type too
    answer = bundle.answerer.answer(nlus[0], "1", nbest=nbest, nlus=nlus)
    assert answer.kind == "location" and answer.details["product_type"] == "dog_food"
    assert len({p.brand for p in answer.products}) >= 2


def test_joint_nbest_uses_every_hypothesis(bundle):
    nbest = NBest(
        (
            Hypothesis("where can I find the tight pots", score=-0.40),
            Hypothesis("where can I find the tide pods", score=-0.45),
            Hypothesis("where can I find tide pods", score=-0.5),
        ),
        "en",
    )
    nlus = bundle.parser.parse_batch([h.text for h in nbest.hypotheses])
    answer = bundle.answerer.answer(nlus[0], "1", nbest=nbest, nlus=nlus)
    assert answer.kind in ("location", "ambiguous", "not_found")
    if answer.kind == "location":
        assert answer.products[0].brand == "Tide"
    assert "understood_from" in answer.details


def test_labels_projected_onto_what_was_heard():
    row = {
        "text": "do we have Kellogg's frosted flakes",
        "language": "en",
        "intent": "check_stock",
        "entities": [
            {"label": "BRAND", "start": 11, "end": 20, "text": "Kellogg's"},
            {"label": "PRODUCT", "start": 21, "end": 35, "text": "frosted flakes"},
        ],
    }
    out = project(row, "do we have collugs frosted flakes")
    assert [(e["label"], e["text"]) for e in out["entities"]] == [
        ("BRAND", "collugs"),
        ("PRODUCT", "frosted flakes"),
    ]
    for e in out["entities"]:
        assert out["text"][e["start"] : e["end"]] == e["text"]
    assert project(row, "do we have") is None
    # a reading too far off the words is left out: its alignment would label unrelated words
    cache = {"clips": {"a.wav": {"row": row, "nbest": {"hypotheses": [
        {"text": "do we have collugs frosted flakes"},
        {"text": "do we have Kellogg's frosted flakes"},
        {"text": "the weather in cologne is frosty and flaky today"},
    ]}}}}  # fmt: skip
    assert project(row, "the weather in cologne is frosty and flaky today") is not None
    kept = project_cache(cache, per_clip=3)
    assert [r["text"] for r in kept] == ["do we have collugs frosted flakes"]
    assert kept[0]["noisy"] and kept[0]["intent"] == "check_stock"


def test_exact_brand_span_is_not_replaced_by_another_brand_in_the_text(bundle):
    """ "check stock for t-shirts by champion" heard as "Schick stock 40 short-spy champion":
    the parse names Champion; Schick, a word the text scan finds, must not be asserted."""
    text = "Schick stock 40 short-spy champion"
    nlu = _nlu(text, "check_stock", ("PRODUCT", "short-spy"), ("BRAND", "champion"))
    result = bundle.linker.link(nlu)
    assert result.candidates and {c.product.brand for c in result.candidates} == {"Champion"}
    answer = bundle.answerer.answer(nlu, "1")
    assert all(p.brand == "Champion" for p in answer.products + answer.candidates)


@pytest.mark.parametrize("heard", ["cuantereces", "karma"])
def test_misheard_names_with_no_one_alike_link_no_one(bundle, heard):
    """The issue's "cuantereces" (Juan Pérez) and "karma" (Carmen): neither person is in the
    seeded rosters, so the honest answer is nobody, never another associate asserted."""
    for store in bundle.inventory.stores():
        link = bundle.linker.link_person(heard, store)
        assert not link.associates or link.ask
