"""The synthetic EN/ES corpus: spans, annotation rules, held-out splits, determinism."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from lab.nlu.corpus import CorpusConfig, build_corpus
from lab.nlu.corpus.__main__ import main
from lab.nlu.corpus.catalog import load_catalog, product_from_dict
from lab.nlu.corpus.generate import all_templates, load_lexicon
from lab.nlu.corpus.noise import corrupt_word, spoken_size
from lab.nlu.corpus.render import Renderer, es_gender_number
from nlu.schema import ENTITY_LABELS, INTENTS
from textnorm import strip_accents
from textnorm.numbers import en_words, es_words

CATALOG = Path(__file__).parent / "fixtures" / "corpus_catalog.jsonl"
SPLITS = ("train", "dev", "test")
# Words a span must not start with (ANNOTATION.md: no articles, prepositions, question words).
LEADING_STOP = {
    "the",
    "a",
    "an",
    "for",
    "in",
    "on",
    "at",
    "of",
    "from",
    "by",
    "de",
    "del",
    "en",
    "los",
    "las",
    "la",
    "el",
    "un",
    "una",
    "where",
    "dónde",
    "donde",
    "to",
    "al",
}
DATE_ARTICLES = {"el", "la", "los", "las"}  # "[el viernes]", "[la semana pasada]" keep theirs
PUNCT = ".,;:!?¿¡\"'"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    build_corpus(
        CATALOG, out, CorpusConfig(seed=7, n_examples=3000, n_unlabelled=1500), progress=False
    )
    return out


@pytest.fixture(scope="module")
def rows(corpus) -> dict[str, list[dict]]:
    return {s: read(corpus / f"{s}.jsonl") for s in SPLITS}


def test_files_and_sizes(corpus, rows):
    assert [len(rows[s]) for s in SPLITS] == [2400, 300, 300]
    assert len((corpus / "unlabelled.txt").read_text("utf-8").splitlines()) == 1500
    stats = json.loads((corpus / "stats.json").read_text("utf-8"))
    assert stats["splits"]["test"]["examples"] == 300
    assert set(rows["train"][0]) == {
        "text",
        "language",
        "intent",
        "entities",
        "template",
        "line",
        "skus",
        "noisy",
    }


def test_spans_match_text_and_follow_annotation_rules(rows):
    for split in SPLITS:
        for r in rows[split]:
            assert r["intent"] in INTENTS and r["language"] in ("en", "es")
            prev_end = 0
            for e in sorted(r["entities"], key=lambda e: e["start"]):
                assert e["label"] in ENTITY_LABELS
                assert r["text"][e["start"] : e["end"]] == e["text"], r
                assert e["start"] >= prev_end, f"overlapping spans: {r}"
                prev_end = e["end"]
                span = e["text"]
                assert span and span == span.strip(), r
                assert span[0] not in PUNCT and span[-1] not in PUNCT, r
                first = span.split()[0].lower()
                if e["label"] == "DATE" and first in DATE_ARTICLES:
                    continue
                if e["label"] == "SIZE" and first in ("un", "una"):
                    continue  # "[un litro]" is the guide's own SIZE example
                if e["label"] in ("BRAND", "PERSON"):
                    continue  # names may start with anything ("La Costeña", LG heard as "el ge")
                assert first not in LEADING_STOP, r
                # spans sit on word boundaries
                assert e["start"] == 0 or not r["text"][e["start"] - 1].isalnum(), r
                assert e["end"] == len(r["text"]) or not r["text"][e["end"]].isalnum(), r


def test_size_spans_carry_unit_or_size_word(rows):
    sizes = [
        e["text"].lower() for r in rows["train"] for e in r["entities"] if e["label"] == "SIZE"
    ]
    assert len(sizes) > 50
    for s in sizes:
        assert not s.startswith("de "), s
        assert len(s.split()) >= 2 or s in {
            "mediana",
            "medium",
            "chica",
            "small",
            "grande",
            "large",
            "aa",
            "aaa",
        }, s


def test_held_out_templates_lines_and_names_are_disjoint(corpus, rows):
    train_templates = {r["template"] for r in rows["train"]}
    train_lines = {r["line"] for r in rows["train"]} - {None}
    for split in ("dev", "test"):
        assert not {r["template"] for r in rows[split]} & train_templates
        assert not ({r["line"] for r in rows[split]} - {None}) & train_lines
    assert not {r["template"] for r in rows["dev"]} & {r["template"] for r in rows["test"]}
    stats = json.loads((corpus / "stats.json").read_text("utf-8"))
    held = stats["splits"]["test"]["held_out"]
    train_names = {
        n.lower()
        for names in stats["splits"]["train"]["held_out"]["first_names"].values()
        for n in names
    }
    assert not train_names & {n.lower() for names in held["first_names"].values() for n in names}
    # test products never reach the unlabelled pool either
    pool = (corpus / "unlabelled.txt").read_text("utf-8").lower()
    for p in load_catalog(CATALOG):
        if p.line in held["lines"]:
            assert p.name_en.lower() not in pool


def test_every_intent_and_language_in_every_split(rows):
    for split in SPLITS:
        seen = {(r["language"], r["intent"]) for r in rows[split]}
        assert seen == {(lang, i) for lang in ("en", "es") for i in INTENTS}, split


def test_spanish_share_and_noise(rows):
    for split in SPLITS:
        es = sum(r["language"] == "es" for r in rows[split]) / len(rows[split])
        assert es >= 0.3, (split, es)
    train = rows["train"]
    noisy = sum(r["noisy"] for r in train) / len(train)
    assert 0.1 < noisy < 0.6
    assert any("¿" in r["text"] for r in train) and any(
        r["text"] == r["text"].lower() for r in train
    )
    assert sum(r["text"] == r["text"].lower() for r in train) / len(train) > 0.5


def test_skus_refer_to_catalog_products(rows):
    skus = {p.sku for p in load_catalog(CATALOG)}
    for r in rows["train"]:
        if r["line"] is None:
            assert r["skus"] == []
        else:
            assert r["skus"] and set(r["skus"]) <= skus


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    cfg = CorpusConfig(seed=3, n_examples=400, n_unlabelled=200)
    build_corpus(CATALOG, tmp_path / "a", cfg, progress=False)
    build_corpus(CATALOG, tmp_path / "b", cfg, progress=False)
    build_corpus(
        CATALOG,
        tmp_path / "c",
        CorpusConfig(seed=4, n_examples=400, n_unlabelled=200),
        progress=False,
    )
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "unlabelled.txt", "stats.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "train.jsonl").read_bytes() != (
        tmp_path / "c" / "train.jsonl"
    ).read_bytes()


def test_templates_count_and_every_template_renders():
    templates = all_templates()
    for lang in ("en", "es"):
        ts = [t for t in templates if t.language == lang]
        assert len(ts) >= 80
        for intent in INTENTS:
            assert sum(t.intent == intent for t in ts) >= 5
    products = load_catalog(CATALOG)
    renderer = Renderer(load_lexicon(), [], random.Random(0))
    people = {"en": ["John"], "es": ["María"]}
    for t in templates:
        fits = [p for p in products if all(getattr(p, n.lower()) for n in t.needs())]
        for k in range(5):
            r = renderer.render(t, fits[k % len(fits)] if t.uses_product else None, people)
            assert "{" not in r.text and "  " not in r.text and r.text == r.text.strip(), (
                t.id,
                r.text,
            )
            for e in r.entities:
                assert r.text[e["start"] : e["end"]] == e["text"]


def test_numbers_and_sizes():
    assert en_words(55) == "fifty five" and en_words(1234) == "one thousand two hundred thirty four"
    assert es_words(55) == "cincuenta y cinco" and es_words(21, apocope=True) == "veintiún"
    assert (
        es_words(100) == "cien" and es_words(115) == "ciento quince" and es_words(2000) == "dos mil"
    )
    rng = random.Random(0)
    assert spoken_size("Size 4", "en", rng, as_words=True) == "size four"
    assert spoken_size("Size 4", "es", rng, as_words=False) == "talla 4"
    assert spoken_size("55 in", "en", rng, as_words=True) == "fifty five inch"
    assert spoken_size("1 L", "es", rng, as_words=True) == "un litro"
    assert spoken_size("1 lb", "es", rng, as_words=True) == "una libra"
    assert spoken_size("Size 10.5", "en", rng, as_words=True) == "size ten and a half"


def test_noise_helpers():
    rng = random.Random(1)
    assert strip_accents("dónde están los pañales", keep_enye=True) == "donde estan los pañales"
    assert strip_accents("niño", keep_enye=False) == "nino"
    heard = {corrupt_word("colgate", rng) for _ in range(30)}
    assert "colgate" not in heard and len(heard) > 3
    assert es_gender_number("pañales") == (False, True)
    assert es_gender_number("leche deslactosada") == (True, False)
    assert es_gender_number("pasta de dientes") == (True, False)


def test_catalog_tolerates_missing_optional_fields():
    p = product_from_dict(
        {"sku": "1", "brand": "Tide", "name_en": "Tide Pods 42 ct", "name_es": "Tide cápsulas"}
    )
    assert p is not None and p.product_en == "pods" and p.product_es == "cápsulas"
    assert p.line == "tide|pods" and p.size == "" and p.brand_aliases == ()
    assert product_from_dict({"brand": "x"}) is None


def test_cli_builds_and_reports_bad_input(tmp_path, capsys):
    out = tmp_path / "c"
    doc = tmp_path / "corpus.md"
    args = [
        "build",
        "--catalog",
        str(CATALOG),
        "--out",
        str(out),
        "--n",
        "200",
        "--n-unlabelled",
        "50",
    ]
    assert main([*args, "--doc", str(doc), "--no-progress"]) == 0
    assert (out / "train.jsonl").exists() and "| test |" in doc.read_text("utf-8")
    assert (
        main(
            [
                "build",
                "--catalog",
                str(tmp_path / "missing.jsonl"),
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "error:" in capsys.readouterr().err
    assert re.search(r"Spanish|ES share", doc.read_text("utf-8"))


def test_every_label_in_every_split_and_language(rows):
    for split in SPLITS:
        for lang in ("en", "es"):
            seen = {e["label"] for r in rows[split] if r["language"] == lang for e in r["entities"]}
            assert seen == set(ENTITY_LABELS), (split, lang, set(ENTITY_LABELS) - seen)


def test_dates_agree_with_tense():
    lex = load_lexicon()
    future = set(lex["date_tense"]["en"]["future"]) | set(lex["date_tense"]["es"]["future"])
    renderer = Renderer(lex, [], random.Random(2))
    sales = [t for t in all_templates() if t.intent == "top_sellers" and "DATE" in t.slots]
    for k in range(300):
        r = renderer.render(sales[k % len(sales)], None, {"en": ["Ann"], "es": ["Ana"]})
        dates = [e["text"].lower() for e in r.entities if e["label"] == "DATE"]
        assert not set(dates) & {d.removeprefix("the ") for d in future}, r.text
