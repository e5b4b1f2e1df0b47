"""assistant.phrases: limits of a client's list, whole lists vs per-utterance selection."""

from __future__ import annotations

import pytest
from inventory_db import sqlite_url  # noqa: F401

from assistant.phrases import (
    MAX_PHRASE_CHARS,
    MAX_PHRASES,
    HeardDraft,
    PhraseError,
    PhraseIndex,
    catalog_phrases,
    check_phrases,
)


def test_check_phrases_limits():
    assert check_phrases(["Tide Pods", "  Huggies  diapers ", "Tide Pods"]) == (
        "Tide Pods",
        "Huggies diapers",
    )
    assert check_phrases([]) == ()
    for bad in ("Tide", [1], [""], ["x" * (MAX_PHRASE_CHARS + 1)], ["p"] * (MAX_PHRASES + 1)):
        with pytest.raises(PhraseError):
            check_phrases(bad)


def test_a_short_list_is_given_whole_without_a_draft():
    menu = PhraseIndex.from_lines(["light roast", "soy milk", "twenty ounce"])
    assert not menu.needs_draft
    assert menu.select([], "en") == ("light roast", "soy milk", "twenty ounce")
    assert menu.select(["anything"], "es") == menu.select([], "es")
    assert not PhraseIndex.from_lines([])


def test_a_long_list_is_narrowed_to_what_the_draft_sounds_like():
    brands = [f"Brand{i:03d}" for i in range(300)]
    index = PhraseIndex(
        {"en": ("Tide Pods", "Huggies diapers", *brands), "es": ("pan Bimbo", *brands)}
    )
    assert index.needs_draft
    assert index.select(["where can I find tight pods"], "en")[0] == "Tide Pods"
    assert "Huggies diapers" in index.select(["do we have hotties diapers"], "en")
    assert index.select(["busco el pan blanco vimbo"], "es")[0] == "pan Bimbo"  # b/v by sound
    assert index.select(["what's the weather like"], "en") == ()  # nothing like the catalog
    chosen = index.select([" ".join(brands[:40])], "en")
    assert 0 < len(chosen) <= 16 and sum(len(p) + 2 for p in chosen) <= 240  # prompt budget


def test_a_heard_draft_selects_from_the_partial_reading_without_a_draft_decode():
    brands = [f"Brand{i:03d}" for i in range(300)]
    index = PhraseIndex({"en": ("Tide Pods", "Huggies diapers", *brands), "es": brands})
    heard = HeardDraft(index, ("where can I find tight pods",))
    assert index.needs_draft and not heard.needs_draft
    assert heard.select([], "en") == index.select(["where can I find tight pods"], "en")
    assert heard.select(["do we have hotties diapers"], "en")[0] == "Tide Pods"  # drafts unused


def test_catalog_phrases_per_language(sqlite_url):  # noqa: F811
    from assistant.inventory import Inventory

    inventory = Inventory(sqlite_url)
    index = catalog_phrases(inventory)
    assert index.needs_draft
    assert "Huggies" in index.phrases["en"] and "Huggies" in index.phrases["es"]
    assert "Huggies diapers" in index.phrases["en"]
    assert "pañales Huggies" in index.phrases["es"]
    for department in inventory.departments().values():
        assert department.name_en.lower() in index.phrases["en"]  # common nouns, lower case
        assert department.name_es.lower() in index.phrases["es"]


def test_catalog_phrases_without_a_database(tmp_path):
    from assistant.inventory import Inventory

    index = catalog_phrases(Inventory(f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}"))
    assert index.needs_draft and "Huggies" in index.phrases["en"]
